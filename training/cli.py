"""Command line: ``python -m training [pretrain-data|self-cognition|qa|config|run] …``.

Global options (before the command): ``--config PATH`` / ``--set key=value`` for configs/training.yaml, and
``--app-config PATH`` / ``--app-set key=value`` for the app settings the QA stage answers with (knowledge base,
retrieval, llm.backend). The data commands run in the app environment (.venv); ``run`` calls the training and
serving environments' tools (envs.xtuner, envs.lmdeploy).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from app.config import Settings, load_settings
from llm.base import ChatModelError
from modules.config_layers import ConfigError
from modules.model_files import ModelNotFoundError
from training.settings import TrainingSettings, load_training_settings

if TYPE_CHECKING:
    from training.layout import TrainStage

log = logging.getLogger("wulewule.training")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="悟了悟了 training: data, xtuner configs, fine-tuning pipeline"
    )
    parser.add_argument("--config", type=Path, help="a YAML file overriding configs/training.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training setting, e.g. --set model=7b (repeatable)")  # fmt: skip
    parser.add_argument("--app-config", type=Path, help="a YAML file overriding the app's configs/default.yaml")
    parser.add_argument("--app-set", dest="app_sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override an app setting for the QA stage, e.g. --app-set llm.backend=openai")  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    pre = sub.add_parser("pretrain-data", help="chunk a folder of .txt/.md texts into incremental-pretraining data")
    pre.add_argument("sources", nargs="*", type=Path, help="folders or files (default data.pretrain.sources)")
    pre.add_argument("--out", type=Path, help="output JSONL (default <data_dir>/pretrain.jsonl)")

    sc = sub.add_parser("self-cognition", help="identity Q&A from templates (optionally paraphrased by a model)")
    sc.add_argument("--out", type=Path, help="output JSONL (default <data_dir>/self_cognition.jsonl)")
    sc.add_argument("--paraphrases", type=int, help="rewordings per question (default data.self_cognition.paraphrases)")

    qa = sub.add_parser("qa", help="questions per knowledge entry, answered by our RAG, kept when grounded")
    qa.add_argument("--out-dir", type=Path, help="where qa_train.jsonl / qa_val.jsonl go (default <data_dir>)")
    qa.add_argument("--max-topics", type=int, help="only the first N knowledge entries (trial runs)")
    qa.add_argument("--fresh", action="store_true", help="forget cached questions and answers of earlier runs")
    qa.add_argument("--show-rejected", type=int, default=5, help="print this many rejected answers and why")

    cfg = sub.add_parser("config", help="render the xtuner configs (pretrain, sft) for a model")
    cfg.add_argument("--model", help="a key of models (default: model), or all")
    cfg.add_argument("--stage", choices=["pretrain", "sft", "all"], default="all")
    cfg.add_argument("--out-dir", type=Path, help="write here instead of <work_dir>/<name>/configs/")

    run = sub.add_parser("run", help="run pipeline stages: pretrain … sft-merge, awq (or all)")
    run.add_argument("stages", nargs="+", metavar="STAGE")
    run.add_argument("--force", action="store_true", help="redo stages that are already done")
    run.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("bm25s", "httpx", "urllib3", "chromadb", "jieba"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    from training.data.generator import GeneratorError
    from training.data.pretrain import PretrainDataError
    from training.data.qa import QaDataError
    from training.data.records import DataFormatError
    from training.pipeline import StageError

    try:
        settings = load_training_settings(args.config, args.sets)
        if args.command == "pretrain-data":
            return _pretrain_data(settings, args.sources, args.out)
        if args.command == "self-cognition":
            return _self_cognition(settings, _app_settings(args), args.out, args.paraphrases)
        if args.command == "qa":
            return _qa(settings, _app_settings(args), args)
        if args.command == "config":
            return _config(settings, _app_settings(args), args.model, args.stage, args.out_dir)
        if args.command == "run":
            return _run(settings, _app_settings(args), args.stages, args.force, args.dry_run)
    except (StageError, PretrainDataError, QaDataError, GeneratorError, ChatModelError, DataFormatError) as exc:
        print(f"training: error: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, ModelNotFoundError, ValueError) as exc:  # a setting or an argument to fix
        print(f"training: error: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse requires a command


def _app_settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.app_config, args.app_sets)


def system_prompt(settings: TrainingSettings, app: Settings) -> str:
    """The SFT system prompt: system_prompt, else the app's llm.system_prompt (what the model is served with)."""
    return settings.system_prompt.strip() or app.llm.system_prompt


