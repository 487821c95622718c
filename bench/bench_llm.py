"""Benchmark the answer backends: time to first token, decode speed and accuracy on a sample of the eval set.

    eval "$(../shared/dev-models/fetch)"   # sets WULEWULE_DEV_GGUF, the dev GGUF (Qwen2.5-Coder-0.5B Q4_K_M)
    .venv/bin/python bench/bench_llm.py [--gguf PATH] [--questions tests/eval/public.jsonl] [--n 10]

Every backend answers the same questions from the same top-k passages of the project's retrieval; chat
models get the project's prompt through GroundedAnswerer. A question counts as correct by the eval's rule
(`python -m app eval`): the answer contains one of its keys, case-insensitive. Prints a table; numbers
depend on the machine (the README records the ones measured on the reference machine: 2 cores, no GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from app.config import load_settings
from app.evaluation import percentile
from app.knowledge_chat import KnowledgeChat
from llm.base import Answerer
from llm.grounded import GroundedAnswerer
from llm.prompt import approx_tokens
from modules.rag.types import Passage

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    """One answer: seconds to the first piece and to the end, tokens written, and whether it was right."""

    ttft_s: float
    total_s: float
    tokens: int
    first_tokens: int
    correct: bool


def sample(items: list[dict], n: int) -> list[dict]:
    """n questions spread evenly over the file, so every category the file holds is drawn from."""
    if n >= len(items):
        return items
    return [items[i * len(items) // n] for i in range(n)]


def is_correct(answer: str, keys: list[str]) -> bool:
    """The eval's rule (app/cli.py): the answer contains any key, case-insensitive."""
    text = answer.lower()
    return any(str(k).lower() in text for k in keys)


def time_answer(stream: Iterator[str], keys: list[str], count: Callable[[str], int], started: float) -> tuple[Run, str]:
    first_at = 0.0
    pieces: list[str] = []
    for piece in stream:
        if piece and not first_at:
            first_at = time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    answer = "".join(pieces)
    first = next((p for p in pieces if p), "")
    run = Run(
        ttft_s=(first_at or end) - started,
        total_s=end - started,
        tokens=count(answer),
        first_tokens=count(first),
        correct=is_correct(answer, keys),
    )
    return run, answer


def bench(
    name: str,
    answerer: Answerer,
    questions: list[dict],
    passages: list[list[Passage]],
    count: Callable[[str], int],
    verbose: bool,
) -> list[Run]:
    runs = []
    for item, found in zip(questions, passages, strict=True):
        started = time.perf_counter()
        run, answer = time_answer(answerer.stream(item["q"], found, ()), item["keys"], count, started)
        runs.append(run)
        if verbose:
            mark = "ok  " if run.correct else "MISS"
            print(f"[{name}] {mark} {run.ttft_s:6.2f}s {item['q']} -> {answer.strip()[:160]!r}", file=sys.stderr)
    return runs


def row(name: str, runs: list[Run], generated: bool) -> list[str]:
    ttft = [r.ttft_s * 1000 for r in runs]
    total = [r.total_s * 1000 for r in runs]
    # Decode speed: the tokens after the first piece over the time after it, pooled over all answers.
    decode_s = sum(r.total_s - r.ttft_s for r in runs)
    decode_tokens = sum(r.tokens - r.first_tokens for r in runs)
    speed = f"{decode_tokens / decode_s:.1f}" if generated and decode_s > 0 else "— (not generated)"
    right = sum(r.correct for r in runs)
    return [
        name,
        str(len(runs)),
        _ms(percentile(ttft, 50)),
        _ms(percentile(ttft, 95)),
        _ms(percentile(total, 50)),
        f"{sum(r.tokens for r in runs) / len(runs):.0f}",
        speed,
        f"{right}/{len(runs)} ({right / len(runs):.0%})",
    ]


