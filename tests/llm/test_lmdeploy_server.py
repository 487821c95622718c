"""The lmdeploy backend: its command line, and the managed server's life driven through a fake ``lmdeploy``.

Real lmdeploy needs CUDA, so the tests write a small Python executable that takes the same command line
(``serve api_server <dir> --server-name H --server-port N ...``) and serves /v1/models and a streaming
/v1/chat/completions, then run it as a real process on loopback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llm.base import ChatModel, ChatModelError, ChatTurn
from llm.lmdeploy_server import LmdeployChatModel, ManagedLmdeployServer, detect_model_format, lmdeploy_command
from llm.openai_chat import ChatServerUnreachableError
from llm.settings import LmdeploySettings

REPO = Path(__file__).resolve().parents[2]
AWQ = {"quant_method": "awq", "version": "gemm", "bits": 4, "group_size": 128, "zero_point": True}
PLAIN = {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2", "torch_dtype": "bfloat16"}
QUESTION = [ChatTurn("user", "你是谁？")]

FAKE_LMDEPLOY = '''\
#!{python}
"""A stand-in for `lmdeploy serve api_server`: same command line, same OpenAI-compatible HTTP API."""
import json, os, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = {mode!r}
HERE = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
with open(os.path.join(HERE, "starts.jsonl"), "a") as f:
    f.write(json.dumps({{"pid": os.getpid(), "argv": args}}) + "\\n")
print("fake lmdeploy:", " ".join(args), flush=True)
if MODE == "crash":
    print("RuntimeError: TurboMind: no CUDA-capable device is detected", file=sys.stderr, flush=True)
    sys.exit(3)
if MODE == "hang":
    time.sleep(60)
    sys.exit(0)
assert args[:2] == ["serve", "api_server"], args
model = args[2]
opts = dict(zip(args[3::2], args[4::2]))
if MODE == "child":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.path.join(HERE, "child.pid"), "w") as f:
        f.write(str(child.pid))
time.sleep(0.3)  # loading the model


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *a):
        print("request:", fmt % a, flush=True)

    def do_GET(self):
        if self.path != "/v1/models":
            self.send_error(404)
            return
        body = json.dumps({{"object": "list", "data": [{{"id": model, "object": "model"}}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions" or request["model"] != model or not request["stream"]:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in ["俺老孙", "来也！"]:
            chunk = {{"choices": [{{"index": 0, "delta": {{"content": piece}}, "finish_reason": None}}]}}
            self.wfile.write(("data: " + json.dumps(chunk) + "\\n\\n").encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\\n\\n")


ThreadingHTTPServer((opts["--server-name"], int(opts["--server-port"])), Handler).serve_forever()
'''


def write_fake(directory: Path, mode: str = "ok") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "lmdeploy"
    path.write_text(FAKE_LMDEPLOY.format(python=sys.executable, mode=mode), encoding="utf-8")
    path.chmod(0o755)
    return path


def starts(fake: Path) -> list[dict]:
    record = fake.parent / "starts.jsonl"
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def model_dir(root: Path, config: dict | None, **extra_files: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (root / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for name, content in extra_files.items():
        (root / f"{name}.json").write_text(json.dumps(content), encoding="utf-8")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def wait_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def settings(command: Path | str = "lmdeploy", **overrides: object) -> LmdeploySettings:
    values = {"command": str(command), "port": free_port(), "startup_timeout": 20, **overrides}
    return LmdeploySettings(**values)


# -- detect_model_format and the command line --------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "extra", "expected"),
    [
        pytest.param({**PLAIN, "quantization_config": AWQ}, {}, "awq", id="lmdeploy-lite-auto_awq"),
        pytest.param({**PLAIN, "llm_config": {"quantization_config": AWQ}}, {}, "awq", id="nested-vl-config"),
        pytest.param({**PLAIN, "quant_config": {"quant_method": "AWQ", "bits": 4}}, {}, "awq", id="quant_config-key"),
        pytest.param(
            PLAIN,
            {"quant_config": {"zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMM"}},
            "awq",
            id="autoawq-quant_config.json",
        ),
        pytest.param(PLAIN, {}, "hf", id="plain"),
        pytest.param(None, {}, "hf", id="no-config"),
        pytest.param({**PLAIN, "quantization_config": {"quant_method": "gptq", "bits": 4}}, {}, "hf", id="gptq"),
    ],
)
def test_detect_model_format(tmp_path, config, extra, expected):
    assert detect_model_format(model_dir(tmp_path / "m", config, **extra)) == expected


def test_detect_model_format_warns_about_other_quantisations(tmp_path, caplog):
    directory = model_dir(tmp_path / "m", {**PLAIN, "quantization_config": {"quant_method": "gptq"}})
    with caplog.at_level(logging.WARNING, logger="llm.lmdeploy_server"):
        assert detect_model_format(directory) == "hf"
    assert "'gptq'" in caplog.text and "llm.lmdeploy.model_format" in caplog.text


def test_detect_model_format_survives_a_broken_config(tmp_path):
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "config.json").write_text("{not json", encoding="utf-8")
    assert detect_model_format(directory) == "hf"


def test_command_line_from_settings_with_awq_detected(tmp_path):
    directory = model_dir(tmp_path / "wulewule-w4a16", {**PLAIN, "quantization_config": AWQ})
    cfg = LmdeploySettings(host="0.0.0.0", port=24444, cache_max_entry_count=0.4, session_len=4096, tp=2)
    assert lmdeploy_command(cfg, directory) == [
        ".venv-serve/bin/lmdeploy",
        "serve",
        "api_server",
        str(directory),
        "--server-name",
        "0.0.0.0",
        "--server-port",
        "24444",
        "--backend",
        "turbomind",
        "--model-format",
        "awq",
        "--cache-max-entry-count",
        "0.4",
        "--session-len",
        "4096",
        "--tp",
        "2",
    ]


def format_flag(argv: list[str]) -> str:
    return argv[argv.index("--model-format") + 1]


def test_command_line_hf_for_an_unquantised_model(tmp_path):
    assert format_flag(lmdeploy_command(LmdeploySettings(), model_dir(tmp_path / "m", PLAIN))) == "hf"


@pytest.mark.parametrize(("config", "explicit"), [({**PLAIN, "quantization_config": AWQ}, "hf"), (PLAIN, "awq")])
def test_explicit_model_format_wins(tmp_path, config, explicit):
    cfg = LmdeploySettings(model_format=explicit)
    assert format_flag(lmdeploy_command(cfg, model_dir(tmp_path / "m", config))) == explicit


def test_command_override(tmp_path):
    argv = lmdeploy_command(LmdeploySettings(), model_dir(tmp_path / "m", PLAIN), command="/opt/serve/bin/lmdeploy")
    assert argv[:3] == ["/opt/serve/bin/lmdeploy", "serve", "api_server"]


# -- the managed server, with a fake lmdeploy ---------------------------------------------------------


def test_managed_server_lifecycle_restarts_once(tmp_path):
    fake = write_fake(tmp_path / "bin")
    directory = model_dir(tmp_path / "model", {**PLAIN, "quantization_config": AWQ})
    cfg = settings(fake)
    server = ManagedLmdeployServer(cfg, directory, tmp_path / "logs")
    chat = LmdeployChatModel(cfg, server=server)
    assert isinstance(chat, ChatModel) and chat.name == "lmdeploy"
    assert not server.started and starts(fake) == []  # nothing runs until it is needed
    try:
        # First question: the server is started, waited for, and the model picked from /v1/models.
        assert "".join(chat.stream_chat(QUESTION, 32, 0.0)) == "俺老孙来也！"
        (first,) = starts(fake)
        assert first["argv"] == lmdeploy_command(cfg, directory)[1:]
        assert format_flag(first["argv"]) == "awq"
        assert chat.client.model == str(directory)
        assert chat.health() and server.running and server.process.pid == first["pid"]
        assert "fake lmdeploy: serve api_server" in server.log_path.read_text()

        # A crash: the next question finds the server unreachable, restarts it once and gets its answer.
        os.kill(first["pid"], signal.SIGKILL)
        server.process.wait(5)
        assert "".join(chat.stream_chat(QUESTION, 32, 0.0)) == "俺老孙来也！"
        assert server.restarts == 1
        second = starts(fake)[1]
        assert second["pid"] != first["pid"] and server.process.pid == second["pid"]

        # A second crash is not restarted: the player gets an error with the log's last lines.
        os.kill(second["pid"], signal.SIGKILL)
        server.process.wait(5)
        with pytest.raises(ChatModelError) as err:
            "".join(chat.stream_chat(QUESTION, 32, 0.0))
        message = str(err.value)
        assert "crashed again" in message and str(server.log_path) in message
        assert "fake lmdeploy: serve api_server" in message
        assert len(starts(fake)) == 2
    finally:
        chat.close()
    assert not server.running


def test_command_that_exits_at_once_reports_its_log(tmp_path):
    fake = write_fake(tmp_path / "bin", mode="crash")
    server = ManagedLmdeployServer(settings(fake), model_dir(tmp_path / "m", PLAIN), tmp_path / "logs")
    started = time.monotonic()
    with pytest.raises(ChatModelError) as err:
        server.start()
    assert time.monotonic() - started < 5  # noticed the exit, did not wait for startup_timeout
    message = str(err.value)
    assert message.startswith("lmdeploy: ") and "exited during start-up (exit code 3)" in message
    assert "no CUDA-capable device is detected" in message and str(server.log_path) in message
    assert "llm.lmdeploy.url" in message


def test_server_that_never_answers_is_stopped_at_the_startup_timeout(tmp_path):
    fake = write_fake(tmp_path / "bin", mode="hang")
    server = ManagedLmdeployServer(settings(fake, startup_timeout=1), model_dir(tmp_path / "m", PLAIN), tmp_path)
    with pytest.raises(ChatModelError, match=r"did not answer .* within 1 s and was stopped") as err:
        server.start()
    assert "llm.lmdeploy.startup_timeout" in str(err.value)
    assert wait_gone(server.process.pid)


def test_stop_ends_the_process_and_its_children(tmp_path):
    fake = write_fake(tmp_path / "bin", mode="child")
    cfg = settings(fake)
    with ManagedLmdeployServer(cfg, model_dir(tmp_path / "m", PLAIN), tmp_path / "logs") as server:
        pid = server.process.pid
        child = int((fake.parent / "child.pid").read_text())
        assert accepts(cfg.port) and not gone(child)
    try:
        assert server.process.poll() is not None and not server.running and not server.started
        assert wait_gone(pid) and wait_gone(child)
        assert not accepts(cfg.port)
        server.stop()  # idempotent
    finally:
        if not gone(child):
            os.kill(child, signal.SIGKILL)


def test_stop_runs_at_interpreter_exit(tmp_path):
    fake = write_fake(tmp_path / "bin")
    cfg = settings(fake)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from llm.settings import LmdeploySettings
        from llm.lmdeploy_server import ManagedLmdeployServer
        cfg = LmdeploySettings.model_validate_json({cfg.model_dump_json()!r})
        server = ManagedLmdeployServer(cfg, Path({str(tmp_path / "m")!r}), Path({str(tmp_path / "logs")!r}))
        server.start()
        print(server.process.pid)
        """
    )
    model_dir(tmp_path / "m", PLAIN)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[-1])
    try:
        assert wait_gone(pid), "the server outlived the app"
    finally:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_port_in_use_is_refused_before_starting(tmp_path):
    fake = write_fake(tmp_path / "bin")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = settings(fake, port=taken.getsockname()[1])
        server = ManagedLmdeployServer(cfg, model_dir(tmp_path / "m", PLAIN), tmp_path / "logs")
        with pytest.raises(ChatModelError, match=r"already in use.*llm\.lmdeploy\.url"):
            server.start()
    assert starts(fake) == []


