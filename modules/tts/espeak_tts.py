"""espeak-ng: the zero-download voice. Robotic, but instant and always there once the package is installed.

espeak-ng reads Chinese characters badly (``-v cmn``), but its ``cmn-latn-pinyin`` voice speaks
Mandarin well enough from pinyin with tone numbers. So Chinese runs of a sentence are turned into
pinyin by pypinyin (``TONE3``: ``hei1 xiong2 jing1``; the neutral tone written as 5, because a
syllable without a number is read as tone 1; ü written as ``v`` (``lv4``, ``nve4``), which is what
that voice accepts, while after j/q/x pinyin already writes it as ``u``; tone sandhi applied, so
你好 is read ni2 hao3). English runs (names like Boss or Black Myth) are read by the English voice.
Each run is one espeak-ng call whose WAV comes back on stdout and is parsed in memory.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from modules.audio_types import AudioClip
from modules.tts.base import SpeechSynthesisError
from modules.tts.settings import EspeakSettings

SAMPLE_RATE = 22050  # espeak-ng's native rate; the WAV header is checked against it
INSTALL_HINT = "sudo apt install espeak-ng"
_TIMEOUT_S = 30

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RE = re.compile(f"[{_HAN}]")
_LATIN_RE = re.compile(r"[A-Za-z0-9]")
# Chinese punctuation becomes what espeak pauses at: a comma or a full stop.
_ZH_PUNCT = str.maketrans({"，": ", ", "、": ", ", "；": ", ", "：": ", ", "。": ". ", "！": "! ", "？": "? ",
                           "…": ". ", "—": ", ", "“": " ", "”": " ", "‘": " ", "’": " ", "（": ", ", "）": ", ",
                           "《": " ", "》": " ", "「": " ", "」": " ", "『": " ", "』": " ", "·": " "})  # fmt: skip


class EspeakNotFoundError(FileNotFoundError):
    """espeak-ng is not installed (or tts.espeak.command points nowhere)."""


@dataclass(frozen=True)
class Run:
    """A stretch of a sentence read by one voice."""

    lang: Literal["zh", "en"]
    text: str


def split_runs(text: str) -> list[Run]:
    """Cut a sentence into Chinese and English runs; spaces and punctuation stay with the run they follow."""
    runs: list[Run] = []
    current: Literal["zh", "en"] | None = None
    start = 0
    for k, ch in enumerate(text):
        lang: Literal["zh", "en"] | None = "zh" if _HAN_RE.match(ch) else "en" if _LATIN_RE.match(ch) else None
        if lang is None or lang == current:
            continue
        if current is not None:
            runs.append(Run(current, text[start:k]))
            start = k
        current = lang
    if current is not None:
        runs.append(Run(current, text[start:]))
    elif text.strip():
        runs.append(Run("en", text))
    # Punctuation before the first letter belongs to nobody; punctuation-only runs say nothing.
    return [r for r in runs if _HAN_RE.search(r.text) or _LATIN_RE.search(r.text)]


def to_pinyin(text: str) -> str:
    """Chinese text as espeak's cmn-latn-pinyin voice reads it: "黑熊精。" -> "hei1 xiong2 jing1. "."""
    try:
        from pypinyin import Style, lazy_pinyin
    except ImportError as exc:  # pragma: no cover - pypinyin is in requirements.txt
        raise ImportError(f"espeak Mandarin needs pypinyin: pip install pypinyin==0.55.0 ({exc})") from exc
    syllables = lazy_pinyin(
        text,
        style=Style.TONE3,
        neutral_tone_with_five=True,
        tone_sandhi=True,
        errors=lambda chars: chars.translate(_ZH_PUNCT),
    )
    spoken = " ".join(s.strip() for s in syllables if s.strip())
    return re.sub(r"\s+([,.!?])", r"\1", spoken)


