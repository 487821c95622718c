"""Benchmark the embedded default: index build, ask latency, app start-up time and idle memory.

    .venv/bin/python bench/bench_rag.py [--questions tests/eval/public.jsonl] [--skip-app]

Prints a table. Numbers depend on the machine; the README records the ones measured on the
reference machine (2 cores, no GPU).
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.assistant import Assistant  # noqa: E402
from app.cli import percentile  # noqa: E402
from app.config import load_settings  # noqa: E402


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
        time.sleep(3)
        return ready, rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=REPO / "tests/eval/public.jsonl")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions for latency")
    parser.add_argument("--skip-app", action="store_true", help="skip the app start-up measurement")
    args = parser.parse_args()

    questions = [json.loads(line)["q"] for line in args.questions.read_text("utf-8").splitlines() if line.strip()]
    data_dir = Path(tempfile.mkdtemp(prefix="wulewule-bench-"))
    rows: list[tuple[str, str]] = []
    try:
        settings = load_settings(None, [f"app.data_dir={data_dir}"])
        t0 = time.perf_counter()
        assistant = Assistant(settings)
        assistant.warm_up()
        build_s = time.perf_counter() - t0
        index = assistant.retriever.index
        rows.append(("knowledge base", f"{len(index.documents)} entries, {len(index.chunks)} chunks"))
        rows.append(("index build, cold (incl. jieba init)", f"{build_s:.2f} s"))

        t0 = time.perf_counter()
        Assistant(settings).warm_up()
        rows.append(("index load, cached", f"{time.perf_counter() - t0:.2f} s"))

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
            rows.append(("app ready after launch (index cached)", f"{ready:.1f} s"))
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
