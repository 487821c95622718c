"""Cut an answer's text stream into sentences as it arrives, so speech can start before the answer ends.

``SentenceSplitter.feed(delta)`` returns the sentences that the text so far completes; ``flush()``
returns the rest when the stream ends. The pieces are exact slices of the input: joined, they give
back the text, whitespace included (a cut falls after a sentence's closing marks; the whitespace
that follows starts the next piece). Where a piece ends depends only on the text, never on how it
was cut into deltas: whenever a decision needs a character that has not arrived (is this '.' the
end of a sentence or the dot in 3.5? is a closing quote coming after this '。'?), the splitter waits
for it rather than guessing.

Sentence ends: 。！？；… and newlines always; ASCII ``?`` and ``!`` always; ``.`` only when
followed by whitespace, a Chinese character or the end of the text, and not after a digit that a
digit follows (3.5, 2024.08.20), a one-letter word or a dotted abbreviation (``J.``, ``e.g.``,
``U.S.``), a known title (``Dr.``, ``Mr.``, ``vs.`` …) or a list number at the start of a piece
(``1. ``). A run of marks (``……``, ``?!``, ``...``) and the closing quotes and brackets after it
stay with their sentence.

First-sentence fast path: speech cannot start before the first piece is complete, and an answer's
first sentence is often long. Until the first cut, a clause ending at a pause mark (，、：, ; :)
is emitted on its own once the piece holds at least ``first_clause_chars`` non-space characters,
so the first audio comes one clause sooner. Later sentences are not cut early: by then the
previous sentence is playing and there is time to wait for a whole one, which sounds better.

``max_chars`` bounds a piece that has no sentence end at all (a model that never punctuates): it
is cut at its last pause or space, or at the limit when it has neither.
"""

from __future__ import annotations

_ALWAYS_ENDS = frozenset("。！？；…!?\uff1f\uff01")
_CLOSERS = frozenset("\"'”’」』》）)]】〕")
_CJK_PAUSES = frozenset("，、：")
_ASCII_PAUSES = frozenset(",;:")
_ABBREVIATIONS = frozenset(["dr", "mr", "mrs", "ms", "st", "vs", "jr", "sr", "prof", "no", "fig", "mt", "approx",
                           "dept", "est", "gen", "gov", "lt", "col", "capt", "sgt", "ft", "vol", "pp"])  # fmt: skip

_WAIT = -1  # a decision needs a character that has not arrived yet
_NO_CUT = 0


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


