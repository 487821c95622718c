"""A whole voice turn on the embedded default: time to first audio from the end of the question.

    .venv/bin/python bench/bench_voice.py [--questions 10] [--json]

The Companion runs in-process on the shipped knowledge base with the extractive answerer and the espeak
voice, as `python -m app` does with nothing downloaded. "typed": from handing over the question to the
first audio chunk. "spoken": from handing over a testdata recording (the end of the question) to the
first audio chunk, recognition (dev Whisper-base, WULEWULE_DEV_WHISPER) included. "gaps": a chunk not
ready when the one before it has finished playing (playback starting with the first chunk).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from app.companion import Companion
from app.config import load_settings
from app.evaluation import percentile
from app.events import SpeechChunk

REPO = Path(__file__).resolve().parent.parent

SPEECH = REPO.parent / "shared" / "testdata" / "speech"
TYPED = [
    "黑熊精在哪里打？",
    "黄眉在原著里是谁的童子？",
    "红孩儿的父亲是谁？",
    "隐藏结局怎么触发？",
    "定身法怎么用？",
    "第三回的最终头目是谁？",
    "虎先锋怎么打？",
    "Who developed Black Myth: Wukong?",
    "Where is the Black Bear Guai fought?",
    "What is the Staff of the Destined One called?",
]


def measure(companion: Companion, **turn: object) -> tuple[float | None, int, float]:
    """(seconds to first audio, gaps, seconds of audio) for one turn."""
    started = time.perf_counter()
    first = None
    playing_until = 0.0  # when the audio received so far finishes playing, on the clock
    gaps = 0
    audio = 0.0
    for event in companion.turn(speak=True, **turn):  # type: ignore[arg-type]
        if not isinstance(event, SpeechChunk):
            continue
        now = time.perf_counter() - started
        if first is None:
            first, playing_until = now, now
        elif now > playing_until + 0.01:
            gaps += 1
            playing_until = now
        playing_until += event.clip.seconds
        audio += event.clip.seconds
    return first, gaps, audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="a setting, e.g. asr.whisper.beam_size=1"
    )
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="wulewule-voice-")
    sets = [f"app.data_dir={data}", "tts.backend=espeak"]
    whisper = os.environ.get("WULEWULE_DEV_WHISPER", "")
    if whisper:
        sets += ["asr.backend=whisper", f"asr.whisper.model={whisper}"]
    companion = Companion(load_settings(None, [*sets, *args.sets]))
    measure(companion, text="黑熊精在哪里打？")  # warm-up: index, voice
    rows = []
    kinds: list[tuple[str, list[dict[str, object]]]] = [("typed", [{"text": q} for q in TYPED[: args.questions]])]
    if whisper:
        clips = sorted(SPEECH.glob("zh_*.wav"))[: args.questions]
        measure(companion, audio=clips[0])  # warm-up: the recogniser and the VAD
        kinds.append(("spoken", [{"audio": c} for c in clips]))
    for kind, turns in kinds:
        results = [measure(companion, **t) for t in turns]
        firsts = [r[0] for r in results if r[0] is not None]
        rows.append(
            {
                "kind": kind,
                "turns": len(results),
                "ttfa_p50_s": round(percentile(firsts, 50), 3),
                "ttfa_p95_s": round(percentile(firsts, 95), 3),
                "gaps": sum(r[1] for r in results),
                "audio_s": round(sum(r[2] for r in results), 1),
                "silent_turns": len(results) - len(firsts),
            }
        )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    print(f"{'question':<9}{'turns':>6}{'TTFA p50':>10}{'TTFA p95':>10}{'gaps':>6}{'audio s':>9}{'silent':>8}")
    for r in rows:
        print(
            f"{r['kind']:<9}{r['turns']:>6}{r['ttfa_p50_s']:>10.3f}{r['ttfa_p95_s']:>10.3f}{r['gaps']:>6}"
            f"{r['audio_s']:>9.1f}{r['silent_turns']:>8}"
        )
    if not whisper:
        print('spoken: skipped (set WULEWULE_DEV_WHISPER: eval "$(../shared/dev-models/fetch)")')


if __name__ == "__main__":
    main()
