"""The layers: components (modules/, llm/) never reach up into the app, and training uses only public names."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import in a file, including those inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("package", ["modules", "llm"])
def test_components_do_not_import_the_app(package: str):
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for path in sorted((REPO / package).rglob("*.py"))
        for module, _ in imports(path)
        if module == "app" or module.startswith("app.")
    ]
    assert not offenders


def test_training_uses_public_names_only():
    offenders = [
        f"{path.relative_to(REPO)}: {module}.{name}"
        for path in sorted((REPO / "training").rglob("*.py"))
        for module, names in imports(path)
        if module.split(".")[0] in ("app", "modules", "llm")
        for name in names
        if name.startswith("_")
    ]
    assert not offenders
