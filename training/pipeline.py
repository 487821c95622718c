"""The training pipeline: ``python -m training run STAGE…`` over xtuner and LMDeploy, one command per stage.

    pretrain -> pretrain-convert -> pretrain-merge -> sft -> sft-convert -> sft-merge -> awq

Each stage prints the exact command it runs (copy it to run the stage by hand), streams the tool's output to the
terminal and to ``<work_dir>/<name>/logs/<stage>.log``, and on success writes a marker into its output directory
recording the command and fingerprints of its inputs. A stage whose marker matches its current inputs and whose
output checks out is skipped, so ``run all`` resumes after a failure; an interrupted training run resumes from
its last checkpoint. ``xtuner``'s command line exits 0 even when training crashes (it does not pass on its
child's status), so success also requires the stage's output to be there and fresh, and the failing stage's
own error (its traceback) is what a failure reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.config import REPO_ROOT
from training.configs.render import write_config
from training.layout import DATA_COMMANDS, Layout, TrainStage, data_files, layout_for, stage_base
from training.settings import TrainingSettings

STAGES = ("pretrain", "pretrain-convert", "pretrain-merge", "sft", "sft-convert", "sft-merge", "awq")
MARKER = ".wulewule-stage.json"
CPU_PATCH_DIR = Path(__file__).resolve().parent / "cpu_patch"  # sitecustomize.py for CPU smoke runs
ERROR_LINES = 30  # of a failing tool's output quoted in the error


class StageError(RuntimeError):
    """A stage that cannot run or failed; the message quotes the tool's own error and names the log."""


@dataclass(frozen=True)
class Step:
    """One stage, planned: the command, where it writes, what it reads, how to tell it finished."""

    stage: str
    command: tuple[str, ...]
    output: Path
    inputs: tuple[Path, ...]
    check: Callable[[Path], str]  # "" when the output is complete, else what is missing
    env: dict[str, str] = field(default_factory=dict)  # added to the environment (shown with the command)

    def shell(self) -> str:
        """The command as one copy-pasteable shell line, environment included."""
        prefix = []
        for key, value in self.env.items():
            head, sep, _ = value.partition(":$PATH")
            prefix.append(f'{key}={shlex.quote(head)}:"$PATH"' if sep else f"{key}={shlex.quote(value)}")
        return " ".join([*prefix, shlex.join(self.command)])


def expand_stages(names: Sequence[str]) -> list[str]:
    """Stage names (and ``all``) in pipeline order; an unknown name is a ValueError listing the stages."""
    wanted: set[str] = set()
    for name in names:
        if name == "all":
            wanted.update(STAGES)
        elif name in STAGES:
            wanted.add(name)
        else:
            raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)} (or all)")
    return [s for s in STAGES if s in wanted]


# -- output checks ------------------------------------------------------------------------------------


def _has_weights(path: Path) -> bool:
    return any(path.glob("*.safetensors")) or any(path.glob("*.bin"))


def check_checkpoint(path: Path) -> str:
    ckpt = last_checkpoint(path)
    if ckpt is None:
        return f"no last_checkpoint in {path}"
    return "" if ckpt.exists() else f"last_checkpoint names {ckpt}, which does not exist"


def check_adapter(path: Path) -> str:
    if not (path / "adapter_config.json").is_file():
        return f"no adapter_config.json in {path}"
    return "" if any(path.glob("adapter_model.*")) else f"no adapter_model.* in {path}"


def check_model(path: Path) -> str:
    if not (path / "config.json").is_file():
        return f"no config.json in {path}"
    return "" if _has_weights(path) else f"no weights (*.safetensors, *.bin) in {path}"


def check_awq(path: Path) -> str:
    missing = check_model(path)
    if missing:
        return missing
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    method = (config.get("quantization_config") or {}).get("quant_method")
    return "" if method == "awq" else f"{path}/config.json has no AWQ quantization_config"


def last_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine's ``last_checkpoint`` file names, or None."""
    pointer = work_dir / "last_checkpoint"
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not name:
        return None
    path = Path(name)
    return path if path.is_absolute() else work_dir / path


# -- fingerprints and markers -------------------------------------------------------------------------


