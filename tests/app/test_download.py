"""The download command: the preset table, the hub unreachable, models already there, and a real download
from a Hugging Face-compatible hub served on loopback by the test."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from app.config import load_settings
from app.download import (
    MARKER,
    PRESETS,
    SOURCES,
    DownloadError,
    RemoteFile,
    config_value,
    git_blob_sha1,
    is_present,
    manual_instructions,
    preset_settings,
    usage_text,
    verify_files,
)
from modules.model_files import is_hub_id, locate_model
from tests.conftest import REPO

GGUF = "internlm2_5-1_8b-chat-q4_k_m.gguf"
GGUF_DIR = "internlm/internlm2_5-1_8b-chat-gguf"
BCE_DIR = "maidalun1020/bce-embedding-base_v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_download(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m app download …`` with the hubs' endpoints and offline switch as given, nothing inherited."""
    hub_vars = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN")
    base = {k: v for k, v in os.environ.items() if k not in hub_vars}
    cmd = [sys.executable, "-m", "app", "download", *args]
    return subprocess.run(cmd, cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=120)


def dead_hubs() -> dict[str, str]:
    """Both hubs pointed at a loopback port nobody listens on."""
    url = f"http://127.0.0.1:{free_port()}"
    return {"HF_ENDPOINT": url, "MODELSCOPE_ENDPOINT": url}


# -- the preset table ------------------------------------------------------------------------


def test_presets_are_complete_and_well_formed():
    assert {"gpu", "cpu"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert preset.name == name and preset.about and preset.models
        keys = [spec.key for spec in preset.models]
        assert len(keys) == len(set(keys)), f"{name}: two models fill the same key"
        for spec in preset.models:
            assert spec.repos and set(spec.repos) <= set(SOURCES)
            assert all(is_hub_id(repo) for repo in spec.repos.values())
            assert len(spec.local_dir.split("/")) == 2 and is_hub_id(spec.local_dir)
            assert spec.done_when and spec.size
            if spec.file:
                assert spec.file in spec.files and spec.file in spec.done_when
        # Every key and value a preset sets is one the app accepts.
        sets = [f"{k}={v}" for k, v in preset_settings(preset, REPO / "models").items()]
        load_settings(None, sets, environ={})


def test_presets_hold_the_published_models():
    def repos(preset: str) -> set[str]:
        return {repo for spec in PRESETS[preset].models for repo in spec.repos.values()}

    assert {"xzyun2011/wulewule_v1_1_8b-w4a16-4bit", BCE_DIR, "maidalun1020/bce-reranker-base_v1"} <= repos("gpu")
    assert {"internlm/internlm2_5-1_8b-chat-gguf", BCE_DIR} <= repos("cpu")
    gguf = next(s for s in PRESETS["cpu"].models if s.key == "llm.llamacpp.model")
    assert gguf.file == GGUF and gguf.files == (GGUF,)


def test_models_land_where_the_app_looks_for_them(tmp_path: Path):
    defaults = load_settings(None, [], environ={})
    for spec in {s.local_dir: s for p in PRESETS.values() for s in p.models}.values():
        (tmp_path / "models" / spec.local_dir).mkdir(parents=True)
        (tmp_path / "models" / spec.local_dir / "config.json").write_text("{}")
    # The default config names the bce models by hub id: the download folder is where that id is found.
    for key in ("rag.embedding.model", "rag.reranker.model"):
        section, slot, _ = key.split(".")
        hub_id = getattr(getattr(defaults, section), slot).model
        assert locate_model(hub_id, tmp_path).path == tmp_path / "models" / hub_id
    # The LMDeploy default is the folder the gpu preset fills.
    lmdeploy = next(s for s in PRESETS["gpu"].models if s.key == "llm.lmdeploy.model")
    assert config_value(lmdeploy, REPO / "models") == defaults.llm.lmdeploy.model


# -- the command, offline ----------------------------------------------------------------------


def test_list_prints_every_preset_and_model():
    done = run_download("--list", **dead_hubs())
    assert done.returncode == 0, done.stderr
    for preset in PRESETS.values():
        assert re.search(rf"^{preset.name}: ", done.stdout, re.M)
        for spec in preset.models:
            assert spec.key in done.stdout and spec.local_dir in done.stdout
            assert all(repo in done.stdout for repo in spec.repos.values())


def test_an_unknown_preset_is_a_usage_error():
    done = run_download("tpu", **dead_hubs())
    assert done.returncode == 2 and "gpu" in done.stderr and "cpu" in done.stderr


@pytest.mark.parametrize(
    ("preset", "source", "repo", "file", "folder"),
    [
        ("cpu", "huggingface", "internlm/internlm2_5-1_8b-chat-gguf", GGUF, GGUF_DIR),
        (
            "gpu",
            "modelscope",
            "xzyun2011/wulewule_v1_1_8b-w4a16-4bit",
            "all files",
            "xzyun2011/wulewule_v1_1_8b-w4a16-4bit",
        ),
    ],
)
def test_an_unreachable_hub_fails_at_once_saying_how_to_fetch_by_hand(
    tmp_path: Path, preset: str, source: str, repo: str, file: str, folder: str
):
    hubs = dead_hubs()
    done = run_download(preset, "--source", source, "--models-dir", str(tmp_path), **hubs)
    assert done.returncode == 1
    message = done.stderr
    assert f"cannot reach {source}" in message
    assert repo in message and file in message
    assert f"put them in: {tmp_path / folder}" in message
    assert f"{hubs['HF_ENDPOINT']}/" in message  # the URL to fetch from by hand
    # The other models of the preset are named too, so one message covers the whole preset.
    assert f"put them in: {tmp_path / BCE_DIR}" in message
    assert not any(tmp_path.iterdir()), "nothing should be left behind"


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_hf_offline_mode_is_named_rather_than_ignored(tmp_path: Path, variable: str):
    done = run_download("cpu", "--source", "huggingface", "--models-dir", str(tmp_path), **{variable: "1"})
    assert done.returncode == 1 and f"{variable} is set" in done.stderr and GGUF in done.stderr


def place_cpu_models(models: Path) -> None:
    """The cpu preset's files, put in place by hand."""
    (models / GGUF_DIR).mkdir(parents=True)
    (models / GGUF_DIR / GGUF).write_bytes(b"GGUF" + bytes(64))
    bce = models / BCE_DIR
    (bce / "1_Pooling").mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "1_Pooling/config.json"):
        (bce / name).write_text("{}")
    (bce / "pytorch_model.bin").write_bytes(bytes(128))


