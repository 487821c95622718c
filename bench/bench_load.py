"""Load: N concurrent players (gradio_client sessions) for a fixed time, mixing typed questions, spoken
questions and drawing requests, against a real `python -m app serve`.

    .venv/bin/python bench/bench_load.py [--sessions 20] [--seconds 60] [--voice-share 0.3] [--draw-share 0.1]
                                         [--speak] [--json]

Spoken questions need WULEWULE_DEV_WHISPER (../shared/dev-models/fetch); drawing requests use a tiny
random SD pipeline built here (correctness under load, not drawing speed). Reports errors, p50/p95
latency per kind, time to the first text and the first audio, and the app's memory over time
(growth is measured from the end of the warm-up, the first quarter of the run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench_rag import free_port, rss_mb

from app.evaluation import percentile

REPO = Path(__file__).resolve().parent.parent

SPEECH = REPO.parent / "shared" / "testdata" / "speech"
TYPED = [
    "黑熊精在哪里打？",
    "黄眉在原著里是谁的童子？",
    "红孩儿的父亲是谁？",
    "隐藏结局怎么触发？",
    "Who developed Black Myth: Wukong?",
    "第三回的最终头目是谁？",
    "定身法怎么用？",
    "虎先锋怎么打？",
]
DRAW = ["画一个雪地里的天命人", "画一张火焰山上的天命人，水墨风", "draw the Destined One on a snowy mountain"]


@dataclass
class Result:
    kind: str
    ok: bool
    seconds: float
    first_text: float | None = None
    first_audio: float | None = None
    error: str = ""


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    memory: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MiB)
    lock: threading.Lock = field(default_factory=threading.Lock)


def one_request(client: object, kind: str, speak: bool, clips: list[Path]) -> Result:
    from gradio_client import handle_file

    started = time.perf_counter()
    first_text = first_audio = None
    if kind == "voice":
        job = client.submit("", handle_file(str(random.choice(clips))), [], speak, [], api_name="/voice")  # type: ignore[attr-defined]
    else:
        text = random.choice(DRAW if kind == "draw" else TYPED)
        job = client.submit(text, None, [], speak, [], api_name="/chat")  # type: ignore[attr-defined]
    try:
        # Polled every 20 ms rather than iterated: gradio_client's iterator spins at 1 kHz per job,
        # which with 20 players would measure the client's CPU use instead of the app's.
        while not job.done():
            time.sleep(0.02)
            outputs = job.outputs()
            if not outputs:
                continue
            now = time.perf_counter() - started
            update = outputs[-1]
            messages = update[2] if isinstance(update[2], list) else []
            if first_text is None and any(m.get("role") == "assistant" and m.get("content") for m in messages):
                first_text = now
            if (
                speak
                and first_audio is None
                and any((isinstance(u, str) and u) or (isinstance(u, dict) and "path" in u) for u in update[3:5])
            ):
                first_audio = now
        final = job.result(timeout=300)
        messages = final[2] or []
        answered = any(m.get("role") == "assistant" and m.get("content") for m in messages)
        if not answered:
            return Result(kind, False, time.perf_counter() - started, error="no answer in the chat")
        return Result(kind, True, time.perf_counter() - started, first_text, first_audio)
    except Exception as exc:  # every failure is counted, never hidden
        return Result(kind, False, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"[:200])


def player(
    url: str, run: Run, deadline: float, args: argparse.Namespace, clips: list[Path], seed: int, only: str = ""
) -> None:
    """One player asking until the deadline: kinds drawn by the shares, or always ``only``."""
    from gradio_client import Client

    rng = random.Random(seed)
    client = Client(url, verbose=False)
    while time.time() < deadline:
        roll = rng.random()
        kind = "voice" if clips and roll < args.voice_share else "draw" if roll > 1 - args.draw_share else "typed"
        kind = only or kind
        result = one_request(client, kind, args.speak, clips)
        with run.lock:
            run.results.append(result)


def sample_memory(pid: int, run: Run, started: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            run.memory.append((time.time() - started, rss_mb(pid)))
        except Exception:  # the process may be gone at the very end
            return
        stop.wait(1.0)


def start_app(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--set", f"app.data_dir={root / 'data'}", "serve", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "app.log", "wb"),  # noqa: SIM115 - lives as long as the app
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **env},
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited: see {root / 'app.log'}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the app did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--voice-share", type=float, default=0.3, help="share of requests that are spoken")
    parser.add_argument("--draw-share", type=float, default=0.1, help="share of requests that ask for a picture")
    parser.add_argument(
        "--voice-sessions",
        type=int,
        default=0,
        help="extra players who only ask spoken questions (a burst beside --sessions)",
    )
    parser.add_argument("--speak", action="store_true", help="ask for voice replies too")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--url",
        nargs="+",
        help="run against apps already serving (e.g. the replicas bench/deploy_local.py starts), players spread "
        "over them in turn; memory is then not sampled (measure each process where it runs)",
    )
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="wulewule-load-"))
    env: dict[str, str] = {}
    clips: list[Path] = []
    whisper = os.environ.get("WULEWULE_DEV_WHISPER", "")
    if whisper and Path(whisper).is_dir():
        env |= {"WULEWULE_ASR__BACKEND": "whisper", "WULEWULE_ASR__WHISPER__MODEL": whisper}
        clips = sorted(SPEECH.glob("zh_*.wav"))
    if args.draw_share > 0:
        from tests.modules.image.tiny_sd import build_tiny_sd

        sd = build_tiny_sd(root / "sd")
        env |= {"WULEWULE_IMAGE__MODEL": str(sd), "WULEWULE_IMAGE__WIDTH": "64", "WULEWULE_IMAGE__HEIGHT": "64"}
        env |= {"WULEWULE_IMAGE__STEPS": "4", "WULEWULE_IMAGE__SAFETY_CHECKER": "false"}
    proc, url = start_app(root, env) if not args.url else (None, args.url[0])
    urls = args.url or [url]
    if args.url and os.environ.get("WULEWULE_DEV_WHISPER"):
        clips = sorted(SPEECH.glob("zh_*.wav"))
    # Warm-up: one request of each kind loads every model (ASR, SD) before the clock and the memory
    # baseline start; growth is then measured from the end of the first quarter of the run.
    from gradio_client import Client

    kinds = ["typed"] + (["voice"] if clips else []) + (["draw"] if args.draw_share > 0 else [])
    for each in urls:  # every replica
        warm_client = Client(each, verbose=False)
        for kind in kinds:
            warm = one_request(warm_client, kind, args.speak, clips)
            if not warm.ok:
                raise SystemExit(f"warm-up {kind} request at {each} failed: {warm.error}")
    run = Run()
    stop = threading.Event()
    started = time.time()
    sampler = threading.Thread(
        target=sample_memory, args=(proc.pid if proc else os.getpid(), run, started, stop), daemon=True
    )
    if proc is not None:
        sampler.start()
    deadline = started + args.seconds
    players = [
        threading.Thread(target=player, args=(urls[i % len(urls)], run, deadline, args, clips, i), daemon=True)
        for i in range(args.sessions)
    ]
    if clips:
        players += [
            threading.Thread(
                target=player, args=(urls[i % len(urls)], run, deadline, args, clips, 1000 + i, "voice"), daemon=True
            )
            for i in range(args.voice_sessions)
        ]
    for t in players:
        t.start()
    for t in players:
        t.join(timeout=args.seconds + 600)
    stop.set()
    if proc is not None:
        sampler.join()
        proc.terminate()
        proc.wait(timeout=30)

    warm = [mb for t, mb in run.memory if t >= args.seconds / 4]
    growth = (warm[-1] - warm[0]) / warm[0] if len(warm) > 1 else 0.0
    rows = []
    for kind in ("typed", "voice", "draw", "all"):
        rs = [r for r in run.results if kind == "all" or r.kind == kind]
        if not rs:
            continue
        ok = [r for r in rs if r.ok]
        lat = [r.seconds for r in ok]
        ttft = [r.first_text for r in ok if r.first_text is not None]
        ttfa = [r.first_audio for r in ok if r.first_audio is not None]
        rows.append(
            {
                "kind": kind,
                "requests": len(rs),
                "errors": len(rs) - len(ok),
                "p50_s": round(percentile(lat, 50), 2),
                "p95_s": round(percentile(lat, 95), 2),
                "first_text_p50_s": round(percentile(ttft, 50), 2),
                "first_audio_p50_s": round(percentile(ttfa, 50), 2) if ttfa else None,
            }
        )
    summary = {
        "sessions": args.sessions,
        "seconds": args.seconds,
        "rss_start_mb": round(run.memory[0][1], 1) if run.memory else None,
        "rss_warm_mb": round(warm[0], 1) if warm else None,
        "rss_end_mb": round(run.memory[-1][1], 1) if run.memory else None,
        "rss_peak_mb": round(max(mb for _, mb in run.memory), 1) if run.memory else None,
        "growth_after_warmup": round(growth, 4),
        "errors": [r.error for r in run.results if not r.ok][:10],
    }
    if args.json:
        print(json.dumps({"rows": rows, **summary}, ensure_ascii=False))
        return
    burst = f" + {args.voice_sessions} speaking only" if args.voice_sessions else ""
    print(
        f"{args.sessions} sessions{burst} for {args.seconds:g} s "
        f"(voice {args.voice_share:.0%}, draw {args.draw_share:.0%})"
    )
    print(f"{'kind':<7}{'requests':>9}{'errors':>7}{'p50 s':>8}{'p95 s':>8}{'1st text':>9}{'1st audio':>10}")
    for r in rows:
        fa = "-" if r["first_audio_p50_s"] is None else f"{r['first_audio_p50_s']:.2f}"
        print(
            f"{r['kind']:<7}{r['requests']:>9}{r['errors']:>7}{r['p50_s']:>8.2f}{r['p95_s']:>8.2f}"
            f"{r['first_text_p50_s']:>9.2f}{fa:>10}"
        )
    if summary["rss_start_mb"] is None:
        print("memory: not sampled (apps serving elsewhere: measure each process where it runs)")
    else:
        print(
            f"memory: start {summary['rss_start_mb']} MiB, after warm-up {summary['rss_warm_mb']} MiB, "
            f"end {summary['rss_end_mb']} MiB, peak {summary['rss_peak_mb']} MiB, "
            f"growth after warm-up {growth:+.1%}"
        )
    for err in summary["errors"]:
        print(f"error: {err}")


if __name__ == "__main__":
    main()
