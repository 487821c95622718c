"""Who gets in: open on loopback, a login required off it, no route that reads an arbitrary file."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from app.access import parse_logins, web_logins
from modules.config_layers import ConfigError
from tests.app.serving import app_env, start_app
from tests.conftest import REPO, write_kb


def test_loopback_needs_no_login():
    assert web_logins("127.0.0.1", False, [], "WULEWULE_AUTH", {}) is None
    assert web_logins("localhost", False, [], "WULEWULE_AUTH", {}) is None


@pytest.mark.parametrize(("host", "share"), [("0.0.0.0", False), ("192.168.1.20", False), ("127.0.0.1", True)])
def test_reachable_from_other_machines_without_a_login_is_refused(host: str, share: bool):
    with pytest.raises(ConfigError, match="without a login"):
        web_logins(host, share, [], "WULEWULE_AUTH", {})


def test_logins_come_from_flags_and_the_environment():
    logins = web_logins("0.0.0.0", False, ["ana:pw1"], "WULEWULE_AUTH", {"WULEWULE_AUTH": "bo:pw:2, cy:pw3"})
    assert logins == [("ana", "pw1"), ("bo", "pw:2"), ("cy", "pw3")]


@pytest.mark.parametrize("bad", ["ana", ":pw", "ana:"])
def test_a_malformed_login_is_an_error_that_does_not_echo_the_password(bad: str):
    with pytest.raises(ConfigError, match="USER:PASSWORD") as info:
        parse_logins([bad], "--auth")
    assert "pw" not in str(info.value)


def test_serving_on_the_lan_without_a_login_refuses_to_start(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--set", f"app.data_dir={tmp_path}", "serve", "--host", "0.0.0.0"],
        cwd=REPO,
        env=app_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "without a login" in proc.stderr and "WULEWULE_AUTH" in proc.stderr


@pytest.fixture(scope="module")
def locked_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("locked")
    write_kb(root / "kb")
    yield from start_app(root, "locked", WULEWULE_AUTH="player:s3cret-pass")


@pytest.mark.slow
def test_with_a_login_the_app_and_its_api_need_it(locked_app: str):
    from gradio_client import Client

    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises different types per version
        Client(locked_app + "/", verbose=False).predict("红孩儿是谁？", api_name="/ask")
    client = Client(locked_app + "/", auth=("player", "s3cret-pass"), verbose=False)
    assert "火焰山" in client.predict("红孩儿是谁？", api_name="/ask")["answer"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=../../../../etc/passwd",
        "/file=/etc/passwd",
        "/gradio_api/file=configs/default.yaml",
        "/gradio_api/file=" + str(REPO / "configs" / "default.yaml"),
    ],
)
def test_no_route_reads_an_arbitrary_file(locked_app: str, path: str):
    from gradio_client import Client

    client = Client(locked_app + "/", auth=("player", "s3cret-pass"), verbose=False)
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    request = urllib.request.Request(locked_app + path, headers={"Cookie": cookies})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        assert exc.code in (400, 401, 403, 404)
        return
    assert "root:" not in body and "system_prompt" not in body
