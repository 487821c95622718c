"""Benchmark speech recognition: real-time factor, time per stage and error rates on the spoken fixtures.

    eval "$(../shared/dev-models/fetch)"   # sets WULEWULE_DEV_WHISPER, the dev Whisper-base
    .venv/bin/python bench/bench_asr.py [--threads 2] [--runs 3] [--stages] [--sweep] [--ablation] [--json]

Each row runs the app's SpeechPipeline (load_audio -> silero VAD -> recogniser -> game-term correction) on
the fixtures in ../shared/testdata/speech: Whisper-base with the app's asr.whisper defaults on the 20
Chinese questions (CER before and after correction, measured as the fixtures' README says) and, with
language detection, on the English ones (WER); and FunASR on a tiny random Paraformer, whose text is
garbage: its row only shows the pipeline runs and what it costs (its RTF is meaningless for a real model).

RTF is wall time per audio second for the whole pipeline after a warm-up clip: each clip is transcribed
``--runs`` times and its median taken. "CPU s/s" is the process's CPU time per audio second, which is less
disturbed by other work on the machine (with 2 threads it can exceed the wall time).

``--stages`` prints, for the Chinese row, each clip's median milliseconds per stage: load (decoding the
file, and the pipeline's own work), VAD, Whisper's encoder, Whisper's decoding (everything else in
the recogniser: prompt, beam search, filters) and correction.

``--sweep`` compares faster-whisper settings on the Chinese clips: every setting is loaded once, then the
clips run round-robin (clip 1 under every setting, clip 2 …, ``--runs`` times), so a busy machine slows
them all alike; "x before" is each setting's RTF over the old defaults' in the same run. The table is
why the asr.whisper defaults are what they are (bench/README.md). Numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modules.asr.base import SpeechRecognizer, TranscriptSegment
from modules.asr.correction import TermCorrector
from modules.asr.hotwords import game_vocabulary
from modules.asr.metrics import ErrorRate, cer, mean_rate, wer
from modules.asr.recognize import SpeechPipeline
from modules.asr.settings import AsrSettings, FunasrSettings, WhisperSettings
from modules.asr.vad import SileroVad, VadResult
from modules.audio_types import AudioClip
from modules.rag.loader import load_documents

REPO = Path(__file__).resolve().parent.parent

SPEECH = REPO.parent / "shared" / "testdata" / "speech"
STAGES = ("load", "vad", "encoder", "decoding", "correction")

# The settings compared by --sweep: a label and the WhisperRecognizer options that differ from the defaults.
# "before" is the defaults this bench replaced: beam 5, timestamps decoded, faster-whisper's zero padding.
BEFORE = {"beam_size": 5, "without_timestamps": False, "pad_silence": False}
SWEEP: list[tuple[str, dict[str, Any]]] = [
    ("before: beam 5, timestamps, zero pad", BEFORE),
    ("beam 5, timestamps", {"beam_size": 5, "without_timestamps": False}),
    ("beam 5", {"beam_size": 5}),
    ("beam 2 (default)", {}),
    ("beam 1", {"beam_size": 1}),
    ("beam 2, zero pad", {"pad_silence": False}),
    ("beam 2, prompt 140 tokens", {"prompt_tokens": 140}),
    ("beam 2, prompt 80 tokens", {"prompt_tokens": 80}),
    ("beam 2, window 20 s", {"window_s": 20}),
    ("beam 2, window 10 s", {"window_s": 10}),
    ("beam 1, window 10 s", {"beam_size": 1, "window_s": 10}),
    ("beam 2, window 6 s", {"window_s": 6}),
]


@dataclass
class Row:
    """One backend (or one setting) on one set of clips."""

    backend: str
    clips: int
    audio_s: float
    rtf: float  # wall seconds per audio second (median of the runs, clip by clip)
    cpu_per_s: float  # process CPU seconds per audio second
    metric: str  # cer | wer
    raw: float  # mean error rate of the recogniser's text
    corrected: float  # ... and after game-term correction
    note: str = ""
    encoder_per_s: float | None = None  # Whisper's encoder, wall seconds per audio second
    vs_before: float | None = None  # RTF over the "before" setting's, same run (--sweep)


@dataclass
class Clock:
    """Seconds spent per stage on the clip being transcribed."""

    spent: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.spent[stage] = self.spent.get(stage, 0.0) + seconds

    def take(self) -> dict[str, float]:
        spent, self.spent = self.spent, {}
        return spent


class TimedVad(SileroVad):
    def __init__(self, clock: Clock, threshold: float) -> None:
        super().__init__(threshold=threshold)
        self.clock = clock

    def trim(self, clip: AudioClip) -> VadResult | None:
        started = time.perf_counter()
        try:
            return super().trim(clip)
        finally:
            self.clock.add("vad", time.perf_counter() - started)


class TimedCorrector(TermCorrector):
    def __init__(self, clock: Clock, names: Sequence[str]) -> None:
        super().__init__(names)
        self.clock = clock

    def correct(self, text: str) -> str:
        started = time.perf_counter()
        try:
            return super().correct(text)
        finally:
            self.clock.add("correction", time.perf_counter() - started)


class TimedRecognizer:
    """A recogniser whose segments are timed; Whisper's encoder share is read from the recogniser."""

    def __init__(self, inner: SpeechRecognizer, clock: Clock) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = clock

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        encoder_before = getattr(self.inner, "encoder_seconds", 0.0)
        started = time.perf_counter()
        found = list(self.inner.segments(audio))
        total = time.perf_counter() - started
        encoder = getattr(self.inner, "encoder_seconds", 0.0) - encoder_before
        self.clock.add("encoder", encoder)
        self.clock.add("decoding", total - encoder)
        return iter(found)


