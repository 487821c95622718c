"""Start the real app on a free loopback port for tests that talk to it over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_command(root: Path, port: int, *sets: str) -> list[str]:
    flags = [f"knowledge.paths=[{root / 'kb'}]", f"app.data_dir={root / 'data'}", "rag.embedding.model="]
    flags += ["rag.reranker.model=", "rag.embedding.backend=none", *sets]
    return [sys.executable, "-m", "app", *(a for f in flags for a in ("--set", f)), "serve", "--port", str(port)]


def app_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WULEWULE_API_KEY"}
    return {**env, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False", **extra}


def start_app(root: Path, name: str, **env: str) -> Iterator[str]:
    """Serve the app on a free loopback port until the fixture ends; yields the base URL."""
    port = free_port()
    log_path = root / f"{name}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            app_command(root, port), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=app_env(**env)
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 120
            while time.time() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"app exited early:\n{log_path.read_text()}")
                try:
                    with urllib.request.urlopen(url + "/", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    time.sleep(0.5)
            else:
                pytest.fail(f"app did not start:\n{log_path.read_text()}")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)
