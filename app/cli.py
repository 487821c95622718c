"""Command line: ``python -m app [serve|ask|eval|ingest|doctor|kb] …``.

Global options, before or after the command: ``--config PATH``, repeated ``--set dotted.key=value``
and ``-v``. ``--set`` flags from both places all apply, in the order written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from app.config import REPO_ROOT, Settings, load_settings
from llm.base import ChatModelError
from modules.config_layers import ConfigError
from modules.model_files import ModelNotFoundError

log = logging.getLogger("wulewule")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="悟了悟了 — a Black Myth: Wukong companion")
    parser.add_argument("--config", type=Path, help="a YAML file overriding configs/default.yaml")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set rag.top_k=8 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # The same options after the command land in their own names (a subcommand's values would
    # otherwise replace the ones given before it); main() merges them.
    late = argparse.ArgumentParser(add_help=False)
    late.add_argument("--config", dest="late_config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    late.add_argument("--set", dest="late_sets", action="append", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    late.add_argument("-v", "--verbose", dest="late_verbose", action="store_true", default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", parser_class=_parser_with(late))

    serve = sub.add_parser("serve", help="start the web app (the default command)")
    serve.add_argument("--host", help="bind address (default app.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default app.port, 7860)")
    serve.add_argument("--share", action="store_true", help="also open a public gradio share link (needs a login)")
    serve.add_argument(
        "--auth",
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="require this login (repeatable); required off loopback. Prefer the WULEWULE_AUTH variable",
    )

    ask = sub.add_parser("ask", help="answer one question (typed, or spoken with --audio)")
    ask.add_argument("question", nargs="?", default="")
    ask.add_argument("--audio", type=Path, help="a recording of the question (wav, mp3, webm, ogg …)")
    ask.add_argument("--json", action="store_true", help="print one JSON object")

    tr = sub.add_parser("transcribe", help="speech to text, with game names corrected")
    tr.add_argument("file", type=Path)
    tr.add_argument("--json", action="store_true", help="print one JSON object with text and raw_text")

    say = sub.add_parser("say", help="speak a text in the Monkey-King voice into a WAV file")
    say.add_argument("text")
    say.add_argument("-o", "--output", type=Path, required=True, help="the WAV file to write")
    say.add_argument("--json", action="store_true", help="print one JSON object")

    draw = sub.add_parser("draw", help="draw a picture from a sentence (Stable Diffusion + LoRA)")
    draw.add_argument("request")
    draw.add_argument("-o", "--output", type=Path, required=True, help="the PNG file to write")
    draw.add_argument("--seed", type=int, help="the seed (default: random; printed, to redraw the same picture)")
    draw.add_argument("--json", action="store_true", help="print one JSON object")

    voice = sub.add_parser("voice", help="voice tools for maintainers")
    voice_sub = voice.add_subparsers(dest="voice_command", required=True)
    aud = voice_sub.add_parser("audition", help="render a line with candidate ChatTTS speakers; ship the chosen one")
    aud.add_argument("--line", default="俺老孙来也！天命人，黑风山的黑熊精就在前头，小心它的扑击。")
    aud.add_argument("-n", type=int, default=8, help="how many candidate speakers to render")
    aud.add_argument("--out", type=Path, default=Path(".wulewule/audition"), help="where the candidates go")
    aud.add_argument("--choose", type=int, help="save candidate K as the shipped voice (tts.chattts.speaker)")

    ev = sub.add_parser("eval", help="measure answers on JSONL files of {q, keys}: one row per file")
    ev.add_argument("files", type=Path, nargs="+")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--show-misses", type=int, default=15, help="list this many wrong answers (text mode)")

    ingest = sub.add_parser("ingest", help="add your own documents (txt, md, pdf, jsonl) to the user knowledge base")
    ingest.add_argument("paths", nargs="+", type=Path)

    sub.add_parser("doctor", help="list every backend and model: found or missing, and how to fix it")

    dl = sub.add_parser("download", help="download the models of a preset (gpu, cpu) into models/")
    dl.add_argument("preset", nargs="?", help="the preset to download; --list shows them")
    dl.add_argument("--source", choices=["modelscope", "huggingface"], default="modelscope", help="the hub to use")
    dl.add_argument("--models-dir", type=Path, help="where models go (default models/, where the app looks)")
    dl.add_argument("--list", action="store_true", help="list the presets and their models")

    kb = sub.add_parser("kb", help="knowledge-base tools")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    kb_sub.add_parser("stats", help="entries and characters per category")
    return parser


def _parser_with(late: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """An ArgumentParser class whose every instance (each subcommand) also takes the global options."""

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args: object, **kwargs: object) -> None:
            parents = cast("list[argparse.ArgumentParser]", kwargs.get("parents", []))
            kwargs["parents"] = [*parents, late]
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    return Parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.sets = [*args.sets, *getattr(args, "late_sets", [])]
    args.config = getattr(args, "late_config", None) or args.config
    args.verbose = args.verbose or getattr(args, "late_verbose", False)
    quiet = args.command in (
        "ask",
        "eval",
        "kb",
        "transcribe",
        "say",
        "draw",
    )  # their stdout is the product; keep stderr calm
    level = logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("bm25s", "httpx", "urllib3", "chromadb", "jieba"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    try:
        settings = load_settings(args.config, args.sets)
        command = args.command or "serve"
        if command == "serve":
            return _serve(settings, args)
        if command == "ask":
            return _ask(settings, args.question, args.audio, args.json)
        if command == "transcribe":
            return _transcribe(settings, args.file, args.json)
        if command == "say":
            return _say(settings, args.text, args.output, args.json)
        if command == "draw":
            return _draw(settings, args.request, args.output, args.seed, args.json)
        if command == "voice":
            return _audition(settings, args)
        if command == "eval":
            return _eval(settings, args.files, args.json, args.show_misses)
        if command == "ingest":
            return _ingest(settings, args.paths)
        if command == "doctor":
            return _doctor(settings)
        if command == "kb":
            return _kb_stats(settings)
        if command == "download":
            return _download(args)
    except (ConfigError, ModelNotFoundError, ChatModelError) as exc:
        print(f"wulewule: error: {exc}", file=sys.stderr)
        return 2
    except CommandFailed as exc:
        print(f"wulewule: {exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command!r}")
    return 2


def _assistant(settings: Settings):  # noqa: ANN202 - keeps the import lazy for fast --help
    from app.knowledge_chat import KnowledgeChat

    return KnowledgeChat(settings)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from app.ui import launch

    if getattr(args, "host", None):
        settings.app.host = args.host
    if getattr(args, "port", None) is not None:
        settings.app.port = args.port
    if getattr(args, "share", False):
        settings.app.share = True
    launch(settings, auth_flags=getattr(args, "auth", []))
    return 0


class CommandFailed(RuntimeError):
    """The command could not do its job for a reason the player can act on (bad audio, no model)."""


def _companion(settings: Settings):  # noqa: ANN202 - keeps the import lazy for fast --help
    from app.companion import Companion

    return Companion(settings)


def _ask(settings: Settings, question: str, audio: Path | None, as_json: bool) -> int:
    from app.events import collect

    if audio is not None and not audio.is_file():
        raise CommandFailed(f"no such audio file: {audio}")
    if audio is None and not question.strip() and not as_json:
        raise CommandFailed("ask what? e.g. python -m app ask 黑熊精在哪里打？ (or --audio question.wav)")
    companion = _companion(settings)
    # The CLI answers once, so it answers with everything: the sentence vectors too (loaded from
    # the cache in about a second; built the first time, with a note on stderr).
    companion.chat.warm_up()
    build = companion.chat.dense_build
    if build is not None and build.wait(3) is None and build.building:
        print("（首次运行：正在为知识库建立向量索引 / building the sentence vectors once…）", file=sys.stderr)
    companion.chat.warm_up(wait_for_vectors=True)
    answer = collect(companion.turn(text=question, audio=audio, speak=False))
    if audio is not None and answer.transcript is None and not as_json:
        raise CommandFailed("; ".join(answer.notices) or "the recording could not be understood")
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
        return 0
    if answer.transcript is not None:
        print(f"🎤 {answer.transcript.text}")
    for notice in answer.notices:
        print(f"（{notice}）")
    print(answer.answer)
    if answer.image is not None:
        print(f"\n🎨 {answer.image.path}")
    if answer.sources:
        print("\n来源 / Sources:")
        for s in answer.sources:
            section = f" · {s.section}" if s.section else ""
            print(f"  [{s.index}] {s.title}{section} — {s.source}")
    return 0


def _transcribe(settings: Settings, path: Path, as_json: bool) -> int:
    from modules.asr.audio import AudioError

    if not path.is_file():
        raise CommandFailed(f"no such audio file: {path}")
    try:
        transcript = _companion(settings).hear(path)
    except AudioError as exc:
        if as_json:
            print(json.dumps({"error": str(exc), "code": exc.code}, ensure_ascii=False))
        raise CommandFailed(str(exc)) from None
    if as_json:
        out = {"text": transcript.text, "raw_text": transcript.raw_text, "language": transcript.language}
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(transcript.text)
    return 0


def _say(settings: Settings, text: str, output: Path, as_json: bool) -> int:
    from modules.rag.text import mostly_english
    from modules.tts.service import synthesize, write_wav

    companion = _companion(settings)
    voice = companion.synthesizer
    if voice is None:
        raise CommandFailed(f"no voice: {companion.synthesizer_problem}")
    clip = synthesize(text, voice, settings.tts, "en" if mostly_english(text) else "zh")
    write_wav(clip, output)
    if as_json:
        out = {"path": str(output), "seconds": round(clip.seconds, 3), "sample_rate": clip.sample_rate}
        print(json.dumps({**out, "backend": voice.name}, ensure_ascii=False))
    else:
        print(f"wrote {output} ({clip.seconds:.1f} s, {voice.name})")
    return 0


def _draw(settings: Settings, request: str, output: Path, seed: int | None, as_json: bool) -> int:
    """The chat's own drawing path (Companion.draw), with the steps shown on stderr."""
    from app.events import DrawingStep, TurnEvent, collect

    def progress(event: TurnEvent) -> None:
        if isinstance(event, DrawingStep) and not as_json:
            print(f"\r  step {event.step}/{event.total}", end="", file=sys.stderr, flush=True)

    answer = collect(_companion(settings).draw(request, seed=seed, refine=False, output=output), progress)
    if answer.image is None:
        raise CommandFailed(answer.answer.rsplit("⚠️", 1)[-1].strip())
    if as_json:
        print(json.dumps(answer.image.to_dict(), ensure_ascii=False))
    else:
        print(f"\nwrote {answer.image.path}\nprompt: {answer.image.prompt}\nseed: {answer.image.seed}")
    return 0


