"""Who may use the web app: anyone on this machine; off loopback (or with a share link) only with a login.

Logins come from ``--auth USER:PASSWORD`` (repeatable) or the environment variable named by
``app.auth_env`` (default ``WULEWULE_AUTH``, ``user:pass,user2:pass2``); the variable keeps passwords out
of the process list and shell history. Gradio checks the login for the page, its API and its file routes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.openai_api import is_loopback
from modules.config_layers import ConfigError


def parse_logins(specs: Sequence[str], origin: str) -> list[tuple[str, str]]:
    """``["ana:secret"]`` -> ``[("ana", "secret")]``; a spec without a user or a password is an error."""
    logins = []
    for spec in specs:
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            user, sep, password = item.partition(":")
            if not sep or not user.strip() or not password:
                raise ConfigError(f"{origin}: expected USER:PASSWORD, got {item.split(':')[0]!r}:…")
            logins.append((user.strip(), password))
    return logins


def web_logins(
    host: str, share: bool, flags: Sequence[str], auth_env: str, environ: Mapping[str, str]
) -> list[tuple[str, str]] | None:
    """The logins the web app requires, or None when it stays open (loopback, no share link, none given).

    Raises ConfigError when the app would be reachable from other machines without a login.
    """
    logins = parse_logins(flags, "--auth") + parse_logins([environ.get(auth_env, "")], auth_env)
    if logins:
        return logins
    if is_loopback(host) and not share:
        return None
    where = "a public share link" if share else f"{host}, which other machines can reach"
    raise ConfigError(
        f"refusing to serve the web app on {where} without a login. Add one: "
        f"export {auth_env}=player:<a password> (or --auth player:<password>), "
        "or keep the default host 127.0.0.1"
    )
