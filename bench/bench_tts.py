"""Benchmark speech out: time to first audio, real-time factor and gaps, per backend.

    .venv/bin/python bench/bench_tts.py [--backend espeak chattts] [--runs 3] [--cps 0] [--json]

Each backend speaks the same answers through ``SpeechStream`` (splitter, normaliser, synthesis ahead in
a worker thread), fed the text as it arrives, the way the app does:

- TTFA (time to first audio): from the moment the answer's first sentence is available as text to the
  moment its first audio chunk is ready. With the extractive answerer the whole answer exists within
  milliseconds, so the text is handed over at once (``--cps 0``); ``--cps N`` streams it at N characters
  a second like a chat model, and the time the first sentence took to arrive is subtracted.
- RTF (real-time factor): wall time to the last chunk / seconds of audio; under 1 keeps up with playback
  (with ``--cps`` it includes waiting for the text).
- gaps: playback starts with the first chunk; a gap is a chunk that is not ready when the one before it
  has finished playing. "0 / 0.00 s" means the voice never waits once it has started.

ChatTTS runs on random weights in the released sizes (a 20-layer GPT), built with the test fixture
builder: no real weights are reachable here. Random weights never sample the end token, so each
sentence is capped at the audio length a real reading would have (about 4.5 Chinese characters or
2.8 English words a second); its rows are labelled "cost estimate only". Numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from modules.audio_types import AudioClip
from modules.tts.base import SpeechSynthesizer
from modules.tts.service import SpeechStream
from modules.tts.settings import ChatTTSSettings, EspeakSettings, TtsSettings
from modules.tts.splitter import SentenceSplitter

REPO = Path(__file__).resolve().parent.parent

ANSWERS = {
    "zh": "黑熊精是第一回的最终头目，盘踞在黑风山[1]。他在黑风山山顶的黑风洞前与天命人交手[1]。"
    "黑熊精的扑击范围很大，向侧后方闪避比后撤更安全[2]。",
    "en": "The Black Bear Guai is the final boss of Chapter 1, fought at the summit of Black Wind Mountain [1]. "
    "His lunges cover a lot of ground, so dodge sideways and back rather than straight back [2].",
}


@dataclass(frozen=True)
class Row:
    backend: str
    label: str
    lang: str
    ttfa_s: float
    rtf: float
    audio_s: float
    chunks: int
    gaps: int
    gap_s: float


def playback_gaps(ready: list[float], durations: list[float]) -> tuple[int, float]:
    """Gaps when chunks play back to back from the first one's arrival: (count, total seconds)."""
    count, total = 0, 0.0
    play_end = ready[0] + durations[0]
    for at, seconds in zip(ready[1:], durations[1:], strict=True):
        if at > play_end:
            count, total = count + 1, total + (at - play_end)
            play_end = at + seconds
        else:
            play_end += seconds
    return count, total


def text_stream(text: str, cps: float) -> Iterator[str]:
    """The answer as a chat model would send it: all at once (cps 0) or a few characters at a time."""
    if cps <= 0:
        yield text
        return
    step = 4
    for start in range(0, len(text), step):
        time.sleep(step / cps)
        yield text[start : start + step]


def measure(synth: SpeechSynthesizer, lang: str, cps: float) -> tuple[float, float, float, int, int, float]:
    text = ANSWERS[lang]
    first_sentence_at = len(SentenceSplitter().split(text)[0]) / cps if cps > 0 else 0.0
    ready, durations = [], []
    started = time.perf_counter()
    stream = SpeechStream(synth, TtsSettings(), lang)  # type: ignore[arg-type]

    def note(clips: list[AudioClip]) -> None:
        for clip in clips:
            ready.append(time.perf_counter() - started)
            durations.append(clip.seconds)

    # The app's loop: text in as it is written, finished audio taken between pieces, the rest at the end.
    for delta in text_stream(text, cps):
        stream.feed(delta)
        note(stream.ready())
    stream.end()
    for clip in stream:
        note([clip])
    wall = ready[-1]
    audio = sum(durations)
    gaps, gap_s = playback_gaps(ready, durations)
    return ready[0] - first_sentence_at, wall / audio, audio, len(ready), gaps, gap_s


