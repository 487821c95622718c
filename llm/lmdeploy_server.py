"""LMDeploy's ``api_server`` as a chat backend: connected to by URL, or started and looked after by the app.

The app never imports lmdeploy: it lives in its own environment (``.venv-serve``, see requirements-serve.txt)
and is driven as a command, ``lmdeploy serve api_server <model> ...``, then spoken to over its
OpenAI-compatible HTTP API through :class:`llm.openai_chat.OpenAIChatModel`. A managed server is started
with its output in a log file, waited for until ``/v1/models`` answers, restarted once if it crashes, and
stopped when the app exits.

Real lmdeploy cannot run on the CPU machines this is developed and tested on: its TurboMind engine needs an
NVIDIA GPU with CUDA. The tests drive the same code with a fake ``lmdeploy`` executable that speaks the same
command line and HTTP protocol.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx

from llm.base import ChatModelError, ChatTurn
from llm.openai_chat import ChatServerUnreachableError, OpenAIChatModel

if TYPE_CHECKING:
    from llm.settings import LmdeploySettings

log = logging.getLogger(__name__)

_TAIL_LINES = 20
_TAIL_BYTES = 8192
_POLL_S = 0.25
_ELSEWHERE = "or run `lmdeploy serve api_server` yourself and set llm.lmdeploy.url"


def _find_key(tree: Any, key: str) -> Any:
    """The first value stored under ``key`` anywhere in nested dicts and lists (as LMDeploy searches)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        children: Any = tree.values()
    elif isinstance(tree, list):
        children = tree
    else:
        return None
    for child in children:
        found = _find_key(child, key)
        if found is not None:
            return found
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("lmdeploy: cannot read %s (%s); treating the model as unquantised", path, exc)
        return None


def detect_model_format(model_dir: Path) -> Literal["hf", "awq"]:
    """The LMDeploy ``--model-format`` of a model directory: "awq" when it is AWQ-quantised, else "hf".

    Checked, in order: ``config.json``'s ``quantization_config`` (what ``lmdeploy lite auto_awq`` and AutoAWQ
    write, ``{"quant_method": "awq", "bits": 4, "group_size": 128, ...}``), found at any depth as LMDeploy
    itself looks for it (vision-language configs nest it under ``llm_config``/``text_config``), or a
    ``quant_config`` key in the same places; then a separate ``quant_config.json`` (older AutoAWQ, whose
    ``{"w_bit": 4, "q_group_size": 128, ...}`` may lack ``quant_method``).
    """
    config = _read_json(model_dir / "config.json")
    quant = _find_key(config, "quantization_config") or _find_key(config, "quant_config")
    if not isinstance(quant, dict):
        legacy = _read_json(model_dir / "quant_config.json")
        quant = legacy if isinstance(legacy, dict) else None
        if quant is not None and "quant_method" not in quant and {"w_bit", "q_group_size"} <= quant.keys():
            return "awq"
    if quant is None:
        return "hf"
    method = str(quant.get("quant_method", "")).lower()
    if method == "awq":
        return "awq"
    if method:
        # LMDeploy refuses a --model-format that contradicts the model's own quantisation config.
        log.warning(
            "lmdeploy: %s is quantised with %r, which llm.lmdeploy.model_format (hf | awq) does not cover; "
            "LMDeploy will probably refuse to load it as hf",
            model_dir,
            method,
        )
    return "hf"


def lmdeploy_command(settings: LmdeploySettings, model_dir: Path, *, command: str | None = None) -> list[str]:
    """The argv of ``lmdeploy serve api_server`` for these settings; ``command`` overrides settings.command."""
    model_format = settings.model_format
    if model_format == "auto":
        model_format = detect_model_format(model_dir)
    return [
        command or settings.command,
        "serve",
        "api_server",
        str(model_dir),
        "--server-name",
        settings.host,
        "--server-port",
        str(settings.port),
        "--backend",
        "turbomind",
        "--model-format",
        model_format,
        "--cache-max-entry-count",
        str(settings.cache_max_entry_count),
        "--session-len",
        str(settings.session_len),
        "--tp",
        str(settings.tp),
    ]


