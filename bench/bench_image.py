"""Benchmark drawing: the tiny test pipeline (correctness and overhead), routing, prompts, and a real model.

    .venv/bin/python bench/bench_image.py                       # tiny random pipeline, 64x64, this CPU
    .venv/bin/python bench/bench_image.py --model models/stable-diffusion-v1-5 --steps 4,25 [--fast-lora DIR]

Prints a table. The tiny pipeline's numbers measure our overhead (threads, queue, callbacks), not
Stable Diffusion: its weights are random and its pictures noise. A real model needs --model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

from modules.image.base import GeneratedImage
from modules.image.diffusers_gen import DiffusersGenerator
from modules.image.intent import rule_decision
from modules.image.prompt import build_prompt, kb_names
from modules.image.settings import ImageSettings
from modules.rag.loader import load_documents

REPO = Path(__file__).resolve().parent.parent


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def time_renders(gen: DiffusersGenerator, steps: int, size: int, repeat: int) -> tuple[float, float, bool]:
    """(load seconds, median render seconds, same seed -> same picture)."""
    started = time.perf_counter()
    gen.load()
    load_s = time.perf_counter() - started
    request = gen.request_for("the Destined One, a monkey warrior in dark armor, snowy mountains", seed=1)
    request = dataclasses.replace(request, steps=steps, width=size, height=size)
    times, images = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        result = [i for i in gen.generate(request) if isinstance(i, GeneratedImage)][-1]
        times.append(time.perf_counter() - started)
        images.append(result.image.tobytes())
    return load_s, statistics.median(times), len(set(images)) == 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="a real diffusers SD model directory (or downloaded hub id)")
    parser.add_argument("--family", default="sd15", choices=["sd15", "sdxl"])
    parser.add_argument("--steps", default="4,25", help="comma-separated step counts for --model")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fast-lora", default="", help="an LCM-LoRA: also time the fast path")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[list[str]] = []

    from tests.modules.image.tiny_sd import build_tiny_sd

    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_sd(Path(tmp) / "tiny")
        gen = DiffusersGenerator(ImageSettings(model=str(tiny), device="cpu", scheduler="ddim"), Path(tmp))
        load_s, render_s, same = time_renders(gen, steps=2, size=64, repeat=max(5, args.repeat))
        rows.append(["tiny random SD, 64x64, 2 steps (cpu)", f"{load_s:.2f} s", f"{render_s * 1000:.0f} ms", str(same)])

    labelled = REPO / "tests" / "eval" / "intent.jsonl"
    items = [json.loads(line) for line in labelled.read_text(encoding="utf-8").splitlines() if line.strip()]
    started = time.perf_counter()
    right = sum(rule_decision(i["text"]).intent == i["intent"] for i in items)
    per_msg = (time.perf_counter() - started) / len(items)
    rows.append(
        [
            f"intent rules on {labelled.name} ({len(items)} messages)",
            "-",
            f"{per_msg * 1e6:.0f} us",
            f"{right / len(items):.1%} right",
        ]
    )

    settings = ImageSettings()
    started = time.perf_counter()
    names = kb_names(load_documents([REPO / "assets" / "knowledge"]))
    first = time.perf_counter() - started
    started = time.perf_counter()
    for item in items:
        if item["intent"] == "image":
            build_prompt(item["text"], settings, names=names)
    per_prompt = (time.perf_counter() - started) / sum(i["intent"] == "image" for i in items)
    rows.append(["prompt building (first call reads the KB)", f"{first:.2f} s", f"{per_prompt * 1000:.2f} ms", "-"])

    if args.model:
        for steps in [int(s) for s in args.steps.split(",") if s.strip()]:
            real = ImageSettings(model=args.model, family=args.family, device=args.device, fast="false")
            gen = DiffusersGenerator(real, REPO)
            load_s, render_s, same = time_renders(gen, steps, args.size, args.repeat)
            label = (
                f"{Path(args.model).name} {args.size}x{args.size}, {steps} steps ({gen.plan.device}, {gen.plan.dtype})"
            )
            rows.append([label, f"{load_s:.1f} s", f"{render_s:.2f} s ({render_s / steps:.2f} s/step)", str(same)])
        if args.fast_lora:
            real = ImageSettings(
                model=args.model, family=args.family, device=args.device, fast="true", fast_lora=args.fast_lora
            )
            gen = DiffusersGenerator(real, REPO)
            load_s, render_s, same = time_renders(gen, gen.steps, args.size, args.repeat)
            label = f"{Path(args.model).name} + LCM-LoRA {args.size}x{args.size}, {gen.steps} steps ({gen.plan.device})"
            rows.append([label, f"{load_s:.1f} s", f"{render_s:.2f} s", str(same)])

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cuda={torch.cuda.is_available()}")
    print_table(["measure", "load", "median per call", "check"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