def parse_wav(data: bytes) -> AudioClip:
    """espeak-ng's --stdout WAV (16-bit PCM, mono; size fields unset because stdout cannot seek)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SpeechSynthesisError(f"espeak-ng did not return a WAV (got {len(data)} bytes starting {data[:8]!r})")
    pos, rate, channels, bits = 12, 0, 0, 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            _fmt, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", data[body : body + 16])
        elif chunk_id == b"data":
            if bits != 16 or channels < 1:
                raise SpeechSynthesisError(f"espeak-ng WAV is {bits}-bit with {channels} channels; expected 16-bit")
            # The size field is a placeholder when espeak writes to a pipe: the samples run to the end.
            pcm = data[body:]
            pcm = pcm[: len(pcm) - len(pcm) % (2 * channels)]
            samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).mean(axis=1) / 32768.0
            return AudioClip(samples.astype(np.float32), rate)
        pos = body + size + (size & 1)
    raise SpeechSynthesisError("espeak-ng WAV has no data chunk")


def find_espeak(command: str) -> str | None:
    """The espeak-ng executable for tts.espeak.command, or None when it is not installed."""
    return shutil.which(command)


def installed_voices(executable: str) -> set[str]:
    """Lower-cased names espeak-ng's -v accepts (languages and voice files); empty when it cannot list them."""
    try:
        listing = subprocess.run([executable, "--voices"], capture_output=True, timeout=_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return set()
    names: set[str] = set()
    for line in listing.stdout.decode("utf-8", "replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            names.update({fields[1].lower(), fields[4].lower(), fields[4].rsplit("/", 1)[-1].lower()})
    return names


class EspeakSynthesizer:
    """espeak-ng behind the SpeechSynthesizer seam: one audio chunk per language run of a sentence."""

    name = "espeak"
    sample_rate = SAMPLE_RATE

    def __init__(self, settings: EspeakSettings) -> None:
        executable = find_espeak(settings.command)
        if executable is None:
            raise EspeakNotFoundError(
                f"espeak-ng not found (tts.espeak.command = {settings.command!r}). Install it with "
                f"`{INSTALL_HINT}`, or set tts.espeak.command to its path"
            )
        self.executable = executable
        self.settings = settings
        # espeak-ng quietly falls back to its default voice for a name it does not know, which would
        # read pinyin as English: check the configured voices once, up front.
        known = installed_voices(executable)
        for key, voice in (("voice_zh", settings.voice_zh), ("voice_en", settings.voice_en)):
            if known and voice.lower() not in known:
                raise ValueError(
                    f"config key tts.espeak.{key}: espeak-ng has no voice {voice!r} (see `espeak-ng --voices`)"
                )

    def _command(self, voice: str) -> list[str]:
        s = self.settings
        return [self.executable, "-v", voice, "-s", str(s.speed), "-p", str(s.pitch), "--stdout", "--stdin"]

    def render(self, run: Run) -> AudioClip:
        """One run through espeak-ng, as audio."""
        voice = self.settings.voice_zh if run.lang == "zh" else self.settings.voice_en
        text = to_pinyin(run.text) if run.lang == "zh" else run.text
        try:
            # Text goes in on stdin, so a sentence that starts with "-" is never read as an option.
            done = subprocess.run(
                self._command(voice), input=text.encode("utf-8"), capture_output=True, timeout=_TIMEOUT_S, check=False
            )
        except FileNotFoundError as exc:
            raise EspeakNotFoundError(f"espeak-ng disappeared ({self.executable}): `{INSTALL_HINT}`") from exc
        except subprocess.TimeoutExpired as exc:
            raise SpeechSynthesisError(f"espeak-ng took over {_TIMEOUT_S} s on {run.text[:40]!r}") from exc
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip()
            raise SpeechSynthesisError(f"espeak-ng failed (exit {done.returncode}, voice {voice!r}): {err}")
        clip = parse_wav(done.stdout)
        if clip.sample_rate != self.sample_rate:
            raise SpeechSynthesisError(f"espeak-ng returned {clip.sample_rate} Hz, expected {self.sample_rate} Hz")
        return clip

    def stream_tts(self, text: str) -> Iterator[AudioClip]:
        """A sentence as audio, one chunk per language run (most sentences are one run)."""
        for run in split_runs(text):
            clip = self.render(run)
            if len(clip.samples):
                yield clip