def _audition(settings: Settings, args: argparse.Namespace) -> int:
    from modules.tts.audition import run_audition

    out = settings.resolve(args.out)
    speaker = settings.resolve(settings.tts.chattts.speaker)
    for line in run_audition(settings.tts, REPO_ROOT, args.line, args.n, out, choose=args.choose, speaker_file=speaker):
        print(line)
    return 0


def _eval(settings: Settings, paths: Sequence[Path], as_json: bool, show_misses: int) -> int:
    from app.evaluation import evaluate, format_table, load_eval_file

    sets = [(path, load_eval_file(path)) for path in paths]  # every file checked before any question is asked
    assistant = _assistant(settings)
    assistant.warm_up(wait_for_vectors=True)
    outcomes = [evaluate(assistant.ask, items, path.name) for path, items in sets]
    backend = assistant.answerer.name
    if as_json:
        reports = [{**o.summary(), "backend": backend, "results": o.results} for o in outcomes]
        print(json.dumps(reports[0] if len(reports) == 1 else {"sets": reports}, ensure_ascii=False))
        return 0
    print(f"answerer {backend} · {assistant.status_line()}\n")
    print(format_table([o.summary() for o in outcomes], settings.rag.top_k))
    for outcome in outcomes:
        misses = [r for r in outcome.results if not r["correct"]][:show_misses]
        if misses:
            print(f"\nwrong answers in {outcome.name}:")
            for r in misses:
                print(f"- {r['q']}  keys={r['keys']}  hit={r['retrieval_hit']}  sources={r['sources'][:3]}")
                print(f"  -> {str(r['answer'])[:160]}")
    return 0


