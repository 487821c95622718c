"""Conversation mode in a real browser for a long stretch: memory, stuck turns and errors.

    .venv/bin/python bench/bench_conversation_soak.py [--minutes 10]

Starts `python -m app serve` (dev Whisper-base, espeak-ng voice; WULEWULE_DEV_WHISPER from
`eval "$(../shared/dev-models/fetch)"`) and Debian's chromium with a fake microphone that plays a spoken
question followed by silence, in a loop: a hands-free turn every few seconds, with barge-in whenever
the question comes back while the answer is still being spoken. Every 30 s it samples the app's
resident memory; at the end it counts the questions heard, the answers written and any error in the
chat, and checks that the last question was answered (no stuck turn).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from bench_load import start_app
from bench_rag import rss_mb
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO.parent / "shared" / "testdata" / "speech"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]


def looped_question(out: Path, gap_s: float) -> Path:
    shape = f"adelay=1000|1000,apad=pad_dur={gap_s}"
    command = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(SPEECH / "zh_01.wav"), "-af", shape]
    subprocess.run([*command, "-ac", "1", "-ar", "48000", "-c:a", "pcm_s16le", str(out)], check=True)
    return out


def main() -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--gap", type=float, default=9.0, help="seconds of silence after each question")
    args = parser.parse_args()
    whisper = os.environ.get("WULEWULE_DEV_WHISPER")
    if not whisper:
        parser.error('WULEWULE_DEV_WHISPER is unset: eval "$(../shared/dev-models/fetch)"')
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {
            "WULEWULE_ASR__BACKEND": "whisper",
            "WULEWULE_ASR__WHISPER__MODEL": whisper,
            "WULEWULE_TTS__BACKEND": "espeak",
        }
        proc, url = start_app(root, env)
        wav = looped_question(root / "mic.wav", args.gap)
        samples: list[tuple[float, float]] = []
        try:
            with sync_playwright() as p:
                fake = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    headless=True,
                    args=[*CHROMIUM_ARGS, *fake, f"--use-file-for-fake-audio-capture={wav}"],
                )
                page = browser.new_context(locale="zh-CN", permissions=["microphone"]).new_page()
                page.goto(url)
                page.locator("#hands-free input").check()
                page.locator("#live-mic").get_by_role("button", name=re.compile("Record|录制|录音", re.I)).first.click()
                started = time.perf_counter()
                while (elapsed := time.perf_counter() - started) < args.minutes * 60:
                    samples.append((elapsed, rss_mb(proc.pid)))
                    time.sleep(30)
                time.sleep(args.gap + 8)  # let the last turn finish
                chat = page.locator("#chatbot").inner_text()
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        log = (root / "app.log").read_text(errors="replace")
    asked = chat.count("黑熊精住在哪")
    answered = chat.count("黑风山")
    cut = chat.count("（被打断）")
    errors = chat.count("出错了") + log.count("Traceback")
    warm = next((mb for t, mb in samples if t >= 120), samples[0][1])
    peak_after = max(mb for t, mb in samples if t >= 120) if any(t >= 120 for t, _ in samples) else warm
    print(f"conversation mode soak: {args.minutes:g} min, a question every ~{args.gap + 3:.0f} s")
    print(f"{'questions heard':<34}{asked:>8}")
    print(f"{'answers written':<34}{answered:>8}")
    print(f"{'answers cut by barge-in':<34}{cut:>8}")
    print(f"{'errors (chat + app log)':<34}{errors:>8}")
    print(f"{'app RSS at 2 min, MiB':<34}{warm:>8.0f}")
    print(f"{'app RSS peak after, MiB':<34}{peak_after:>8.0f}")
    print(f"{'growth after warm-up':<34}{(peak_after / warm - 1):>8.1%}")
    print("RSS samples (s, MiB): " + ", ".join(f"{t:.0f}:{mb:.0f}" for t, mb in samples))
    return 0 if errors == 0 and asked and answered else 1


if __name__ == "__main__":
    raise SystemExit(main())