def test_models_already_in_place_are_used_without_the_network(tmp_path: Path):
    place_cpu_models(tmp_path)
    done = run_download("cpu", "--source", "huggingface", "--models-dir", str(tmp_path), **dead_hubs())
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("[present]") == 2
    flags = re.search(r"python -m app (--set .*)$", done.stdout, re.M).group(1)
    sets = [f.strip() for f in flags.split("--set") if f.strip()]
    assert f"llm.llamacpp.model={tmp_path / GGUF_DIR / GGUF}" in sets
    assert f"rag.embedding.model={tmp_path / BCE_DIR}" in sets and "llm.backend=llamacpp" in sets
    settings = load_settings(None, sets, environ={})
    assert settings.llm.backend == "llamacpp"
    assert "rag:\n    embedding:\n      model: " in done.stdout  # the config-file form


def test_is_present_needs_every_file_it_names(tmp_path: Path):
    bce = next(s for s in PRESETS["cpu"].models if s.key == "rag.embedding.model")
    target = tmp_path / BCE_DIR
    assert not is_present(bce, target)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "tokenizer.json").write_text("{}")
    assert not is_present(bce, target), "no weights yet"
    (target / ".cache").mkdir()
    (target / ".cache" / "pytorch_model.bin.incomplete").write_bytes(bytes(8))
    assert not is_present(bce, target), "a partial download in the hub's bookkeeping does not count"
    (target / "model.safetensors").write_bytes(b"")
    assert not is_present(bce, target), "an empty file does not count"
    (target / "model.safetensors").write_bytes(bytes(8))
    assert is_present(bce, target)


