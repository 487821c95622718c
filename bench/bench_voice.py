"""A whole voice turn on the embedded default: time to first audio from the end of the question.

    eval "$(../shared/dev-models/fetch)"   # WULEWULE_DEV_WHISPER, the dev Whisper-base
    .venv/bin/python bench/bench_voice.py [--questions 24] [--runs 3] [--json] [--set KEY=V] [--vs KEY=V]

The Companion runs in-process on the shipped knowledge base with the extractive answerer and the espeak
voice, as `python -m app` does with nothing downloaded. "typed": from handing over the question to the
first audio chunk. "spoken": push-to-talk — from handing over a whole testdata recording (the moment the
player lets go of the button) to the first audio chunk, recognition (dev Whisper-base, the app's
asr.whisper settings) included. "gaps": a chunk not ready when the one before it has finished playing
(playback starting with the first chunk).

"answered right" scores the answers: a spoken question is right when the answer to its transcript holds
one of the question's keys (KEYS below, facts from the knowledge base; eval's rule). "same questions typed"
asks each recording's reference transcript as typed text, so the difference between the two is what
recognition costs. TTFA figures are the median over runs of each run's percentile. ``--vs KEY=V`` measures
a second recogniser (the same answerer) in the same run, its spoken turns alternating with the first's.
The answerer's sentence vectors are built before anything is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from app.companion import Companion
from app.config import load_settings
from app.evaluation import percentile
from app.events import Answer, Heard, SpeechChunk

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
# What a right answer to each spoken testdata question holds (any one, case-insensitive). Where the eval
# sets ask the same question, their keys; otherwise the fact as the knowledge base words it. zh_06 and
# zh_10 ask what the knowledge base does not hold: only a refusal is right.
KEYS: dict[str, list[str]] = {
    "zh_01.wav": ["黑风山"],
    "zh_02.wav": ["定风珠"],
    "zh_03.wav": ["金身", "禁字法"],
    "zh_04.wav": ["绣花针"],
    "zh_05.wav": ["毒"],
    "zh_06.wav": ["没有找到", "没有相关"],
    "zh_07.wav": ["第六回"],
    "zh_08.wav": ["三尖两刃刀"],
    "zh_09.wav": ["水帘洞"],
    "zh_10.wav": ["没有找到", "没有相关"],
    "zh_11.wav": ["三到五小时", "3到5小时", "3-5"],
    "zh_12.wav": ["91"],
    "zh_13.wav": ["黑神话"],
    "zh_14.wav": ["赤潮", "广智", "十种"],
    "zh_15.wav": ["第五回", "火焰山"],
    "zh_16.wav": ["囚禁"],
    "zh_17.wav": ["王灵官"],
    "zh_18.wav": ["弹开", "格挡", "弹反"],
    "zh_19.wav": ["上清宝葫芦", "Medicine Buddha", "Supreme Gourd"],
    "zh_20.wav": ["单人", "单机", "没有联机", "没有多人", "single-player"],
    "en_01.wav": ["six chapters", "6 chapters", "seven parts"],
    "en_02.wav": ["定身法", "Immobilize"],
    "en_03.wav": ["Xbox Series"],
    "en_04.wav": ["Yellow Wind Ridge", "黄风岭", "黄风阵"],
}


@dataclass
class Turn:
    """One measured turn."""

    first_audio_s: float | None
    gaps: int
    audio_s: float
    heard: str  # the transcript a spoken turn asked; "" for typed
    answer: str


def measure(companion: Companion, **turn: object) -> Turn:
    """Seconds to first audio, gaps, seconds of audio, the transcript and the answer of one turn."""
    started = time.perf_counter()
    first = None
    playing_until = 0.0  # when the audio received so far finishes playing, on the clock
    gaps = 0
    audio = 0.0
    heard = answer = ""
    for event in companion.turn(speak=True, **turn):  # type: ignore[arg-type]
        if isinstance(event, Heard):
            heard = event.transcript.text
        elif isinstance(event, Answer):
            answer = event.answer
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
    return Turn(first, gaps, audio, heard, answer)


def is_right(answer: str, keys: list[str]) -> bool:
    low = answer.lower()
    return any(key.lower() in low for key in keys)


def spoken_questions(limit: int) -> list[dict[str, str]]:
    """The testdata questions that have keys: file and reference text, Chinese first."""
    records = [json.loads(line) for line in (SPEECH / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r["kind"] == "question" and r["file"] in KEYS][:limit]


def summarise(kind: str, runs: list[list[Turn]]) -> dict[str, object]:
    """One row: medians over runs of each run's TTFA percentiles, and totals of the last run."""
    p50s, p95s = [], []
    for turns in runs:
        firsts = [t.first_audio_s for t in turns if t.first_audio_s is not None]
        p50s.append(percentile(firsts, 50))
        p95s.append(percentile(firsts, 95))
    last = runs[-1]
    return {
        "kind": kind,
        "turns": len(last),
        "runs": len(runs),
        "ttfa_p50_s": round(statistics.median(p50s), 3),
        "ttfa_p95_s": round(statistics.median(p95s), 3),
        "ttfa_p50_per_run": [round(v, 3) for v in p50s],
        "gaps": sum(t.gaps for t in last),
        "audio_s": round(sum(t.audio_s for t in last), 1),
        "silent_turns": sum(t.first_audio_s is None for t in last),
    }


