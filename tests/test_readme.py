"""The README stays short, keeps the two Quick-start commands verbatim, and its links (and the docs') resolve."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

MAX_README_WORDS = 2200
LAUNCH = "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python -m app"
TEST = "python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt && .venv/bin/python -m pytest"

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]


def _links(path: Path) -> list[str]:
    """Link targets outside fenced blocks and inline code."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    text = INLINE_CODE.sub("", text)
    return LINK.findall(text)


def test_readme_is_short() -> None:
    words = len(README.read_text(encoding="utf-8").split())
    assert words <= MAX_README_WORDS, f"README.md has {words} words (at most {MAX_README_WORDS})"


def test_quick_start_commands_are_verbatim_in_bash_blocks() -> None:
    blocks = [
        (match.start(), match.group(2))
        for match in FENCE.finditer(README.read_text(encoding="utf-8"))
        if match.group(1).strip() == "bash"
    ]
    launch = [start for start, body in blocks if LAUNCH in body.splitlines()]
    test = [start for start, body in blocks if TEST in body.splitlines()]
    assert launch, "the install-and-launch command is not in a ```bash block of README.md"
    assert test, "the install-and-test command is not in a ```bash block of README.md"
    assert launch[0] < test[0], "the install-and-launch command must come before the test command"


def test_documentation_files_exist() -> None:
    for path in _markdown_files():
        assert path.is_file(), f"{path.relative_to(ROOT)} is missing"


def test_relative_links_resolve() -> None:
    broken = []
    checked = 0
    for path in _markdown_files():
        for target in _links(path):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            file_part = target.split("#", 1)[0]
            checked += 1
            if not (path.parent / file_part).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "broken relative links:\n" + "\n".join(broken)
    assert checked > 10, "expected the README and docs to link to each other"