class TimedPipeline(SpeechPipeline):
    """The app's pipeline with each stage timed into ``clock``."""

    def __init__(self, settings: AsrSettings, names: Sequence[str], recognizer: SpeechRecognizer | None = None) -> None:
        self.clock = Clock()
        super().__init__(settings, names, REPO, recognizer)
        self._timed_recognizer: TimedRecognizer | None = None
        self._timed_vad: TimedVad | None = None
        self._timed_corrector: TimedCorrector | None = None

    def recognizer(self) -> SpeechRecognizer:
        inner = super().recognizer()
        if self._timed_recognizer is None or self._timed_recognizer.inner is not inner:
            self._timed_recognizer = TimedRecognizer(inner, self.clock)
        return self._timed_recognizer

    def vad(self) -> SileroVad:
        if self._timed_vad is None:
            self._timed_vad = TimedVad(self.clock, self.settings.vad_threshold)
        return self._timed_vad

    def corrector(self) -> TermCorrector:
        if self._timed_corrector is None:
            self._timed_corrector = TimedCorrector(self.clock, self.names)
        return self._timed_corrector


@dataclass
class Take:
    """One transcription of one clip."""

    wall: float
    cpu: float
    audio_s: float
    raw_text: str
    text: str
    stages: dict[str, float]


def take(pipeline: TimedPipeline, path: Path) -> Take:
    pipeline.clock.take()
    start, start_cpu = time.perf_counter(), time.process_time()
    heard = pipeline.transcribe(path)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    stages = pipeline.clock.take()
    stages["load"] = wall - sum(stages.values())
    return Take(wall, cpu, heard.audio_seconds, heard.raw_text, heard.text, stages)