@dataclass
class Scores:
    """How many spoken questions were answered right, against the same questions typed."""

    questions: int
    spoken_right: int
    typed_right: int
    kept_share: float  # of the questions answered right typed, the share still right spoken
    misses: list[dict[str, object]]

    def line(self, label: str) -> str:
        n = self.questions
        return (
            f"answered right{label}: spoken {self.spoken_right}/{n} ({self.spoken_right / n:.0%}), same questions "
            f"typed {self.typed_right}/{n} ({self.typed_right / n:.0%}); typed-right questions still right "
            f"when spoken: {self.kept_share:.0%}"
        )


def score(questions: list[dict[str, str]], spoken: list[Turn], typed: list[Turn]) -> Scores:
    right = [is_right(t.answer, KEYS[q["file"]]) for t, q in zip(spoken, questions, strict=True)]
    typed_right = [is_right(t.answer, KEYS[q["file"]]) for t, q in zip(typed, questions, strict=True)]
    both = sum(r and t for r, t in zip(right, typed_right, strict=True))
    misses: list[dict[str, object]] = [
        {"file": q["file"], "heard": t.heard, "typed_right": tr}
        for t, q, r, tr in zip(spoken, questions, right, typed_right, strict=True)
        if not r
    ]
    return Scores(len(questions), sum(right), sum(typed_right), round(both / max(1, sum(typed_right)), 3), misses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=24, help="at most this many of each kind")
    parser.add_argument("--runs", type=int, default=3, help="repeat the timed turns; medians over runs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="a setting, e.g. asr.whisper.beam_size=1"
    )
    parser.add_argument(
        "--vs",
        action="append",
        default=[],
        help="a setting for a second recogniser whose spoken turns alternate with the first's in the same run "
        "(repeatable), e.g. --vs asr.whisper.window_s=10",
    )
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="wulewule-voice-")
    sets = [f"app.data_dir={data}", "tts.backend=espeak"]
    whisper = os.environ.get("WULEWULE_DEV_WHISPER", "")
    if whisper:
        sets += ["asr.backend=whisper", f"asr.whisper.model={whisper}"]
    companion = Companion(load_settings(None, [*sets, *args.sets]))
    # The index, and the sentence vectors: built on a thread the first minute after start (a fresh data dir),
    # which would share the cores with the first turns measured and answer them without the vectors.
    companion.chat.warm_up(wait_for_vectors=True)
    measure(companion, text="黑熊精在哪里打？")  # warm-up: voice
    runs = max(1, args.runs)
    typed_runs = [[measure(companion, text=q) for q in TYPED[: args.questions]] for _ in range(runs)]
    rows = [summarise("typed", typed_runs)]
    questions = spoken_questions(args.questions) if whisper else []
    scores: dict[str, Scores] = {}
    if questions:
        # The same answerer for every recogniser: only what is heard differs.
        voices = {"spoken": companion}
        if args.vs:
            variant = Companion(load_settings(None, [*sets, *args.sets, *args.vs]), chat=companion.chat)
            voices["spoken vs"] = variant
        for voice in voices.values():
            measure(voice, audio=SPEECH / questions[-1]["file"])  # warm-up: the recogniser and the VAD
        spoken_runs: dict[str, list[list[Turn]]] = {kind: [] for kind in voices}
        for n in range(runs):
            turns: dict[str, list[Turn]] = {kind: [] for kind in voices}
            for i, q in enumerate(questions):
                order = list(voices) if (i + n) % 2 == 0 else list(reversed(voices))  # who goes first alternates
                for kind in order:
                    turns[kind].append(measure(voices[kind], audio=SPEECH / q["file"]))
            for kind in voices:
                spoken_runs[kind].append(turns[kind])
        typed = [measure(companion, text=q["text"]) for q in questions]
        for kind in voices:
            rows.append(summarise(kind, spoken_runs[kind]))
            scores[kind] = score(questions, spoken_runs[kind][-1], typed)
    if args.json:
        out = {"rows": rows, "answers": {k: asdict(v) for k, v in scores.items()}, "vs": args.vs}
        print(json.dumps(out, ensure_ascii=False))
        return
    print(
        f"{'question':<10}{'turns':>6}{'runs':>5}{'TTFA p50':>10}{'TTFA p95':>10}{'gaps':>6}{'audio s':>9}{'silent':>8}"
    )
    for r in rows:
        print(
            f"{r['kind']:<10}{r['turns']:>6}{r['runs']:>5}{r['ttfa_p50_s']:>10.3f}{r['ttfa_p95_s']:>10.3f}"
            f"{r['gaps']:>6}{r['audio_s']:>9.1f}{r['silent_turns']:>8}   p50 per run {r['ttfa_p50_per_run']}"
        )
    if args.vs:
        first, second = rows[-2]["ttfa_p50_s"], rows[-1]["ttfa_p50_s"]
        assert isinstance(first, float) and isinstance(second, float)
        print(f"spoken vs = {' '.join(args.vs)}: p50 {second / first:.2f}x the first's, same run")
    for kind, result in scores.items():
        print(result.line(f" ({kind})"))
        for miss in result.misses:
            print(f"  wrong when spoken: {miss['file']} heard {miss['heard']!r} (typed right: {miss['typed_right']})")
    if not whisper:
        print('spoken: skipped (set WULEWULE_DEV_WHISPER: eval "$(../shared/dev-models/fetch)")')


if __name__ == "__main__":
    main()