def test_is_present_trusts_a_verified_download_only_while_its_files_are_whole(tmp_path: Path):
    gguf = next(s for s in PRESETS["cpu"].models if s.key == "llm.llamacpp.model")
    target = tmp_path / GGUF_DIR
    target.mkdir(parents=True)
    (target / GGUF).write_bytes(bytes(100))
    (target / MARKER).write_text(json.dumps({"repo": "x/y", "source": "huggingface", "files": {GGUF: 100}}))
    assert is_present(gguf, target)
    (target / GGUF).write_bytes(bytes(60))  # truncated
    assert not is_present(gguf, target)


def test_manual_instructions_name_everything_needed(tmp_path: Path):
    gguf = next(s for s in PRESETS["cpu"].models if s.key == "llm.llamacpp.model")
    text = manual_instructions(gguf, "modelscope", tmp_path / GGUF_DIR)  # not on ModelScope: Hugging Face's
    assert f"https://huggingface.co/{GGUF_DIR}/resolve/main/{GGUF}" in text
    assert f"hf download {GGUF_DIR} --include '{GGUF}' --local-dir {tmp_path / GGUF_DIR}" in text


def test_verify_files_checks_sizes_and_hashes(tmp_path: Path):
    (tmp_path / "model.gguf").write_bytes(b"weights" * 100)
    (tmp_path / "config.json").write_bytes(b"hello\n")
    sha = hashlib.sha256(b"weights" * 100).hexdigest()
    # ce0136… is what `git hash-object` gives "hello\n": the id the hub lists for a non-LFS file.
    assert git_blob_sha1(tmp_path / "config.json") == "ce013625030ba8dba906f756967f9e9ca394464a"
    remote = {
        "model.gguf": RemoteFile(700, sha256=sha),
        "config.json": RemoteFile(6, git_sha1="ce013625030ba8dba906f756967f9e9ca394464a"),
        "other.gguf": RemoteFile(5, sha256="0" * 64),
        ".gitattributes": RemoteFile(10),
    }
    assert verify_files(tmp_path, remote, ("*.json", "model.gguf")) == {"config.json": 6, "model.gguf": 700}
    with pytest.raises(DownloadError, match=r"other\.gguf was not downloaded"):
        verify_files(tmp_path, remote, ())
    (tmp_path / "model.gguf").write_bytes(b"WEIGHTS" * 100)  # same size, other bytes
    with pytest.raises(DownloadError, match=r"model\.gguf does not match"):
        verify_files(tmp_path, remote, ("model.gguf",))


def test_usage_text_is_flags_and_yaml(tmp_path: Path):
    text = usage_text(PRESETS["gpu"], tmp_path)
    assert f"--set llm.lmdeploy.model={tmp_path / 'xzyun2011/wulewule_v1_1_8b-w4a16-4bit'}" in text
    assert "--set llm.backend=lmdeploy" in text


