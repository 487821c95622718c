"""Model presets and their download: ``python -m app download PRESET [--source …] [--models-dir DIR]``.

A preset is data. Each model names its repository on each hub, the files to fetch (all, or glob
patterns), the folder under the models dir (``models/<org>/<name>``, where ``modules/model_files.py``
looks for hub ids) and the config key it fills; adding a model is adding one ModelSpec.

Downloading is the hubs' own ``snapshot_download`` (resume and progress bars are theirs). Afterwards the
files are checked against the hub: on Hugging Face, the sha256 of every LFS file and the git blob hash of
every other file; ModelScope's downloader checks each file's sha256 itself, and the sizes are compared
here. A model whose folder already holds its files is skipped without touching the network.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from app.config import REPO_ROOT

Source = Literal["modelscope", "huggingface"]
SOURCES: tuple[Source, ...] = ("modelscope", "huggingface")
DEFAULT_SOURCE: Source = "modelscope"
MARKER = ".wulewule-download.json"  # written after a verified download: what was fetched, from where


class DownloadError(RuntimeError):
    """A download that did not happen or did not check out; the message says how to do it by hand."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a preset: where it is published, which files, where they go, what setting uses them."""

    key: str  # the config key it fills, e.g. "rag.embedding.model"
    local_dir: str  # under the models dir: "<org>/<name>", the org of the id the config uses
    repos: Mapping[Source, str]  # its repository id on each hub that has it
    files: tuple[str, ...] = ()  # glob patterns of the files to fetch; empty: the whole repository
    # Globs that must each match a file for the model to count as present ("a|b": either will do).
    done_when: tuple[str, ...] = ("config.json", "*.safetensors|*.bin")
    file: str = ""  # the setting names this file inside local_dir (a .gguf) rather than the folder
    size: str = ""  # rough download size, for --list

    def repo_for(self, source: Source) -> tuple[Source, str]:
        """The hub and repo to fetch from: the one asked for, else the other one that has the model."""
        if source in self.repos:
            return source, self.repos[source]
        other = next(iter(self.repos))
        return other, self.repos[other]


@dataclass(frozen=True)
class Preset:
    """A set of models that makes up one way to run the app, plus the settings that switch it on."""

    name: str
    about: str
    models: tuple[ModelSpec, ...]
    settings: Mapping[str, str] = field(default_factory=dict)


BCE_EMBEDDING = ModelSpec(
    key="rag.embedding.model",
    local_dir="maidalun1020/bce-embedding-base_v1",
    repos={"huggingface": "maidalun1020/bce-embedding-base_v1", "modelscope": "maidalun/bce-embedding-base_v1"},
    done_when=("config.json", "tokenizer*", "*.safetensors|*.bin"),
    size="~1.1 GB",
)
BCE_RERANKER = ModelSpec(
    key="rag.reranker.model",
    local_dir="maidalun1020/bce-reranker-base_v1",
    repos={"huggingface": "maidalun1020/bce-reranker-base_v1", "modelscope": "maidalun/bce-reranker-base_v1"},
    done_when=("config.json", "tokenizer*", "*.safetensors|*.bin"),
    size="~1.1 GB",
)
WULEWULE_1_8B_AWQ = ModelSpec(
    key="llm.lmdeploy.model",
    local_dir="xzyun2011/wulewule_v1_1_8b-w4a16-4bit",
    repos={"modelscope": "xzyun2011/wulewule_v1_1_8b-w4a16-4bit"},  # published on ModelScope only
    size="~1.5 GB",
)
INTERNLM2_5_1_8B_GGUF = ModelSpec(
    key="llm.llamacpp.model",
    local_dir="internlm/internlm2_5-1_8b-chat-gguf",
    repos={"huggingface": "internlm/internlm2_5-1_8b-chat-gguf"},
    files=("internlm2_5-1_8b-chat-q4_k_m.gguf",),
    done_when=("internlm2_5-1_8b-chat-q4_k_m.gguf",),
    file="internlm2_5-1_8b-chat-q4_k_m.gguf",
    size="~1.2 GB",
)