def fingerprint(path: Path) -> str:
    """What identifies an input's current state: a stage output by its marker, a file by size and mtime."""
    marker = path / MARKER
    if marker.is_file():
        return "stage:" + hashlib.sha256(marker.read_bytes()).hexdigest()[:16]
    if path.is_file():
        stat = path.stat()
        return f"file:{stat.st_size}:{stat.st_mtime_ns}"
    return "dir" if path.is_dir() else "missing"


def _fingerprints(step: Step) -> dict[str, str]:
    return {str(p): fingerprint(p) for p in step.inputs}


def is_done(step: Step) -> bool:
    """The stage finished before with the same inputs, and its output is still complete."""
    marker = step.output / MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return recorded.get("inputs") == _fingerprints(step) and not step.check(step.output)


def _write_marker(step: Step) -> None:
    record = {"stage": step.stage, "command": step.shell(), "inputs": _fingerprints(step), "finished": time.time()}
    (step.output / MARKER).write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# -- the pipeline -------------------------------------------------------------------------------------


def _executable(spec: str, key: str, setup: str) -> Path:
    """An env binary from the config: a path (relative to the repo) or a name on PATH."""
    if "/" in spec:
        path = Path(spec) if Path(spec).is_absolute() else REPO_ROOT / spec
        if path.is_file():
            return path
    else:
        found = shutil.which(spec)
        if found:
            return Path(found)
    raise StageError(f"config key {key}: {spec} not found. Create the environment: {setup}")


XTUNER_SETUP = (
    "python3.11 -m venv .venv-train && .venv-train/bin/pip install --no-deps -r requirements-train.txt "
    "(docs/training.md), or set envs.xtuner"
)
LMDEPLOY_SETUP = (
    "python3 -m venv .venv-serve && .venv-serve/bin/pip install -r requirements-serve.txt, or set envs.lmdeploy"
)