def _ms(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def print_table(rows: list[list[str]]) -> None:
    header = ["backend", "questions", "TTFT p50", "TTFT p95", "answer p50", "tokens/answer", "tokens/s", "accuracy"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=REPO / "tests/eval/public.jsonl")
    parser.add_argument("--n", type=int, default=10, help="questions, spread evenly over the file")
    parser.add_argument("--gguf", default=os.environ.get("WULEWULE_DEV_GGUF", ""), help="GGUF for llamacpp")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0, help="0 = every core")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument(
        "--context",
        choices=["passages", "sentences"],
        default="sentences",
        help="what the model reads: whole passages, or the best sentences (llm.compact_context)",
    )
    parser.add_argument("--no-fallback", action="store_true", help="keep bare answers like '[1]' as they are")
    parser.add_argument("--sentences", type=int, default=2, help="sentences in a compact context")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also time the configured llm.backend with these overrides, e.g. --set llm.backend=lmdeploy "
        "--set llm.lmdeploy.url=http://127.0.0.1:23333/v1 (for the GPU speed table)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every answer to stderr")
    args = parser.parse_args()

    items = [json.loads(line) for line in args.questions.read_text("utf-8").splitlines() if line.strip()]
    questions = sample(items, args.n)
    data_dir = Path(tempfile.mkdtemp(prefix="wulewule-bench-llm-"))
    try:
        settings = load_settings(None, [f"app.data_dir={data_dir}", *args.sets])
        assistant = KnowledgeChat(settings)
        top_k = settings.rag.top_k
        passages = [assistant.retriever.retrieve(item["q"], top_k) for item in questions]
        notes = [
            f"{len(questions)} questions from {args.questions.name}, top {top_k} passages each, "
            f"{os.cpu_count()} CPU cores"
        ]
        count: Callable[[str], int] = approx_tokens
        backends: list[tuple[str, Answerer, bool]] = [("extractive", assistant.extractive, False)]
        if args.gguf:
            from llm.llamacpp_chat import LlamaCppChatModel

            t0 = time.perf_counter()
            model = LlamaCppChatModel(args.gguf, n_ctx=args.n_ctx, n_threads=args.threads)
            load_s = time.perf_counter() - t0
            count = model.count_tokens
            compact = None
            if args.context == "sentences":
                extractive = assistant.extractive

                def compact(q: str, ps: list) -> list[tuple[int, str]]:
                    return extractive.select(q, ps, args.sentences)

            grounded = GroundedAnswerer(
                model,
                settings.llm.system_prompt,
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                context_tokens=args.n_ctx,
                history_tokens=settings.llm.history_tokens,
                compact=compact,
                fallback=None if args.no_fallback else assistant.extractive,
            )
            # One untimed answer to a question outside the sample: the first pass pages the weights in, and
            # it leaves the system prompt in llama.cpp's context, as any earlier turn does in the app.
            warm = next((item["q"] for item in items if item not in questions), questions[0]["q"])
            "".join(grounded.stream(warm, assistant.retriever.retrieve(warm, top_k)))
            backends.append(("llamacpp", grounded, True))
            notes.append(
                f"llamacpp: {Path(args.gguf).name}, n_ctx {args.n_ctx}, {model.n_threads} threads, "
                f"max_tokens {args.max_tokens}, temperature {args.temperature}, context {args.context}, "
                f"loaded in {load_s:.1f} s"
            )
        else:
            notes.append('llamacpp: skipped, no GGUF (run `eval "$(../shared/dev-models/fetch)"` or pass --gguf)')
        if settings.llm.backend != "extractive":
            assistant.warm_up()  # loads the model / starts a managed server before timing
            backends.append((settings.llm.backend, assistant.answerer, True))
            notes.append(f"{settings.llm.backend}: from configuration ({', '.join(args.sets)})")
        notes.append("tokens counted with the GGUF's tokenizer" if args.gguf else "tokens estimated (approx_tokens)")

        rows = [row(name, bench(name, a, questions, passages, count, args.verbose), gen) for name, a, gen in backends]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    print_table(rows)
    print()
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