# -- a real download, from a hub on loopback ---------------------------------------------------


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """Just enough of the Hugging Face Hub's HTTP API for snapshot_download and model_info."""

    COMMIT = "c0ffee" * 6 + "c0ff"

    def __init__(self, repos: dict[str, dict[str, bytes]], lfs_suffixes: tuple[str, ...] = (".gguf", ".bin")) -> None:
        self.repos = repos
        self.lfs_suffixes = lfs_suffixes
        self.tampered: set[str] = set()  # files served with other bytes than the hub lists
        self.requests: list[str] = []

    def is_lfs(self, name: str) -> bool:
        return name.endswith(self.lfs_suffixes)

    def entry(self, name: str, data: bytes, tree: bool) -> dict[str, object]:
        lfs = {"size": len(data), "pointerSize": 134}
        sha = hashlib.sha256(data).hexdigest()
        if tree:
            base = {"type": "file", "path": name, "size": len(data), "oid": blob_id(data)}
            return {**base, **({"lfs": {**lfs, "oid": sha}} if self.is_lfs(name) else {})}
        base = {"rfilename": name, "size": len(data), "blobId": blob_id(data)}
        return {**base, **({"lfs": {**lfs, "sha256": sha}} if self.is_lfs(name) else {})}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                hub.requests.append(f"{self.command} {self.path}")

            def send(self, status: int, body: bytes, headers: dict[str, str], head: bool = False) -> None:
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def route(self, head: bool) -> None:
                parts = urlparse(self.path).path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and "/".join(parts[2:4]) in hub.repos:
                    files = hub.repos["/".join(parts[2:4])]
                    tree = parts[4:5] == ["tree"]
                    entries = [hub.entry(n, d, tree) for n, d in files.items()]
                    body = entries if tree else {"id": "/".join(parts[2:4]), "sha": hub.COMMIT, "siblings": entries}
                    return self.send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
                repo, name = "/".join(parts[:2]), "/".join(parts[4:])
                if parts[2:3] == ["resolve"] and name in hub.repos.get(repo, {}):
                    data = hub.repos[repo][name]
                    etag = hashlib.sha256(data).hexdigest() if hub.is_lfs(name) else blob_id(data)
                    if name in hub.tampered:
                        data = bytes(b ^ 0xFF for b in data)
                    headers = {"X-Repo-Commit": hub.COMMIT, "ETag": f'"{etag}"'}
                    return self.send(200, data, headers, head)
                self.send(404, b"{}", {"Content-Type": "application/json"}, head)

            def do_GET(self) -> None:
                self.route(head=False)

            def do_HEAD(self) -> None:
                self.route(head=True)

        return Handler


@pytest.fixture
def hub() -> Iterator[tuple[FakeHub, str]]:
    fake = FakeHub(
        {
            GGUF_DIR: {
                "README.md": b"# InternLM2.5-1.8B-chat GGUF\n",
                GGUF: b"GGUF" + bytes(range(256)) * 64,
                "internlm2_5-1_8b-chat-q8_0.gguf": b"GGUF" + bytes(4096),  # not in the preset: never fetched
            },
            BCE_DIR: {
                "config.json": b'{"model_type": "xlm-roberta"}',
                "tokenizer.json": b'{"version": "1.0"}',
                "1_Pooling/config.json": b'{"pooling_mode_cls_token": true}',
                "pytorch_model.bin": bytes(range(256)) * 32,
            },
        }
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_fetches_verifies_and_then_skips(tmp_path: Path, hub: tuple[FakeHub, str]):
    fake, url = hub
    done = run_download("cpu", "--source", "huggingface", "--models-dir", str(tmp_path), HF_ENDPOINT=url)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / GGUF_DIR / GGUF).read_bytes() == fake.repos[GGUF_DIR][GGUF]
    assert not (tmp_path / GGUF_DIR / "internlm2_5-1_8b-chat-q8_0.gguf").exists()
    assert (tmp_path / BCE_DIR / "1_Pooling" / "config.json").is_file()
    marker = json.loads((tmp_path / BCE_DIR / MARKER).read_text())
    assert marker["repo"] == BCE_DIR and marker["files"]["pytorch_model.bin"] == 8192
    assert done.stdout.count("[ok") == 2 and "4 files verified" in done.stdout
    assert f"--set llm.llamacpp.model={tmp_path / GGUF_DIR / GGUF}" in done.stdout

    fake.requests.clear()
    again = run_download("cpu", "--source", "huggingface", "--models-dir", str(tmp_path), HF_ENDPOINT=url)
    assert again.returncode == 0 and again.stdout.count("[present]") == 2
    assert fake.requests == [], "models already there need no network"


def test_a_file_that_does_not_match_the_hubs_checksum_fails_the_download(tmp_path: Path, hub: tuple[FakeHub, str]):
    fake, url = hub
    fake.tampered.add(GGUF)
    done = run_download("cpu", "--source", "huggingface", "--models-dir", str(tmp_path), HF_ENDPOINT=url)
    assert done.returncode == 1
    assert f"{tmp_path / GGUF_DIR / GGUF} does not match the hub's checksum" in done.stderr
    assert not (tmp_path / GGUF_DIR / MARKER).exists()