class ReadingLengthChatTTS:
    """ChatTTS with each sentence capped at a real reading's length (random weights never stop on their own)."""

    name = "chattts"
    sample_rate = 24000
    TOKENS_PER_SECOND = 24000 / 256 / 2  # ChatTTS audio tokens: two mel frames of 256 samples each

    def __init__(self, synth) -> None:
        self.synth = synth

    def stream_tts(self, text: str) -> Iterator[AudioClip]:
        han = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
        words = len([w for w in text.split() if w.isascii()])
        seconds = han / 4.5 + words / 2.8 + 0.3
        self.synth.max_audio_tokens = max(24, math.ceil(seconds * self.TOKENS_PER_SECOND))
        self.synth.max_refine_tokens = len(text) + 8
        yield from self.synth.stream_tts(text)


def espeak_synth() -> tuple[SpeechSynthesizer, str]:
    from modules.tts.espeak_tts import EspeakSynthesizer

    return EspeakSynthesizer(EspeakSettings()), "espeak-ng"


def chattts_synth(workdir: Path, size: str) -> tuple[SpeechSynthesizer, str]:
    from modules.tts.chattts_tts import ChatTTSSynthesizer
    from tests.modules.tts.tiny_chattts import build_tiny_chattts

    text = "".join(ANSWERS.values())
    layers, intermediate = (20, 3072) if size == "full" else (2, 256)
    root = build_tiny_chattts(workdir / "chattts", text=text, gpt_layers=layers, gpt_intermediate=intermediate)
    synth = ChatTTSSynthesizer(ChatTTSSettings(device="auto"), root, None, verify_checksums=False)
    synth.load()
    return ReadingLengthChatTTS(synth), f"random weights, {size} size: cost estimate only ({synth.device})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", nargs="+", choices=["espeak", "chattts"], default=["espeak", "chattts"])
    parser.add_argument("--lang", nargs="+", choices=sorted(ANSWERS), default=sorted(ANSWERS))
    parser.add_argument("--runs", type=int, default=3, help="timed runs per answer (median reported), after a warm-up")
    parser.add_argument("--cps", type=float, default=0.0, help="stream the answer at N chars/s (0: all at once)")
    parser.add_argument("--chattts-size", choices=["full", "tiny"], default="full")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backend:
            try:
                synth, label = espeak_synth() if backend == "espeak" else chattts_synth(Path(tmp), args.chattts_size)
            except (FileNotFoundError, ImportError) as exc:
                print(f"{backend}: skipped ({exc})", file=sys.stderr)
                continue
            for lang in args.lang:
                measure(synth, lang, 0.0)  # warm-up: first-call compilation and caches
                runs = [measure(synth, lang, args.cps) for _ in range(max(1, args.runs))]
                med = [statistics.median(r[k] for r in runs) for k in range(6)]
                rows.append(Row(backend, label, lang, med[0], med[1], med[2], int(med[3]), int(med[4]), med[5]))

    if args.json:
        print(json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2))
        return
    print(f"answer text: {'all at once' if args.cps <= 0 else f'streamed at {args.cps:g} chars/s'}; medians")
    print(f"{'backend':8} {'lang':4} {'TTFA s':>7} {'RTF':>6} {'audio s':>8} {'chunks':>6} {'gaps (n / s)':>13}  label")
    for r in rows:
        print(
            f"{r.backend:8} {r.lang:4} {r.ttfa_s:7.3f} {r.rtf:6.2f} {r.audio_s:8.2f} {r.chunks:6d} "
            f"{r.gaps:>5d} / {r.gap_s:5.2f}  {r.label}"
        )


if __name__ == "__main__":
    main()