# -- voice in: FunASR (the design's engine) and Whisper (CPU laptops, English) ------------------------
_FUNASR_DONE = ("config.yaml", "model.pt", "tokens.json|tokens.txt|*.bpe.model")
PARAFORMER_ZH = ModelSpec(
    key="asr.funasr.model",
    local_dir="iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    repos={"modelscope": "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"},
    done_when=_FUNASR_DONE,
    size="~950 MB",
)
FSMN_VAD = ModelSpec(
    key="asr.funasr.vad_model",
    local_dir="iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
    repos={"modelscope": "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch", "huggingface": "funasr/fsmn-vad"},
    done_when=("config.yaml", "model.pt"),
    size="~2 MB",
)
CT_PUNC = ModelSpec(
    key="asr.funasr.punc_model",
    local_dir="iic/punc_ct-transformer_cn-en-common-vocab471067-large",
    repos={"modelscope": "iic/punc_ct-transformer_cn-en-common-vocab471067-large", "huggingface": "funasr/ct-punc"},
    done_when=("config.yaml", "model.pt"),
    size="~1.1 GB",
)
PARAFORMER_ZH_STREAMING = ModelSpec(
    key="asr.funasr.model",
    local_dir="iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-online",
    repos={
        "modelscope": "iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-online",
        "huggingface": "funasr/paraformer-zh-streaming",
    },
    done_when=_FUNASR_DONE,
    size="~880 MB",
)
SENSEVOICE_SMALL = ModelSpec(
    key="asr.funasr.model",
    local_dir="iic/SenseVoiceSmall",
    repos={"modelscope": "iic/SenseVoiceSmall", "huggingface": "FunAudioLLM/SenseVoiceSmall"},
    done_when=_FUNASR_DONE,
    size="~900 MB",
)
FASTER_WHISPER_BASE = ModelSpec(
    key="asr.whisper.model",
    local_dir="Systran/faster-whisper-base",
    repos={"huggingface": "Systran/faster-whisper-base"},
    done_when=("model.bin", "config.json", "tokenizer.json"),
    size="~145 MB",
)
# -- voice out ---------------------------------------------------------------------------------------
CHATTTS = ModelSpec(
    key="tts.chattts.model",
    local_dir="2Noise/ChatTTS",
    repos={"huggingface": "2Noise/ChatTTS", "modelscope": "AI-ModelScope/ChatTTS"},
    files=("asset/*", "asset/gpt/*", "asset/tokenizer/*", "config/*"),
    done_when=("asset/gpt/config.json", "asset/gpt/model.safetensors", "asset/DVAE*.safetensors", "asset/Vocos*"),
    size="~1.1 GB",
)
# -- drawing -----------------------------------------------------------------------------------------
SD15 = ModelSpec(
    key="image.model",
    local_dir="stable-diffusion-v1-5/stable-diffusion-v1-5",
    repos={
        "huggingface": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "modelscope": "AI-ModelScope/stable-diffusion-v1-5",
    },
    # The full-precision safetensors only (the repo also carries .ckpt, .bin and fp16 copies).
    files=(
        "model_index.json",
        "*/config.json",
        "scheduler/*",
        "tokenizer/*",
        "feature_extractor/*",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "safety_checker/model.safetensors",
    ),
    done_when=("model_index.json", "unet/diffusion_pytorch_model.safetensors", "vae/*.safetensors"),
    size="~5.2 GB",
)
LCM_LORA_SD15 = ModelSpec(
    key="image.fast_lora",
    local_dir="latent-consistency/lcm-lora-sdv1-5",
    repos={"huggingface": "latent-consistency/lcm-lora-sdv1-5"},
    files=("pytorch_lora_weights.safetensors",),
    done_when=("pytorch_lora_weights.safetensors",),
    file="pytorch_lora_weights.safetensors",
    size="~135 MB",
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "gpu",
            "the seed's fine-tuned InternLM2.5-1.8B (AWQ 4-bit, served by LMDeploy) with bce embedding + reranker",
            (WULEWULE_1_8B_AWQ, BCE_EMBEDDING, BCE_RERANKER),
            {"llm.backend": "lmdeploy", "rag.embedding.device": "cuda", "rag.reranker.device": "cuda"},
        ),
        Preset(
            "cpu",
            "InternLM2.5-1.8B-chat as a 4-bit GGUF (llama.cpp, runs on a laptop CPU) with bce embedding",
            (INTERNLM2_5_1_8B_GGUF, BCE_EMBEDDING),
            {"llm.backend": "llamacpp"},
        ),
        Preset(
            "asr",
            "FunASR voice input: SeACo-Paraformer-zh (takes hotwords) with fsmn-vad and ct-punc punctuation",
            (PARAFORMER_ZH, FSMN_VAD, CT_PUNC),
            {"asr.backend": "funasr"},
        ),
        Preset(
            "asr-streaming",
            "FunASR streaming Paraformer-zh (paraformer-zh-streaming, decoded in 600 ms chunks) with ct-punc",
            (PARAFORMER_ZH_STREAMING, CT_PUNC),
            {"asr.backend": "funasr", "asr.funasr.vad_model": ""},
        ),
        Preset(
            "asr-sensevoice",
            "FunASR voice input with SenseVoiceSmall (Chinese, English, Cantonese, Japanese, Korean; fast on CPU)",
            (SENSEVOICE_SMALL, FSMN_VAD),
            {"asr.backend": "funasr", "asr.funasr.punc_model": ""},
        ),
        Preset(
            "asr-cpu",
            "faster-whisper base (CTranslate2 int8): voice input on a laptop CPU, English and Chinese",
            (FASTER_WHISPER_BASE,),
            {"asr.backend": "whisper"},
        ),
        Preset(
            "tts", "ChatTTS voice replies (GPU recommended; CPU works, slowly)", (CHATTTS,), {"tts.backend": "chattts"}
        ),
        Preset("image", "Stable Diffusion 1.5 for drawing the Destined One (add your LoRA: image.lora.path)", (SD15,)),
        Preset(
            "image-fast",
            "Stable Diffusion 1.5 + LCM-LoRA: pictures in 4 steps, for CPUs and small GPUs",
            (SD15, LCM_LORA_SD15),
            {"image.fast": "true"},
        ),
    )
}


