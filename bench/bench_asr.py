"""Benchmark speech recognition: real-time factor and error rates on the spoken-question fixtures.

    eval "$(../shared/dev-models/fetch)"   # sets WULEWULE_DEV_WHISPER, the dev Whisper-base
    .venv/bin/python bench/bench_asr.py [--threads 2] [--ablation] [--json]

Each row runs the app's SpeechPipeline (load_audio -> silero VAD -> recogniser -> game-term correction) on
the fixtures in ../shared/testdata/speech: Whisper-base on the 20 Chinese questions (CER before and after
correction, measured as the fixtures' README says) and, with language detection, on the English ones
(WER); and FunASR on a tiny random Paraformer, whose text is garbage: its row only shows the pipeline runs
and what it costs (its RTF is meaningless for a real model). RTF is wall time per audio second for the
whole pipeline after a warm-up clip; "CPU s/s" is the process's CPU time per audio second, which is less
disturbed by other work on the machine. Numbers depend on the machine; the README records the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from modules.asr.hotwords import game_vocabulary
from modules.asr.metrics import ErrorRate, cer, mean_rate, wer
from modules.asr.recognize import SpeechPipeline
from modules.asr.settings import AsrSettings, FunasrSettings
from modules.rag.loader import load_documents

REPO = Path(__file__).resolve().parent.parent

SPEECH = REPO.parent / "shared" / "testdata" / "speech"


@dataclass
class Row:
    """One backend on one set of clips."""

    backend: str
    clips: int
    audio_s: float
    rtf: float  # wall seconds per audio second
    cpu_per_s: float  # process CPU seconds per audio second
    metric: str  # cer | wer
    raw: float  # mean error rate of the recogniser's text
    corrected: float  # ... and after game-term correction
    note: str = ""


def load_clips(speech: Path, lang: str) -> list[dict]:
    records = [json.loads(line) for line in (speech / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r["kind"] == "question" and r["lang"] == lang]


def run(name: str, pipeline: SpeechPipeline, speech: Path, clips: list[dict], metric: str, note: str = "") -> Row:
    measure: Callable[[str, str], ErrorRate] = cer if metric == "cer" else wer
    pipeline.transcribe(speech / clips[0]["file"])  # warm-up: models load, caches fill
    raw, fixed = [], []
    audio = wall = cpu = 0.0
    for clip in clips:
        start, start_cpu = time.perf_counter(), time.process_time()
        heard = pipeline.transcribe(speech / clip["file"])
        wall += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        audio += heard.audio_seconds
        raw.append(measure(clip["text"], heard.raw_text))
        fixed.append(measure(clip["text"], heard.text))
        print(
            f"  {name:<14} {clip['file']:<10} {raw[-1].rate:5.2f} {fixed[-1].rate:5.2f}  {heard.text}", file=sys.stderr
        )
    return Row(name, len(clips), audio, wall / audio, cpu / audio, metric, mean_rate(raw), mean_rate(fixed), note)


def correction_ms(pipeline: SpeechPipeline, texts: list[str], repeats: int = 20) -> float:
    """Mean milliseconds for one game-term correction of a question-length text."""
    corrector = pipeline.corrector()
    start = time.perf_counter()
    for _ in range(repeats):
        for text in texts:
            corrector.correct(text)
    return (time.perf_counter() - start) * 1000 / (repeats * len(texts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whisper", default=os.environ.get("WULEWULE_DEV_WHISPER", ""), help="faster-whisper dir")
    parser.add_argument("--speech", type=Path, default=SPEECH, help="the spoken-question fixtures")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for Whisper (the reference has 2)")
    parser.add_argument("--ablation", action="store_true", help="also run Whisper without its prompt")
    parser.add_argument("--no-funasr", action="store_true", help="skip the tiny random FunASR row")
    parser.add_argument("--funasr-model", default="", help="a real FunASR model dir or downloaded hub id")
    parser.add_argument(
        "--funasr-vad", default="", help="its VAD model (e.g. iic/speech_fsmn_vad_zh-cn-16k-common-pytorch)"
    )
    parser.add_argument("--funasr-punc", default="", help="its punctuation model")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    if not (args.speech / "manifest.jsonl").is_file():
        parser.error(f"no speech fixtures in {args.speech}")

    from modules.asr.whisper_asr import WhisperRecognizer

    names = game_vocabulary(load_documents([REPO / "assets" / "knowledge"]))
    zh, en = load_clips(args.speech, "zh"), load_clips(args.speech, "en")
    rows: list[Row] = []
    extra: dict[str, float] = {}
    if args.whisper:
        model = Path(args.whisper)
        for language, use_prompt, label in [("zh", True, "whisper zh")] + (
            [("zh", False, "whisper no-prompt")] if args.ablation else []
        ):
            recognizer = WhisperRecognizer(
                model, names, language=language, cpu_threads=args.threads, use_prompt=use_prompt
            )
            pipeline = SpeechPipeline(AsrSettings(language=language), names, REPO, recognizer=recognizer)
            rows.append(run(label, pipeline, args.speech, zh, "cer", "prompt + correction" if use_prompt else ""))
            if use_prompt:
                hyps = [pipeline.transcribe(args.speech / c["file"]).raw_text for c in zh[:5]]
                extra["correction_ms_per_question"] = correction_ms(pipeline, hyps)
        recognizer = WhisperRecognizer(model, names, language="auto", cpu_threads=args.threads)
        pipeline = SpeechPipeline(AsrSettings(language="auto"), names, REPO, recognizer=recognizer)
        rows.append(run("whisper auto", pipeline, args.speech, en, "wer", "language detected"))
    else:
        print('WULEWULE_DEV_WHISPER is unset: no Whisper rows (eval "$(../shared/dev-models/fetch)")', file=sys.stderr)
    if args.funasr_model:
        # A real FunASR model (python -m app download asr): its RTF and CER on this machine.
        funasr = FunasrSettings(model=args.funasr_model, vad_model=args.funasr_vad, punc_model=args.funasr_punc)
        pipeline = SpeechPipeline(AsrSettings(backend="funasr", funasr=funasr), names, REPO)
        rows.append(run("funasr", pipeline, args.speech, zh, "cer", Path(args.funasr_model).name))
    if not args.no_funasr:
        from tests.modules.asr.tiny_paraformer import build_tiny_paraformer

        with tempfile.TemporaryDirectory() as tmp:
            model_dir = build_tiny_paraformer(Path(tmp) / "tiny-paraformer")
            settings = AsrSettings(
                backend="funasr", funasr=FunasrSettings(model=str(model_dir), vad_model="", punc_model="")
            )
            pipeline = SpeechPipeline(settings, names, REPO)
            rows.append(run("funasr tiny", pipeline, args.speech, zh, "cer", "tiny random — RTF meaningless"))

    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows], **extra}, ensure_ascii=False, indent=2))
        return 0
    header = ("backend", "clips", "audio s", "RTF", "CPU s/s", "metric", "raw", "fixed")
    print("{:<18} {:>5} {:>8} {:>6} {:>8} {:>6} {:>6} {:>6}  note".format(*header))
    print("-" * 96)
    for r in rows:
        print(
            f"{r.backend:<18} {r.clips:>5} {r.audio_s:>8.1f} {r.rtf:>6.3f} {r.cpu_per_s:>8.3f} "
            f"{r.metric:>6} {r.raw:>6.3f} {r.corrected:>6.3f}  {r.note}"
        )
    for key, value in extra.items():
        print(f"{key}: {value:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