class SentenceSplitter:
    """Streaming sentence splitter: feed text deltas, get back the sentences they complete."""

    def __init__(self, first_clause_chars: int = 12, max_chars: int = 160) -> None:
        if first_clause_chars < 0:
            raise ValueError(f"first_clause_chars must be >= 0 (0 turns the fast path off), got {first_clause_chars}")
        if max_chars < 2:
            raise ValueError(f"max_chars must be at least 2, got {max_chars}")
        self.first_clause_chars = first_clause_chars
        self.max_chars = max_chars
        self._reset()

    def _reset(self) -> None:
        self._buf = ""  # the piece being built: text since the last cut
        self._pos = 0  # characters of _buf already judged not to end a piece
        self._cut_once = False  # the fast path is for the first piece only

    def feed(self, delta: str) -> list[str]:
        """Add a piece of the stream; return the sentences it completes (possibly none)."""
        if not isinstance(delta, str):
            raise TypeError(f"SentenceSplitter.feed takes str, got {type(delta).__name__}")
        self._buf += delta
        return self._scan(final=False)

    def flush(self) -> list[str]:
        """The stream has ended: return what is left (cut where the text says), and start afresh."""
        pieces = self._scan(final=True)
        if self._buf:
            pieces.append(self._buf)
        self._reset()
        return pieces

    def split(self, text: str) -> list[str]:
        """The whole text at once: feed + flush."""
        return self.feed(text) + self.flush()

    # -- scanning ---------------------------------------------------------------------------------
    def _scan(self, final: bool) -> list[str]:
        pieces: list[str] = []
        buf, i = self._buf, self._pos
        while i < len(buf):
            end = self._decide(buf, i, final)
            if end == _WAIT:
                break
            if end == _NO_CUT and i + 1 >= self.max_chars:
                end = self._forced_cut(buf[: i + 1])
            if end > 0:
                pieces.append(buf[:end])
                buf, i = buf[end:], 0
                self._cut_once = True
                continue
            i += 1
        self._buf, self._pos = buf, i
        return pieces

    def _decide(self, buf: str, i: int, final: bool) -> int:
        """Where the piece ends if character i ends it: an index past i, _NO_CUT, or _WAIT."""
        ch = buf[i]
        if ch == "\n":
            return i + 1 if buf[:i].strip() else _NO_CUT
        if ch in _ALWAYS_ENDS:
            if not buf[:i].strip():
                return _NO_CUT
            return self._end_of_run(buf, i, final)
        if ch == ".":
            return self._decide_dot(buf, i, final)
        if not self._cut_once and self.first_clause_chars and (ch in _CJK_PAUSES or ch in _ASCII_PAUSES):
            return self._decide_pause(buf, i, final)
        return _NO_CUT

    def _end_of_run(self, buf: str, i: int, final: bool) -> int:
        """Past a run of end marks and the closing quotes/brackets after it, or _WAIT at the buffer's end."""
        j = i + 1
        while j < len(buf) and (buf[j] in _ALWAYS_ENDS or buf[j] == "."):
            j += 1
        while j < len(buf) and buf[j] in _CLOSERS:
            j += 1
        if j == len(buf) and not final:
            return _WAIT  # more marks or a closing quote may follow
        return j

    def _decide_dot(self, buf: str, i: int, final: bool) -> int:
        before = buf[:i]
        if not before.strip() or before.strip().isdigit():
            return _NO_CUT  # a list number ("1. ") or a lone dot
        if i + 1 == len(buf) and not final:
            return _WAIT
        after = buf[i + 1 : i + 2]
        if before[-1:].isdigit() and after.isdigit():
            return _NO_CUT  # 3.5, 2024.08.20
        if after != ".":
            word = _word_before(before)
            if word and (len(word) == 1 or "." in word or word.lower() in _ABBREVIATIONS):
                return _NO_CUT  # J. K. Rowling, e.g., U.S., Dr.
        end = self._end_of_run(buf, i, final)
        if end == _WAIT:
            return _WAIT
        if end == len(buf):
            return end  # final: the text ends here
        nxt = buf[end]
        return end if nxt.isspace() or _is_cjk(nxt) else _NO_CUT  # not example.com or v1.x

    def _decide_pause(self, buf: str, i: int, final: bool) -> int:
        if sum(not c.isspace() for c in buf[: i + 1]) < self.first_clause_chars:
            return _NO_CUT
        if buf[i] in _ASCII_PAUSES:
            if i + 1 == len(buf) and not final:
                return _WAIT
            if buf[i - 1 : i].isdigit() and buf[i + 1 : i + 2].isdigit():
                return _NO_CUT  # 1,800 and 12:05
        return i + 1

    @staticmethod
    def _forced_cut(piece: str) -> int:
        """A piece at the length limit with no sentence end: cut after its last pause, else space."""
        for k in range(len(piece) - 1, 0, -1):
            if piece[k] in _CJK_PAUSES or piece[k] in _ASCII_PAUSES or piece[k] in "；;":
                return k + 1
        k = piece.rfind(" ", 1)
        return k if k > 0 else len(piece)


def _word_before(text: str) -> str:
    """The letters-and-dots word that ends text ("U.S" in "the U.S")."""
    k = len(text)
    while k > 0 and (text[k - 1].isascii() and (text[k - 1].isalpha() or text[k - 1] == ".")):
        k -= 1
    return text[k:].strip(".") if text[k:] else ""