@dataclass(frozen=True)
class Fetched:
    """One model of a preset after ``download``: where it is and whether it was already there."""

    spec: ModelSpec
    path: Path
    already_present: bool
    source: Source | None = None
    verified: int = 0  # files checked against the hub's checksums or sizes


# -- what is where -----------------------------------------------------------------------------


def hub_endpoint(source: Source) -> str:
    """The hub's base URL, honouring the hubs' own environment variables (mirrors, tests)."""
    if source == "huggingface":
        return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or "https://huggingface.co"
    endpoint = os.environ.get("MODELSCOPE_ENDPOINT", "").strip().rstrip("/")
    domain = os.environ.get("MODELSCOPE_DOMAIN", "").strip().rstrip("/")
    if not endpoint and domain:
        endpoint = domain if "://" in domain else f"https://{domain}"
    return endpoint or "https://modelscope.cn"


def repo_url(source: Source, repo: str) -> str:
    """The page listing a repository's files."""
    base = hub_endpoint(source)
    return f"{base}/{repo}/tree/main" if source == "huggingface" else f"{base}/models/{repo}/files"


def file_url(source: Source, repo: str, name: str) -> str:
    """A direct link to one file of a repository."""
    base = hub_endpoint(source)
    if source == "huggingface":
        return f"{base}/{repo}/resolve/main/{name}"
    return f"{base}/models/{repo}/resolve/master/{name}"


def config_value(spec: ModelSpec, models_dir: Path) -> str:
    """What the spec's config key should be set to: the folder, or the file in it; relative when under the repo."""
    path = (models_dir / spec.local_dir / spec.file) if spec.file else models_dir / spec.local_dir
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _matches(pattern: str, names: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(n, alt) for alt in pattern.split("|") for n in names)


def _hidden(rel: str) -> bool:
    """Dot-files and dot-folders: the hubs' bookkeeping and partial downloads, and our marker."""
    return any(part.startswith(".") for part in rel.split("/"))


def _local_files(target: Path) -> dict[str, int]:
    """The model's files under ``target`` (relative names -> sizes)."""
    if not target.is_dir():
        return {}
    out = {}
    for path in target.rglob("*"):
        rel = path.relative_to(target).as_posix()
        if path.is_file() and not _hidden(rel):
            out[rel] = path.stat().st_size
    return out


def is_present(spec: ModelSpec, target: Path) -> bool:
    """True when ``target`` already holds the model: every file a verified download recorded, with its
    size, or (put there by hand) a non-empty file for each of ``done_when``."""
    marker = target / MARKER
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text("utf-8"))["files"]
            return all((target / n).is_file() and (target / n).stat().st_size == s for n, s in recorded.items())
        except (ValueError, KeyError, TypeError, AttributeError):
            return False
    local = {n for n, size in _local_files(target).items() if size > 0}
    return bool(local) and all(_matches(p, local) for p in spec.done_when)