def load_clips(speech: Path, lang: str) -> list[dict]:
    records = [json.loads(line) for line in (speech / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r["kind"] == "question" and r["lang"] == lang]


def summarise(name: str, clips: list[dict], takes: list[list[Take]], metric: str, note: str = "") -> Row:
    """A row from ``takes[clip][run]``: medians per clip, error rates from the first run (decoding is fixed)."""
    measure: Callable[[str, str], ErrorRate] = cer if metric == "cer" else wer
    audio = sum(t[0].audio_s for t in takes)
    wall = sum(statistics.median(x.wall for x in t) for t in takes)
    cpu = sum(statistics.median(x.cpu for x in t) for t in takes)
    encoder = sum(statistics.median(x.stages.get("encoder", 0.0) for x in t) for t in takes)
    raw = [measure(c["text"], t[0].raw_text) for c, t in zip(clips, takes, strict=True)]
    fixed = [measure(c["text"], t[0].text) for c, t in zip(clips, takes, strict=True)]
    for clip, t, r, f in zip(clips, takes, raw, fixed, strict=True):
        print(f"  {name:<28} {clip['file']:<10} {r.rate:5.2f} {f.rate:5.2f}  {t[0].text}", file=sys.stderr)
    return Row(
        name, len(clips), audio, wall / audio, cpu / audio, metric, mean_rate(raw), mean_rate(fixed), note,
        encoder / audio if encoder else None,
    )  # fmt: skip


def run(
    name: str, pipeline: TimedPipeline, speech: Path, clips: list[dict], metric: str, runs: int, note: str = ""
) -> tuple[Row, list[list[Take]]]:
    """(row, takes[clip][run]) for one pipeline on the clips."""
    # Warm-up (models load) on the last clip, and every run through all the clips in turn: Whisper keeps its
    # last encoder output, and the same clip twice in a row would not be encoded again.
    take(pipeline, speech / clips[-1]["file"])
    takes: list[list[Take]] = [[] for _ in clips]
    for _ in range(runs):
        for i, clip in enumerate(clips):
            takes[i].append(take(pipeline, speech / clip["file"]))
    return summarise(name, clips, takes, metric, note), takes


def stage_table(clips: list[dict], takes: list[list[Take]]) -> str:
    """Median milliseconds per stage, clip by clip, then the median clip."""
    lines = [f"{'clip':<10} {'audio s':>7} " + " ".join(f"{s:>10}" for s in STAGES) + f" {'total':>8}"]
    columns: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
    for clip, t in zip(clips, takes, strict=True):
        ms = {s: 1000 * statistics.median(x.stages.get(s, 0.0) for x in t) for s in STAGES}
        ms["total"] = 1000 * statistics.median(x.wall for x in t)
        for s, v in ms.items():
            columns[s].append(v)
        cells = " ".join(f"{ms[s]:>10.1f}" for s in STAGES)
        lines.append(f"{clip['file']:<10} {t[0].audio_s:>7.2f} {cells} {ms['total']:>8.1f}")
    cells = " ".join(f"{statistics.median(columns[s]):>10.1f}" for s in STAGES)
    lines.append(f"{'median':<10} {'':>7} {cells} {statistics.median(columns['total']):>8.1f}")
    return "\n".join(lines)


def sweep(model: Path, names: list[str], threads: int, speech: Path, clips: list[dict], runs: int) -> list[Row]:
    """Every SWEEP setting on the Chinese clips, round-robin (see the module docstring)."""
    from modules.asr.whisper_asr import WhisperRecognizer

    defaults = WhisperSettings()
    pipelines: list[TimedPipeline] = []
    for _, options in SWEEP:
        kwargs: dict[str, Any] = {
            "beam_size": defaults.beam_size,
            "prompt_tokens": defaults.prompt_tokens,
            "without_timestamps": defaults.without_timestamps,
            "window_s": defaults.window_s,
            **options,
        }
        recognizer = WhisperRecognizer(model, names, language="zh", cpu_threads=threads, **kwargs)
        pipeline = TimedPipeline(AsrSettings(language="zh"), names, recognizer)
        take(pipeline, speech / clips[-1]["file"])  # warm-up on a clip that is not the next one
        pipelines.append(pipeline)
    takes: list[list[list[Take]]] = [[[] for _ in clips] for _ in SWEEP]
    for n in range(runs):
        for i, clip in enumerate(clips):
            order = list(range(len(SWEEP)))
            shift = (i + n) % len(order)  # a different setting goes first each time
            for k in order[shift:] + order[:shift]:
                takes[k][i].append(take(pipelines[k], speech / clip["file"]))
        print(f"sweep: run {n + 1}/{runs} done", file=sys.stderr)
    rows = [summarise(label, clips, t, "cer") for (label, _), t in zip(SWEEP, takes, strict=True)]
    for row in rows:
        row.vs_before = row.rtf / rows[0].rtf
    return rows


def print_rows(rows: list[Row], title: str) -> None:
    print(title)
    header = ("setting" if "sweep" in title else "backend", "clips", "audio s", "RTF", "CPU s/s", "enc s/s")
    print("{:<38} {:>5} {:>8} {:>6} {:>8} {:>8}".format(*header) + "  metric    raw  fixed  x before  note")
    print("-" * 120)
    for r in rows:
        enc = f"{r.encoder_per_s:>8.3f}" if r.encoder_per_s is not None else f"{'-':>8}"
        vs = f"{r.vs_before:>8.2f}" if r.vs_before is not None else f"{'-':>8}"
        print(
            f"{r.backend:<38} {r.clips:>5} {r.audio_s:>8.1f} {r.rtf:>6.3f} {r.cpu_per_s:>8.3f} {enc} "
            f"{r.metric:>7} {r.raw:>6.3f} {r.corrected:>6.3f}  {vs}  {r.note}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whisper", default=os.environ.get("WULEWULE_DEV_WHISPER", ""), help="faster-whisper dir")
    parser.add_argument("--speech", type=Path, default=SPEECH, help="the spoken-question fixtures")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for Whisper (the reference has 2)")
    parser.add_argument("--runs", type=int, default=3, help="transcribe each clip this many times (medians)")
    parser.add_argument("--stages", action="store_true", help="print each clip's time per stage (Chinese row)")
    parser.add_argument("--sweep", action="store_true", help="compare faster-whisper settings (slow)")
    parser.add_argument("--ablation", action="store_true", help="also run Whisper without its prompt")
    parser.add_argument("--no-funasr", action="store_true", help="skip the tiny random FunASR row")
    parser.add_argument("--funasr-model", default="", help="a real FunASR model dir or downloaded hub id")
    parser.add_argument(
        "--funasr-vad", default="", help="its VAD model (e.g. iic/speech_fsmn_vad_zh-cn-16k-common-pytorch)"
    )
    parser.add_argument("--funasr-punc", default="", help="its punctuation model")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of tables")
    args = parser.parse_args()
    if not (args.speech / "manifest.jsonl").is_file():
        parser.error(f"no speech fixtures in {args.speech}")
    runs = max(1, args.runs)

    from modules.asr.whisper_asr import WhisperRecognizer

    names = game_vocabulary(load_documents([REPO / "assets" / "knowledge"]))
    zh, en = load_clips(args.speech, "zh"), load_clips(args.speech, "en")
    rows: list[Row] = []
    sweep_rows: list[Row] = []
    extra: dict[str, Any] = {}
    stages = ""
    if args.whisper:
        model = Path(args.whisper)
        defaults = WhisperSettings(cpu_threads=args.threads)
        for use_prompt, label in [(True, "whisper zh")] + ([(False, "whisper no-prompt")] if args.ablation else []):
            recognizer = WhisperRecognizer.from_settings(defaults.model_copy(update={"prompt": use_prompt}), model,
                                                         names, "zh")  # fmt: skip
            pipeline = TimedPipeline(AsrSettings(language="zh"), names, recognizer)
            row, takes = run(label, pipeline, args.speech, zh, "cer", runs, "prompt + correction" if use_prompt else "")
            rows.append(row)
            if use_prompt:
                stages = stage_table(zh, takes)
                correction = [x.stages.get("correction", 0.0) for t in takes for x in t]
                extra["correction_ms_per_question"] = 1000 * statistics.median(correction)
                extra["stage_ms_median"] = {
                    s: 1000 * statistics.median(statistics.median(x.stages.get(s, 0.0) for x in t) for t in takes)
                    for s in STAGES
                }
        recognizer = WhisperRecognizer.from_settings(defaults, model, names, "auto")
        pipeline = TimedPipeline(AsrSettings(language="auto"), names, recognizer)
        rows.append(run("whisper auto", pipeline, args.speech, en, "wer", runs, "language detected")[0])
        if args.sweep:
            sweep_rows = sweep(model, names, args.threads, args.speech, zh, runs)
    else:
        print('WULEWULE_DEV_WHISPER is unset: no Whisper rows (eval "$(../shared/dev-models/fetch)")', file=sys.stderr)
    # FunASR prints its version to stdout on import: keep stdout for the tables (and --json).
    with contextlib.redirect_stdout(sys.stderr):
        if args.funasr_model:
            # A real FunASR model (python -m app download asr): its RTF and CER on this machine.
            funasr = FunasrSettings(model=args.funasr_model, vad_model=args.funasr_vad, punc_model=args.funasr_punc)
            pipeline = TimedPipeline(AsrSettings(backend="funasr", funasr=funasr), names)
            rows.append(run("funasr", pipeline, args.speech, zh, "cer", runs, Path(args.funasr_model).name)[0])
        if not args.no_funasr:
            from tests.modules.asr.tiny_paraformer import build_tiny_paraformer

            with tempfile.TemporaryDirectory() as tmp:
                model_dir = build_tiny_paraformer(Path(tmp) / "tiny-paraformer")
                settings = AsrSettings(
                    backend="funasr", funasr=FunasrSettings(model=str(model_dir), vad_model="", punc_model="")
                )
                pipeline = TimedPipeline(settings, names)
                rows.append(
                    run("funasr tiny", pipeline, args.speech, zh, "cer", runs, "tiny random — RTF meaningless")[0]
                )

    load = os.getloadavg()[0]
    if args.json:
        out = {"rows": [asdict(r) for r in rows], "sweep": [asdict(r) for r in sweep_rows], "load_avg_1m": load}
        print(json.dumps({**out, **extra}, ensure_ascii=False, indent=2))
        return 0
    print_rows(rows, f"speech recognition, {runs} runs per clip (medians), {args.threads} threads")
    for key, value in extra.items():
        if isinstance(value, float):
            print(f"{key}: {value:.2f}")
    if stages and args.stages:
        print(f"\nwhisper zh, milliseconds per stage (median of {runs} runs):\n{stages}")
    elif "stage_ms_median" in extra:
        print("median ms per stage: " + ", ".join(f"{s} {v:.1f}" for s, v in extra["stage_ms_median"].items()))
    if sweep_rows:
        print()
        print_rows(sweep_rows, f"faster-whisper settings sweep, Chinese clips, round-robin, {runs} runs per clip")
    print(f"\nload average (1 min) at the end: {load:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
