"""Add a player's own documents to the user knowledge base (never the shipped one).

Markdown, text and JSONL files are checked and copied; PDFs are turned into text with pypdf.
The index notices the new files by their hash and rebuilds on next use.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from modules.rag.loader import KnowledgeFileError, load_file

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".jsonl"}


def safe_name(name: str) -> str:
    """A file name with no directories and no characters that could escape the target dir."""
    name = Path(name.replace("\\", "/")).name
    name = re.sub(r"[^\w.\-\u3400-\u9fff]+", "_", name).lstrip(".")
    return name or "document"


def _free_path(directory: Path, name: str) -> Path:
    target = directory / name
    stem, suffix, n = target.stem, target.suffix, 2
    while target.exists():
        target = directory / f"{stem}-{n}{suffix}"
        n += 1
    return target


def pdf_text(path: Path) -> str:
    """The text of every page of a PDF, pages separated by blank lines."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, OSError, ValueError) as exc:
        raise KnowledgeFileError(f"cannot read PDF: {exc}") from None
    text = "\n\n".join(p for p in pages if p)
    if not text:
        raise KnowledgeFileError("the PDF has no extractable text (a scan? OCR it first)")
    return text


def ingest_paths(paths: Sequence[Path], user_dir: Path) -> list[str]:
    """Copy each file (or each supported file under a folder) into user_dir; one report line each."""
    user_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    report: list[str] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES | {".pdf"}
            )
        elif path.is_file():
            files.append(path)
        else:
            report.append(f"skipped {path}: no such file")
    for path in files:
        suffix = path.suffix.lower()
        try:
            if suffix == ".pdf":
                target = _free_path(user_dir, safe_name(path.stem) + ".txt")
                target.write_text(pdf_text(path), encoding="utf-8")
            elif suffix in TEXT_SUFFIXES:
                load_file(path, path.parent)  # raises on broken encoding / front matter / JSONL
                target = _free_path(user_dir, safe_name(path.name))
                shutil.copyfile(path, target)
            else:
                report.append(f"skipped {path}: unsupported type {suffix or '(none)'} (use txt, md, pdf or jsonl)")
                continue
        except KnowledgeFileError as exc:
            report.append(f"skipped {path}: {exc}")
            continue
        report.append(f"added {path} -> {target}")
    return report