def _ingest(settings: Settings, paths: Sequence[Path]) -> int:
    from app.ingest import ingest_paths

    report = ingest_paths(paths, settings.user_kb_dir)
    for line in report:
        print(line)
    return 0 if report and not any(line.startswith("skipped") for line in report) else 1


def _doctor(settings: Settings) -> int:
    companion = _companion(settings)
    for item in companion.status():
        print(f"[{'found  ' if item.ok else 'missing'}] {item.name}: {item.detail}")
        if item.fix:
            print(f"          fix: {item.fix}")
    roots = companion.chat.knowledge_roots
    print(f"[found  ] knowledge: {', '.join(str(r) for r in roots)}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from app.config import REPO_ROOT
    from app.download import PRESETS, DownloadError, download, list_text, usage_text

    if args.list:
        print(list_text())
        return 0
    if args.preset not in PRESETS:
        print(f"wulewule: error: choose a preset: {', '.join(PRESETS)} (see download --list)", file=sys.stderr)
        return 2
    preset = PRESETS[args.preset]
    models_dir = (args.models_dir or REPO_ROOT / "models").resolve()
    for noisy in ("httpx", "httpx2"):  # one log line per HTTP request would bury the progress bars
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        download(preset, args.source, models_dir)
    except (DownloadError, ImportError) as exc:
        print(f"wulewule: error: {exc}", file=sys.stderr)
        return 1
    print(usage_text(preset, models_dir))
    return 0


def _kb_stats(settings: Settings) -> int:
    from modules.rag.loader import load_documents

    roots = [settings.resolve(p) for p in settings.knowledge.paths]
    docs = load_documents(roots)
    by_cat: dict[str, list[int]] = {}
    for d in docs:
        by_cat.setdefault(d.category or "(none)", []).append(len(d.body))
    print(f"{'category':<14}{'entries':>8}{'chars':>10}")
    for cat, sizes in sorted(by_cat.items(), key=lambda kv: -len(kv[1])):
        print(f"{cat:<14}{len(sizes):>8}{sum(sizes):>10}")
    print(f"{'total':<14}{len(docs):>8}{sum(len(d.body) for d in docs):>10}")
    return 0