def _client_host(host: str) -> str:
    """Where a client reaches a server bound to ``host``: a wildcard bind is reached on loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _v1_url(url: str) -> str:
    """LMDeploy serves its OpenAI API under /v1: add it to a bare ``http://host:port``."""
    url = url.strip().rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


class ManagedLmdeployServer:
    """``lmdeploy serve api_server`` run as a child process: started, health-checked, restarted once, stopped."""

    def __init__(
        self,
        settings: LmdeploySettings,
        model_dir: Path,
        log_dir: Path,
        *,
        command: str | None = None,
        stop_timeout: float = 10,
    ) -> None:
        self.settings = settings
        self.model_dir = Path(model_dir)
        self.argv = lmdeploy_command(settings, self.model_dir, command=command)
        self.log_path = Path(log_dir) / f"lmdeploy-{settings.port}.log"
        self.base_url = f"http://{_client_host(settings.host)}:{settings.port}/v1"
        self.stop_timeout = stop_timeout
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = True
        self._log_offset = 0
        self._atexit = False
        self._lock = threading.RLock()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The current server process (None before the first start)."""
        return self._process

    @property
    def started(self) -> bool:
        """True once started and until stopped, whether or not the process is still alive."""
        return self._process is not None and not self._stopped

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers; a no-op while it is running."""
        with self._lock:
            if self.running:
                return
            self._stopped = False
            self._launch()

    def ensure_running(self) -> None:
        """Start the server if needed; after a crash restart it once, and refuse a second time."""
        with self._lock:
            if not self.started:
                self.start()
                return
            assert self._process is not None
            code = self._process.poll()
            if code is None:
                return
            if self.restarts >= 1:
                raise ChatModelError(
                    f"lmdeploy: the LMDeploy server crashed again (exit code {code}) after one restart, so it is "
                    f"not restarted any more. The end of its log {self.log_path}:\n{self.log_tail()}\n"
                    f"Fix the problem above and restart the app, {_ELSEWHERE}"
                )
            self.restarts += 1
            log.warning("lmdeploy: the server exited (code %s); restarting it once (log: %s)", code, self.log_path)
            self._launch()

    def stop(self) -> None:
        """Terminate the server and its children (SIGTERM, then SIGKILL after stop_timeout); idempotent."""
        # Not under the lock: stopping must work while another thread waits for a start.
        self._stopped = True
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False
        proc = self._process
        if proc is None:
            return
        if proc.poll() is not None:
            return
        self._kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("lmdeploy: the server ignored SIGTERM for %g s; killing it", self.stop_timeout)
            self._kill_group(proc, signal.SIGKILL)
            proc.wait()
        # Sweep workers that outlived the server. Only now: the group was ours a moment ago, whereas the
        # id of a group that emptied long ago may since belong to an unrelated process.
        self._kill_group(proc, signal.SIGKILL)

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines the current server run wrote to its log."""
        try:
            with self.log_path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(self._log_offset, size - _TAIL_BYTES))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return "(no log)"
        tail = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
        return "\n".join(f"  | {line}" for line in tail) if tail else "  | (the log is empty)"

    def __enter__(self) -> ManagedLmdeployServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _launch(self) -> None:
        self._check_port_free()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log_file.write(f"\n=== {stamp} starting: {shlex.join(self.argv)}\n".encode())
            log_file.flush()
            self._log_offset = log_file.tell()
            try:
                self._process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    # Its own process group, so stop() reaches the engine's worker processes too.
                    start_new_session=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            except OSError as exc:
                raise ChatModelError(
                    f"lmdeploy: cannot run {self.argv[0]!r} ({exc.strerror or exc}). Create the serving "
                    "environment on the GPU host (`python3 -m venv .venv-serve && .venv-serve/bin/pip install "
                    f"-r requirements-serve.txt`) or fix llm.lmdeploy.command, {_ELSEWHERE}"
                ) from None
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        log.info("lmdeploy: started pid %s, waiting for %s (log: %s)", self._process.pid, self.base_url, self.log_path)
        self._wait_until_ready(self._process)

    def _check_port_free(self) -> None:
        host = _client_host(self.settings.host).strip("[]")
        try:
            with socket.create_connection((host, self.settings.port), timeout=1):
                pass
        except OSError:
            return
        raise ChatModelError(
            f"lmdeploy: port {self.settings.port} on {host} is already in use — another server is running there. "
            f"Stop it, choose another llm.lmdeploy.port, or to use that server set llm.lmdeploy.url to {self.base_url}"
        )

    def _wait_until_ready(self, proc: subprocess.Popen[bytes]) -> None:
        timeout = self.settings.startup_timeout
        deadline = time.monotonic() + timeout
        url = f"{self.base_url}/models"
        # trust_env=False: a proxy from the environment must not stand between us and loopback.
        with httpx.Client(timeout=2, trust_env=False) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    raise ChatModelError(
                        f"lmdeploy: the LMDeploy server exited during start-up (exit code {code}). "
                        f"The end of its log {self.log_path}:\n{self.log_tail()}\n"
                        "TurboMind needs an NVIDIA GPU with CUDA and the model in llm.lmdeploy.model; "
                        f"fix the problem above, {_ELSEWHERE}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        log.info("lmdeploy: the server answers at %s", self.base_url)
                        return
                except httpx.HTTPError:
                    pass  # not listening yet
                if time.monotonic() >= deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise ChatModelError(
                        f"lmdeploy: the LMDeploy server did not answer {url} within {timeout:g} s and was stopped. "
                        f"The end of its log {self.log_path}:\n{tail}\n"
                        f"If the model is still loading, raise llm.lmdeploy.startup_timeout; {_ELSEWHERE}"
                    )
                time.sleep(_POLL_S)

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(proc.pid, sig)


class LmdeployChatModel:
    """A ChatModel on LMDeploy's api_server: a running one at ``url``, or a managed one it (re)starts."""

    name = "lmdeploy"

    def __init__(
        self,
        settings: LmdeploySettings,
        *,
        url: str | None = None,
        server: ManagedLmdeployServer | None = None,
        api_key: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 60,
    ) -> None:
        url = url if url is not None else settings.url
        if server is not None and url:
            raise ValueError("lmdeploy: give either a server URL (llm.lmdeploy.url) or a managed server, not both")
        if server is None and not url:
            raise ValueError("lmdeploy: set llm.lmdeploy.url, or give a ManagedLmdeployServer to start one")
        self.settings = settings
        self.server = server
        base_url = server.base_url if server is not None else _v1_url(url or "")
        self.client = OpenAIChatModel(
            base_url, "", api_key, connect_timeout, read_timeout, name=self.name, url_key="llm.lmdeploy.url"
        )

    @property
    def base_url(self) -> str:
        return self.client.base_url

    def start(self) -> None:
        """Start the managed server now rather than at the first question (no-op when only connecting)."""
        if self.server is not None and not self.server.started:
            self.server.start()

    def stream_chat(self, messages: Sequence[ChatTurn], max_tokens: int, temperature: float) -> Iterator[str]:
        """The answer's pieces; with a managed server an unreachable server is restarted and asked once more."""
        server = self.server
        self.start()
        try:
            yield from self.client.stream_chat(messages, max_tokens, temperature)
            return
        except ChatServerUnreachableError as exc:
            if server is None:
                raise
            log.warning("lmdeploy: %s; checking the managed server and trying once more", exc)
        # Unreachable means nothing was generated yet, so asking again repeats nothing.
        server.ensure_running()
        try:
            yield from self.client.stream_chat(messages, max_tokens, temperature)
        except ChatServerUnreachableError as exc:
            raise ChatModelError(f"{exc}. The managed server's log: {server.log_path}") from None

    def list_models(self) -> list[str]:
        """The model ids the server offers."""
        return self.client.list_models()

    def health(self) -> bool:
        """True when the server answers ``GET /v1/models``."""
        return self.client.health()

    def close(self) -> None:
        """Close the connections and stop a managed server."""
        self.client.close()
        if self.server is not None:
            self.server.stop()