def test_missing_command_says_how_to_make_the_serving_environment(tmp_path):
    cfg = settings(tmp_path / "no-such-venv" / "bin" / "lmdeploy")
    server = ManagedLmdeployServer(cfg, model_dir(tmp_path / "m", PLAIN), tmp_path / "logs")
    with pytest.raises(ChatModelError, match=r"cannot run .*requirements-serve\.txt"):
        server.start()


# -- connecting to a server by URL --------------------------------------------------------------------


def test_url_only_connects(tmp_path):
    fake = write_fake(tmp_path / "bin")
    port = free_port()
    directory = model_dir(tmp_path / "m", PLAIN)
    argv = [str(fake), "serve", "api_server", str(directory), "--server-name", "127.0.0.1", "--server-port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not accepts(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        cfg = LmdeploySettings(url=f"http://127.0.0.1:{port}", command=str(tmp_path / "never-run"))
        chat = LmdeployChatModel(cfg)
        assert chat.server is None and chat.base_url == f"http://127.0.0.1:{port}/v1"
        assert "".join(chat.stream_chat(QUESTION, 32, 0.0)) == "俺老孙来也！"
        assert chat.list_models() == [str(directory)]
        assert len(starts(fake)) == 1  # only the one the test started
    finally:
        proc.kill()
        proc.wait()


def test_url_unreachable_is_not_retried_and_names_the_setting():
    url = f"http://127.0.0.1:{free_port()}/v1"
    chat = LmdeployChatModel(LmdeploySettings(), url=url)
    with pytest.raises(ChatServerUnreachableError) as err:
        "".join(chat.stream_chat(QUESTION, 32, 0.0))
    assert f"lmdeploy: cannot reach the chat server at {url}" in str(err.value)
    assert "llm.lmdeploy.url" in str(err.value)


def test_needs_a_url_or_a_server_but_not_both(tmp_path):
    with pytest.raises(ValueError, match=r"llm\.lmdeploy\.url"):
        LmdeployChatModel(LmdeploySettings())
    server = ManagedLmdeployServer(LmdeploySettings(), tmp_path, tmp_path)
    with pytest.raises(ValueError, match="not both"):
        LmdeployChatModel(LmdeploySettings(), url="http://127.0.0.1:1/v1", server=server)


def test_wildcard_bind_is_reached_on_loopback(tmp_path):
    server = ManagedLmdeployServer(LmdeploySettings(host="0.0.0.0", port=25555), tmp_path, tmp_path)
    assert server.base_url == "http://127.0.0.1:25555/v1"
    assert server.argv[server.argv.index("--server-name") + 1] == "0.0.0.0"
