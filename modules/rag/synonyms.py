"""Players' words -> the words the knowledge base uses: English game words and colloquial Chinese.

The knowledge base is written in Chinese with an English summary per entry; the English table
lets "how do I beat…", "is there co-op" or "where is the shrine" reach the Chinese passages too,
and the colloquial table lets "啥时候上线" find 发售. Both live in ``assets/synonyms.yaml``, a
reviewed data file. Entity names are not here: they come from each entry's aliases.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

SYNONYMS_FILE = Path(__file__).resolve().parents[2] / "assets" / "synonyms.yaml"


def load_synonyms(path: Path = SYNONYMS_FILE) -> tuple[dict[str, str], dict[str, str]]:
    """(english, colloquial): word -> space-separated knowledge-base terms; a bad file is a clear error."""
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    tables = []
    for section in ("english", "colloquial"):
        table = data.get(section) or {}
        if not isinstance(table, dict) or not all(isinstance(v, str) and v.strip() for v in table.values()):
            raise ValueError(f"{path}: '{section}' must map each word to a string of knowledge-base terms")
        tables.append({str(k).lower(): v for k, v in table.items()})
    return tables[0], tables[1]


GLOSSARY, COLLOQUIAL = load_synonyms()

_PATTERN = re.compile(
    "|".join(rf"(?<![\w+]){re.escape(k)}(?![\w+])" for k in sorted(GLOSSARY, key=len, reverse=True)),
    re.IGNORECASE,
)


_COLLOQUIAL_PATTERN = re.compile("|".join(re.escape(k) for k in sorted(COLLOQUIAL, key=len, reverse=True)), re.I)


def _terms(pattern: re.Pattern[str], table: dict[str, str], text: str) -> list[str]:
    out: list[str] = []
    for match in pattern.finditer(text):
        for term in table[match.group(0).lower()].split():
            if term not in out:
                out.append(term)
    return out


def kb_terms(text: str) -> list[str]:
    """The knowledge base's words for the players' words in a (Chinese) question, each once."""
    return _terms(_COLLOQUIAL_PATTERN, COLLOQUIAL, text)


def chinese_terms(text: str) -> list[str]:
    """Chinese equivalents of the English game words in a text, each once, in order."""
    return _terms(_PATTERN, GLOSSARY, text)
