"""Layered, typed configuration shared by the app (``app/config.py``) and training (``training/settings.py``).

Precedence (later wins): the defaults file < ``--config PATH`` < environment variables (``PREFIX_A__B=v``)
< ``--set a.b=v`` flags. Command-line flags win because they are the most specific thing a person typed.
Each package declares its own settings as ``Section`` subclasses (``modules/asr/settings.py`` and so on);
unknown keys and bad values fail at start with the dotted key named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A configuration problem, worded for the person who has to fix it."""


class Section(BaseModel):
    """A settings section: typed fields with defaults; unknown keys are an error, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


S = TypeVar("S", bound=BaseModel)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file holding a mapping (an empty file is an empty mapping)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def set_dotted(tree: dict[str, Any], dotted: str, raw: str, origin: str) -> None:
    """Set ``a.b.c`` in a nested mapping to ``raw`` read as YAML (``8`` -> int, ``true`` -> bool, ``[a]`` -> list)."""
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise ConfigError(f"{origin}: empty key")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: config key {'.'.join(parts)!r}: {part!r} is not a section")
        node = child
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node[parts[-1]] = value


def parse_set_flags(flags: Iterable[str]) -> list[tuple[str, str]]:
    """``["rag.top_k=8"]`` -> ``[("rag.top_k", "8")]``; a flag without ``=`` is an error."""
    pairs = []
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {flag!r}: expected dotted.key=value, e.g. --set rag.top_k=8")
        pairs.append((key.strip(), value))
    return pairs


def env_overrides(environ: Mapping[str, str], prefix: str) -> list[tuple[str, str]]:
    """``PREFIX_RAG__TOP_K=8`` -> ``("rag.top_k", "8")``; ``PREFIX_CONFIG`` names a file and is skipped."""
    pairs = []
    for name, value in sorted(environ.items()):
        if name.startswith(prefix) and name != prefix + "CONFIG" and "__" in name:
            pairs.append((name[len(prefix) :].lower().replace("__", "."), value))
    return pairs


def describe(exc: ValidationError) -> str:
    """A validation error as one line per offending dotted key."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown config key {key!r}")
        else:
            lines.append(f"config key {key!r}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_layers(
    model: type[S],
    defaults: Path,
    config_path: Path | str | None = None,
    sets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    env_prefix: str | None = None,
) -> S:
    """Build ``model`` from the layers above; raises ConfigError naming the offending key.

    ``environ`` is read only when ``env_prefix`` is given (the training settings take no environment layer).
    """
    tree = read_yaml(defaults)
    if config_path:
        tree = merge(tree, read_yaml(Path(config_path)))
    if env_prefix is not None and environ is not None:
        for dotted, raw in env_overrides(environ, env_prefix):
            set_dotted(tree, dotted, raw, f"environment {env_prefix}{dotted.upper().replace('.', '__')}")
    for dotted, raw in parse_set_flags(sets):
        set_dotted(tree, dotted, raw, f"--set {dotted}")
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None