class Pipeline:
    """Plans and runs the stages for the configured model."""

    def __init__(
        self,
        settings: TrainingSettings,
        system: str = "",
        model_key: str | None = None,
        out: Callable[[str], None] | None = None,
    ) -> None:
        """``system``: the SFT system prompt (shown in training's sample answers); ``out`` receives every line."""
        self.settings = settings
        self.system = system
        self.model_key = model_key or settings.model
        self.layout: Layout = layout_for(settings, self.model_key)
        self.out = out or (lambda line: print(line, flush=True))

    # -- planning -----------------------------------------------------------------------------------

    def plan(self, stage: str) -> Step:
        """The step for a stage; raises StageError when what it needs is missing."""
        if stage in ("pretrain", "sft"):
            return self._train_step(stage)  # type: ignore[arg-type]
        if stage.endswith("-convert"):
            return self._convert_step(stage.removesuffix("-convert"))  # type: ignore[arg-type]
        if stage.endswith("-merge"):
            return self._merge_step(stage.removesuffix("-merge"))  # type: ignore[arg-type]
        if stage == "awq":
            return self._awq_step()
        raise ValueError(f"unknown stage {stage!r}")

    def _xtuner(self) -> tuple[str, dict[str, str]]:
        xtuner = _executable(self.settings.envs.xtuner, "envs.xtuner", XTUNER_SETUP)
        # xtuner starts its workers as a bare `python` / `torchrun` from PATH: its own environment must come first.
        env = {"PATH": f"{xtuner.parent}:$PATH"}
        if self.settings.cpu:
            env["PYTHONPATH"] = str(CPU_PATCH_DIR)
        return str(xtuner), env

    def _train_step(self, stage: TrainStage) -> Step:
        for path in data_files(self.settings, stage):
            if not path.is_file():
                data_command = DATA_COMMANDS[path.name]
                raise StageError(
                    f"{stage}: training data {path} is missing; run `python -m training {data_command}` first"
                )
        base = stage_base(self.settings, stage, self.model_key)
        if not base.is_dir():
            raise StageError(
                f"{stage}: needs the merged pretrained model {base}; run `python -m training run "
                "pretrain pretrain-convert pretrain-merge` first (or set pretrain.enabled=false)"
            )
        config = write_config(
            self.settings, stage, base, self.layout.config(stage), system=self.system, model_key=self.model_key
        )
        xtuner, env = self._xtuner()
        work_dir = self.layout.train_dir(stage)
        command = [xtuner, "train", str(config), "--work-dir", str(work_dir)]
        if self.settings.deepspeed != "none" and not self.settings.cpu:
            command += ["--deepspeed", f"deepspeed_{self.settings.deepspeed}"]
        if self.settings.gpus > 1 and not self.settings.cpu:
            env["NPROC_PER_NODE"] = str(self.settings.gpus)
        resume = last_checkpoint(work_dir)
        if resume is not None and resume.exists() and not (work_dir / MARKER).exists():
            command += ["--resume", str(resume)]  # an interrupted run: carry on from its last checkpoint
        inputs = (config, *data_files(self.settings, stage), base)
        return Step(stage, tuple(command), work_dir, inputs, check_checkpoint, env)

    def _convert_step(self, stage: TrainStage) -> Step:
        work_dir = self.layout.train_dir(stage)
        if not (work_dir / MARKER).is_file() or check_checkpoint(work_dir):
            raise StageError(
                f"{stage}-convert: no finished {stage} training in {work_dir}; run `python -m "
                f"training run {stage}` first"
            )
        ckpt = last_checkpoint(work_dir)
        assert ckpt is not None  # checked above
        xtuner, env = self._xtuner()
        adapter = self.layout.adapter_dir(stage)
        command = [xtuner, "convert", "pth_to_hf", str(self.layout.config(stage)), str(ckpt), str(adapter)]
        command.append("--safe-serialization")
        return Step(f"{stage}-convert", tuple(command), adapter, (work_dir,), check_adapter, env)

    def _merge_step(self, stage: TrainStage) -> Step:
        adapter = self.layout.adapter_dir(stage)
        if not (adapter / MARKER).is_file():
            raise StageError(
                f"{stage}-merge: no converted adapter in {adapter}; run `python -m training run {stage}-convert` first"
            )
        base = stage_base(self.settings, stage, self.model_key)
        xtuner, env = self._xtuner()
        merged = self.layout.merged_dir(stage)
        command = [xtuner, "convert", "merge", str(base), str(adapter), str(merged), "--max-shard-size", "2GB"]
        command.append("--safe-serialization")
        if self.settings.cpu:
            command += ["--device", "cpu"]
        return Step(f"{stage}-merge", tuple(command), merged, (adapter, base), check_model, env)

    def _awq_step(self) -> Step:
        if self.settings.cpu:
            raise StageError("awq: lmdeploy lite auto_awq needs a CUDA GPU; a cpu: true run ends at sft-merge")
        merged = self.layout.merged_dir("sft")
        if not (merged / MARKER).is_file():
            raise StageError(f"awq: no merged model in {merged}; run `python -m training run sft-merge` first")
        lmdeploy = _executable(self.settings.envs.lmdeploy, "envs.lmdeploy", LMDEPLOY_SETUP)
        awq = self.settings.awq
        command = [
            str(lmdeploy), "lite", "auto_awq", str(merged),
            "--work-dir", str(self.layout.awq_dir),
            "--calib-dataset", awq.calib_dataset,
            "--calib-samples", str(awq.calib_samples),
            "--calib-seqlen", str(awq.calib_seqlen),
            "--batch-size", str(awq.batch_size),
            "--w-bits", str(awq.w_bits),
            "--w-group-size", str(awq.w_group_size),
            "--trust-remote-code",
        ]  # fmt: skip
        if awq.search_scale:
            command.append("--search-scale")
        return Step("awq", tuple(command), self.layout.awq_dir, (merged,), check_awq)

    # -- running ------------------------------------------------------------------------------------

    def run(self, stages: Sequence[str], *, force: bool = False, dry_run: bool = False) -> list[str]:
        """Run the stages in pipeline order; returns the ones that ran. Raises StageError on the first failure."""
        ran = []
        for stage in expand_stages(stages):
            if stage.startswith("pretrain") and not self.settings.pretrain.enabled:
                self.out(f"[{stage}] off (pretrain.enabled is false): SFT starts from the base model")
                continue
            try:
                step = self.plan(stage)
            except StageError as exc:
                if not dry_run:
                    raise
                # A dry run cannot plan past a stage that has not run yet: say what it waits for.
                self.out(f"[{stage}] not ready: {str(exc).split(': ', 1)[-1]}")
                continue
            if not force and is_done(step):
                self.out(f"[{stage}] done, skipping: {step.output} (--force redoes it)")
                continue
            self.out(f"[{stage}] $ {step.shell()}")
            if dry_run:
                continue
            self._execute(step)
            ran.append(stage)
        if ran and not dry_run:
            self._closing_notes(ran[-1])
        return ran

    def _execute(self, step: Step) -> None:
        log_path = self.layout.root / "logs" / f"{step.stage}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        step.output.mkdir(parents=True, exist_ok=True)
        (step.output / MARKER).unlink(missing_ok=True)  # redoing a stage: it is not done until it succeeds again
        env = dict(os.environ, PYTHONUNBUFFERED="1")  # the tools' output arrives as it is written
        for key, value in step.env.items():
            env[key] = value.replace("$PATH", env.get("PATH", ""))
            if key == "PYTHONPATH" and os.environ.get("PYTHONPATH"):
                env[key] = f"{value}{os.pathsep}{os.environ['PYTHONPATH']}"
        started = time.time()
        tail: deque[str] = deque(maxlen=400)
        with log_path.open("w", encoding="utf-8") as log:
            log.write(f"$ {step.shell()}\n")
            try:
                proc = subprocess.Popen(
                    step.command,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=REPO_ROOT,
                    text=True,
                    errors="replace",
                    bufsize=1,
                )
            except OSError as exc:
                raise StageError(f"[{step.stage}] could not start {step.command[0]}: {exc}") from None
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    log.write(line)
                    sys.stdout.write(line)
                    tail.append(line.rstrip("\n"))
                code = proc.wait()
            except BaseException:
                proc.terminate()  # Ctrl-C: do not leave a training run behind
                proc.wait()
                raise
        lines = list(tail)
        error = _error_excerpt(lines)
        if code != 0 or error:
            summary = error or "\n".join(lines[-ERROR_LINES:])
            raise StageError(f"[{step.stage}] failed (exit {code}):\n{summary}\nfull log: {log_path}")
        missing = step.check(step.output) or _stale(step, started)
        if missing:
            quoted = "\n".join(lines[-ERROR_LINES:])
            raise StageError(f"[{step.stage}] exited 0 but {missing}; its last output:\n{quoted}\nfull log: {log_path}")
        _write_marker(step)
        self.out(f"[{step.stage}] done: {step.output}")

    def _closing_notes(self, last: str) -> None:
        if last == "sft-merge":
            merged = self.layout.merged_dir("sft")
            self.out(f"fine-tuned model: {merged}  (quantise: python -m training run awq)")
        elif last == "awq":
            awq = self.layout.awq_dir
            self.out(
                f"quantised model: {awq}\n"
                f"serve: .venv-serve/bin/lmdeploy serve api_server {awq} --model-format awq --model-name wulewule "
                "--server-port 23333\n"
                "measure: python -m app --set llm.backend=openai --set llm.openai.base_url=http://127.0.0.1:23333/v1 "
                "eval tests/eval/public.jsonl"
            )


def _stale(step: Step, started: float) -> str:
    """A training run that 'succeeded' without writing a new checkpoint did not train."""
    if step.stage not in ("pretrain", "sft"):
        return ""
    pointer = step.output / "last_checkpoint"
    return "" if pointer.stat().st_mtime >= started - 1 else f"no new checkpoint was written in {step.output}"


def _error_excerpt(lines: Sequence[str]) -> str:
    """The tool's own error: its last traceback (or torchrun's failure report), at most ERROR_LINES lines."""
    starts = [i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line]
    if not starts:
        starts = [i for i, line in enumerate(lines) if "ChildFailedError" in line or "CUDA out of memory" in line]
    if not starts:
        return ""
    block = list(lines[starts[-1] :])
    if len(block) > ERROR_LINES:
        block = [*block[:5], "…", *block[-(ERROR_LINES - 6) :]]
    return "\n".join(block)