def _pretrain_data(settings: TrainingSettings, sources: Sequence[Path], out: Path | None) -> int:
    from training.data.pretrain import build_pretrain_data, stats_path
    from training.layout import PRETRAIN_DATA

    roots = [settings.resolve(s) for s in (sources or settings.data.pretrain.sources)]
    out = out or settings.data_dir / PRETRAIN_DATA
    stats = build_pretrain_data(roots, out, settings.data.pretrain)
    print(stats.table())
    print(f"wrote {stats.written} chunks to {out} (stats: {stats_path(out)})")
    return 0


def _self_cognition(settings: TrainingSettings, app: Settings, out: Path | None, paraphrases: int | None) -> int:
    from training.data.generator import create_generator
    from training.data.records import write_conversations
    from training.data.self_cognition import build_self_cognition
    from training.layout import SELF_COGNITION_DATA

    count = settings.data.self_cognition.paraphrases if paraphrases is None else paraphrases
    generator = create_generator(settings.data.generator) if count > 0 else None
    if count > 0 and generator is None:
        print("no generator (data.generator.base_url is empty): writing the template questions only")
    records = build_self_cognition(
        settings.assistant, system_prompt(settings, app), generator, count, settings.data.generator.temperature
    )
    out = out or settings.data_dir / SELF_COGNITION_DATA
    written = write_conversations(out, records)
    print(f"wrote {written} self-cognition pairs to {out}")
    return 0


def _qa(settings: TrainingSettings, app: Settings, args: argparse.Namespace) -> int:
    from app.knowledge_chat import KnowledgeChat
    from training.data.generator import create_generator
    from training.data.qa import build_qa, iter_rejected

    qa = settings.data.qa
    out_dir = args.out_dir or settings.data_dir
    generator = create_generator(settings.data.generator)
    if generator is None:
        print("no generator (data.generator.base_url is empty): questions come from the knowledge base's structure")
    assistant = KnowledgeChat(app)
    print(f"answering with llm.backend={app.llm.backend}; knowledge: {', '.join(map(str, assistant.knowledge_roots))}")
    stats = build_qa(
        assistant,
        out_dir,
        system=system_prompt(settings, app),
        generator=generator,
        questions_per_topic=qa.questions_per_topic,
        temperature=settings.data.generator.temperature,
        with_passages=qa.with_passages,
        min_coverage=qa.min_coverage,
        near_duplicate=qa.near_duplicate,
        val_ratio=qa.val_ratio,
        max_topics=args.max_topics if args.max_topics is not None else qa.max_topics,
        fresh=args.fresh,
    )
    print(stats.table())
    for item in list(iter_rejected(out_dir))[: max(args.show_rejected, 0)]:
        print(f"- rejected: {item.question} -> {item.answer[:80]!r}\n    {item.reasons[0] if item.reasons else ''}")
    print(f"wrote {stats.train} training and {stats.validation} validation examples to {out_dir}")
    return 0


def _config(
    settings: TrainingSettings,
    app: Settings,
    model: str | None,
    stage: TrainStage | Literal["all"],
    out_dir: Path | None,
) -> int:
    from training.configs.render import STAGES, write_config
    from training.layout import layout_for, stage_base

    keys = sorted(settings.models) if model == "all" else [model or settings.model]
    for key in keys:
        if key not in settings.models:
            raise ConfigError(f"--model {key!r} is not one of models: {', '.join(sorted(settings.models))}")
        layout = layout_for(settings, key)
        stages: tuple[TrainStage, ...] = STAGES if stage == "all" else (stage,)
        for name in stages:
            try:
                base: Path | str = stage_base(settings, name, key)
            except ModelNotFoundError as exc:
                # Rendering does not need the weights; the hub id is what xtuner would download on a GPU host.
                base = settings.models[key].base
                print(f"note: {exc}")
            out = out_dir / f"{layout.name}_{name}.py" if out_dir else layout.config(name)
            write_config(settings, name, base, out, system=system_prompt(settings, app), model_key=key)
            print(f"{name} config for {layout.name} ({base}): {out}")
    return 0


def _run(settings: TrainingSettings, app: Settings, stages: Sequence[str], force: bool, dry_run: bool) -> int:
    from training.pipeline import Pipeline

    Pipeline(settings, system_prompt(settings, app)).run(stages, force=force, dry_run=dry_run)
    return 0