def manual_instructions(spec: ModelSpec, source: Source, target: Path) -> str:
    """How to fetch a model by hand: the repo, its files, the URLs and the exact folder to put them in."""
    source, repo = spec.repo_for(source)
    lines = [f"  repository: {repo} on {source} ({repo_url(source, repo)})"]
    if spec.files:
        lines.append("  files:")
        lines += [f"    {name}  <- {file_url(source, repo, name)}" for name in spec.files]
    else:
        lines.append("  files: all files of the repository")
    lines.append(f"  put them in: {target}")
    include = [f"--include '{pattern}'" for pattern in spec.files]
    if source == "huggingface":
        command = ["hf", "download", repo, *include, "--local-dir", str(target)]
    else:
        command = ["modelscope", "download", "--model", repo, *include, "--local_dir", str(target)]
    lines.append(f"  or run: {' '.join(command)}")
    return "\n".join(lines)


# -- downloading -------------------------------------------------------------------------------


def _check_reachable(source: Source, spec: ModelSpec, target: Path) -> None:
    """Fail at once, and say what to do, when the hub cannot be reached at all (the hubs' own clients
    retry with back-off before giving up)."""
    import httpx

    # huggingface_hub's rule: HF_HUB_OFFLINE, or when that is unset, TRANSFORMERS_OFFLINE.
    offline = "HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE"
    if source == "huggingface" and os.environ.get(offline, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        raise DownloadError(
            f"cannot download {spec.repo_for(source)[1]}: {offline} is set (unset it to download), "
            f"or fetch it by hand:\n{manual_instructions(spec, source, target)}"
        )
    endpoint = hub_endpoint(source)
    try:
        httpx.head(endpoint, timeout=10, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise DownloadError(
            f"cannot reach {source} at {endpoint} ({type(exc).__name__}: {exc}). Check the network (or a proxy / "
            f"mirror: HF_ENDPOINT, MODELSCOPE_ENDPOINT), then run the command again, or fetch the model by hand:\n"
            f"{manual_instructions(spec, source, target)}"
        ) from None


def _snapshot(source: Source, repo: str, target: Path, patterns: tuple[str, ...]) -> None:
    allow = list(patterns) or None
    if source == "huggingface":
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise ImportError(
                "downloading from Hugging Face needs huggingface_hub: pip install huggingface_hub"
            ) from None
        # huggingface_hub reads HF_ENDPOINT when first imported; passing it keeps a later change in force.
        snapshot_download(repo, local_dir=target, allow_patterns=allow, endpoint=hub_endpoint(source))
    else:
        try:
            from modelscope import snapshot_download as ms_snapshot_download
        except ImportError:
            raise ImportError("downloading from ModelScope needs modelscope: pip install modelscope==1.40.2") from None
        ms_snapshot_download(repo, local_dir=str(target), allow_patterns=allow)


@dataclass(frozen=True)
class RemoteFile:
    """A file as the hub describes it: its size, and the hash the hub publishes for it when there is one."""

    size: int | None
    sha256: str | None = None  # LFS files on Hugging Face
    git_sha1: str | None = None  # other files on Hugging Face: the git blob id


def _remote_files(source: Source, repo: str) -> dict[str, RemoteFile]:
    if source == "huggingface":
        from huggingface_hub import HfApi

        info = HfApi(endpoint=hub_endpoint(source)).model_info(repo, files_metadata=True)
        return {
            s.rfilename: RemoteFile(s.size, s.lfs.sha256 if s.lfs else None, None if s.lfs else s.blob_id)
            for s in info.siblings or []
        }
    from modelscope.hub.api import HubApi

    listing = HubApi().get_model_files(repo, recursive=True)
    return {str(f["Path"]): RemoteFile(f.get("Size")) for f in listing if f.get("Type", "blob") != "tree"}


def git_blob_sha1(path: Path) -> str:
    """The id git (and so the hub) gives a file's content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(target: Path, remote: Mapping[str, RemoteFile], patterns: tuple[str, ...]) -> dict[str, int]:
    """Check the downloaded files against the hub's sizes and hashes; the checked files and their sizes.

    Raises DownloadError naming a file that is missing or differs, and what to do about it.
    """
    wanted = {
        name: file
        for name, file in remote.items()
        if not _hidden(name) and (not patterns or any(fnmatch.fnmatch(name, p) for p in patterns))
    }
    checked: dict[str, int] = {}
    for name, expected in sorted(wanted.items()):
        path = target / name
        if not path.is_file():
            raise DownloadError(f"{name} was not downloaded to {target}; run the command again to resume")
        size = path.stat().st_size
        bad = expected.size is not None and size != expected.size
        if not bad and expected.sha256:
            with path.open("rb") as fh:
                bad = hashlib.file_digest(fh, "sha256").hexdigest() != expected.sha256
        elif not bad and expected.git_sha1:
            bad = git_blob_sha1(path) != expected.git_sha1
        if bad:
            raise DownloadError(
                f"{path} does not match the hub's checksum (a broken or interrupted download); "
                "delete it and run the command again"
            )
        checked[name] = size
    return checked


def fetch(spec: ModelSpec, source: Source, models_dir: Path, say: Callable[[str], None] = print) -> Fetched:
    """Download one model into ``models_dir/<org>/<name>`` unless it is already there, then verify it."""
    target = models_dir / spec.local_dir
    if is_present(spec, target):
        say(f"[present] {spec.key}: {target}")
        return Fetched(spec, target, already_present=True)
    used, repo = spec.repo_for(source)
    if used != source:
        say(f"[note] {repo} is not published on {source}; fetching it from {used}")
    _check_reachable(used, spec, target)
    say(f"[fetch  ] {repo} from {used} -> {target}")
    target.mkdir(parents=True, exist_ok=True)
    try:
        _snapshot(used, repo, target, spec.files)
        remote = _remote_files(used, repo)
    except ImportError:
        raise
    except Exception as exc:  # whatever the hub library raised, the model is not here; say how to get it
        raise DownloadError(
            f"downloading {repo} from {used} failed ({type(exc).__name__}: {str(exc).strip()[:400]}). "
            f"Run the command again to resume, or fetch it by hand:\n{manual_instructions(spec, used, target)}"
        ) from None
    checked = verify_files(target, remote, spec.files)
    if not is_present(spec, target):
        raise DownloadError(
            f"{repo} was downloaded to {target} but lacks {', '.join(spec.done_when)}; "
            f"check {repo_url(used, repo)} (the repository may have changed)"
        )
    record = {"repo": repo, "source": used, "files": checked}
    (target / MARKER).write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    say(f"[ok     ] {spec.key}: {target} ({len(checked)} file{'s' if len(checked) != 1 else ''} verified)")
    return Fetched(spec, target, already_present=False, source=used, verified=len(checked))


def download(preset: Preset, source: Source, models_dir: Path, say: Callable[[str], None] = print) -> list[Fetched]:
    """Fetch every model of a preset, skipping those already there.

    On the first failure, DownloadError says what failed and how to fetch by hand every model still missing.
    """
    done = []
    for i, spec in enumerate(preset.models):
        try:
            done.append(fetch(spec, source, models_dir, say))
        except DownloadError as exc:
            rest = [s for s in preset.models[i + 1 :] if not is_present(s, models_dir / s.local_dir)]
            more = "".join(f"\n{manual_instructions(s, source, models_dir / s.local_dir)}" for s in rest)
            raise DownloadError(f"{exc}\nalso still missing:{more}" if rest else str(exc)) from None
    return done


# -- telling the app ---------------------------------------------------------------------------


def preset_settings(preset: Preset, models_dir: Path) -> dict[str, str]:
    """The settings that point the app at a preset's models, as dotted keys."""
    return {**preset.settings, **{spec.key: config_value(spec, models_dir) for spec in preset.models}}


def usage_text(preset: Preset, models_dir: Path) -> str:
    """The ``--set`` flags and the equivalent config-file snippet for a downloaded preset."""
    values = preset_settings(preset, models_dir)
    flags = " ".join(f"--set {k}={v}" for k, v in values.items())
    tree: dict[str, object] = {}
    for dotted, value in values.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[leaf] = value
    snippet = yaml.safe_dump(tree, allow_unicode=True, sort_keys=False).rstrip()
    return (
        f"Use them with:\n  python -m app {flags}\n"
        f"or put this in a config file (python -m app --config FILE):\n"
        + "\n".join(f"  {line}" for line in snippet.splitlines())
    )


def list_text() -> str:
    """Every preset and its models, for ``download --list``."""
    lines = []
    for preset in PRESETS.values():
        lines.append(f"{preset.name}: {preset.about}")
        for spec in preset.models:
            hubs = ", ".join(f"{src}: {repo}" for src, repo in spec.repos.items())
            what = ", ".join(spec.files) if spec.files else "all files"
            lines.append(f"  {spec.key:<22} {spec.size:>8}  {spec.local_dir}  ({what}; {hubs})")
        if preset.settings:
            lines.append("  also sets " + ", ".join(f"{k}={v}" for k, v in preset.settings.items()))
    return "\n".join(lines)
