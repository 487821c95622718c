"""The one audio front end: a file, bytes or a Gradio ``(rate, array)`` pair -> 16 kHz mono float32.

WAV, FLAC, OGG/Vorbis and AIFF are read with soundfile. Everything else (MP3, WebM and Ogg-Opus from
browsers, M4A from phones) goes through the ffmpeg command when it is installed; without ffmpeg WAV
still works and other formats get a message saying how to install it. Limits are checked before any
decoding work that could be large: the byte size first, then the duration from the header (soundfile)
or from a decode that stops just past the limit (ffmpeg).
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from modules.audio_types import AudioClip

TARGET_RATE = 16000
# Formats libsndfile reads the same everywhere; its MP3/Opus support depends on how it was built.
SOUNDFILE_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "FLAC", "AIFF", "AU", "CAF"})
SOUNDFILE_OGG_SUBTYPES = frozenset({"VORBIS"})
FFMPEG_INSTALL = "`sudo apt install ffmpeg` (Debian/Ubuntu) or `brew install ffmpeg` (macOS)"
FFMPEG_TIMEOUT_S = 60.0

# Magic bytes of containers ffmpeg reads and soundfile is not asked to: they are audio, just not WAV.
_KNOWN_CONTAINERS: tuple[tuple[bytes, int, str], ...] = (
    (b"ID3", 0, "MP3"),
    (b"\x1a\x45\xdf\xa3", 0, "WebM/Matroska"),
    (b"OggS", 0, "Ogg"),
    (b"ftyp", 4, "MP4/M4A"),
    (b"#!AMR", 0, "AMR"),
    (b"fLaC", 0, "FLAC"),
    (b"RIFF", 0, "WAV"),
)

_CHINESE_SUMMARIES = {
    "not_found": "找不到这个音频文件",
    "empty": "录音是空的",
    "too_large": "音频文件太大",
    "too_long": "录音太长了",
    "corrupt": "这段音频无法读取",
    "unsupported": "不支持这种音频",
    "no_ffmpeg": "读取这种格式需要先安装 ffmpeg",
}

AudioSource = str | os.PathLike[str] | bytes | bytearray | tuple[int, np.ndarray] | AudioClip


class AudioError(ValueError):
    """Audio that cannot be used, with a ``code`` for programs and a message for people.

    Codes: ``not_found``, ``empty``, ``too_large``, ``too_long``, ``corrupt``, ``unsupported``,
    ``no_ffmpeg`` (and ``no_speech`` from the recogniser pipeline).
    """

    def __init__(self, code: str, message: str) -> None:
        # Players read these in a Chinese app; the English part names the exact problem and the fix.
        summary = _CHINESE_SUMMARIES.get(code)
        text = f"{summary} — {message}" if summary else message
        super().__init__(text)
        self.code = code
        self.message = text


def load_audio(source: AudioSource, max_seconds: float, max_bytes: int | None = None) -> AudioClip:
    """Decode any supported source into 16 kHz mono float32; raises AudioError naming the problem."""
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive (got {max_seconds})")
    if isinstance(source, AudioClip):
        return _finish(source.samples, source.sample_rate, max_seconds)
    if isinstance(source, tuple):
        rate, samples = _unpack_pair(source)
        return _finish(samples, rate, max_seconds)
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        _check_size(len(data), max_bytes, "the audio")
        return _decode(data, None, max_seconds)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            what = "is a folder, not an audio file" if path.is_dir() else "does not exist"
            raise AudioError("not_found", f"audio file {path} {what}")
        _check_size(path.stat().st_size, max_bytes, f"audio file {path.name}")
        return _decode(None, path, max_seconds)
    raise AudioError(
        "unsupported",
        f"cannot read audio from a {type(source).__name__}: give a file path, bytes, or a (sample_rate, samples) pair",
    )


def _check_size(size: int, max_bytes: int | None, what: str) -> None:
    if size == 0:
        raise AudioError("empty", f"{what} is empty (0 bytes) — nothing was recorded")
    if max_bytes is not None and size > max_bytes:
        raise AudioError(
            "too_large",
            f"{what} is {size / 1_048_576:.1f} MB, over the {max_bytes / 1_048_576:.0f} MB upload limit "
            "(asr.max_upload_mb); please send a shorter recording",
        )


def _too_long(seconds: float | None, max_seconds: float) -> AudioError:
    lasts = f" (it lasts {seconds:.1f} s)" if seconds is not None else ""
    return AudioError(
        "too_long",
        f"the recording is longer than the {max_seconds:g} s limit{lasts} (asr.max_seconds); "
        "please ask one question at a time",
    )


def _unpack_pair(pair: tuple[Any, ...]) -> tuple[int, np.ndarray]:
    if len(pair) != 2:
        raise AudioError("unsupported", f"expected a (sample_rate, samples) pair, got a tuple of {len(pair)} items")
    rate, samples = pair
    if isinstance(rate, np.ndarray) and isinstance(samples, int | np.integer):
        rate, samples = samples, rate  # tolerate (samples, rate), the order soundfile.read returns
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or int(rate) <= 0:
        raise AudioError("unsupported", f"the sample rate must be a positive integer, got {rate!r}")
    if samples is None:
        raise AudioError("empty", "no audio was recorded")
    array = np.asarray(samples)
    if array.dtype.kind not in "iuf":
        raise AudioError("unsupported", f"audio samples must be numbers, got an array of {array.dtype}")
    return int(rate), array


def _frames_first(samples: np.ndarray) -> np.ndarray:
    """A (frames,) or (frames, channels) view; a (channels, frames) array has few rows and many columns."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioError(
            "unsupported", f"audio must be 1-D (mono) or 2-D (frames x channels), got shape {samples.shape}"
        )
    rows, cols = samples.shape
    return samples.T if rows <= 8 < cols else samples


def _to_float_mono(samples: np.ndarray) -> np.ndarray:
    """Integer PCM scaled to [-1, 1]; channels averaged to one."""
    if samples.dtype.kind == "u":
        middle = (int(np.iinfo(samples.dtype).max) + 1) / 2
        audio = (samples.astype(np.float64) - middle) / middle
    elif samples.dtype.kind == "i":
        audio = samples.astype(np.float64) / -float(np.iinfo(samples.dtype).min)
    else:
        audio = samples.astype(np.float64)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == TARGET_RATE:
        return audio
    from scipy.signal import resample_poly

    divisor = gcd(rate, TARGET_RATE)
    return resample_poly(audio, TARGET_RATE // divisor, rate // divisor)


def frame_16k(rate: int, samples: np.ndarray) -> np.ndarray:
    """One frame of live microphone audio (any rate, int or float, mono or not) as 16 kHz mono float32.

    For streamed audio, where each frame arrives on its own and length limits are the caller's business.
    """
    rate, array = _unpack_pair((rate, samples))
    array = _frames_first(array)
    if array.size == 0:
        return np.zeros(0, np.float32)
    audio = _resample(_to_float_mono(array), rate)
    return np.clip(np.nan_to_num(audio), -1.0, 1.0).astype(np.float32)


def _finish(samples: np.ndarray, rate: int, max_seconds: float) -> AudioClip:
    """Check length and values, then convert to the one format every later stage takes."""
    samples = _frames_first(samples)
    frames = samples.shape[0]
    if frames == 0 or samples.size == 0:
        raise AudioError("empty", "the recording is empty — nothing was recorded")
    seconds = frames / rate
    if seconds > max_seconds:
        raise _too_long(seconds, max_seconds)
    audio = _to_float_mono(samples)
    if not np.isfinite(audio).all():
        raise AudioError("corrupt", "the audio holds invalid sample values (NaN or infinity)")
    audio = _resample(audio, rate)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        # Float audio in integer scale (or clipped resampling overshoot): bring it back into [-1, 1].
        audio = audio / peak if peak > 1.5 else np.clip(audio, -1.0, 1.0)
    return AudioClip(audio.astype(np.float32), TARGET_RATE)


def _decode(data: bytes | None, path: Path | None, max_seconds: float) -> AudioClip:
    decoded = _decode_with_soundfile(data, path, max_seconds)
    if decoded is not None:
        return decoded
    head = data[:16] if data is not None else _read_head(path)
    if shutil.which("ffmpeg") is None:
        container = _sniff(head)
        name = f"audio file {path.name}" if path is not None else "the audio"
        if container is None:
            raise AudioError(
                "corrupt",
                f"{name} is not audio we can read (not WAV, FLAC or OGG, and no known audio header); "
                "it may be damaged or not a recording",
            )
        raise AudioError(
            "no_ffmpeg",
            f"{name} looks like {container}, which needs ffmpeg to decode; install it with {FFMPEG_INSTALL}, "
            "or send WAV/FLAC/OGG",
        )
    return _decode_with_ffmpeg(data, path, max_seconds)


def _read_head(path: Path | None) -> bytes:
    if path is None:
        return b""
    with path.open("rb") as f:
        return f.read(16)


def _sniff(head: bytes) -> str | None:
    for magic, offset, name in _KNOWN_CONTAINERS:
        if head[offset : offset + len(magic)] == magic:
            return name
    # An MPEG audio frame starts with 11 set bits (an MP3 with no ID3 tag).
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3"
    return None


def _decode_with_soundfile(data: bytes | None, path: Path | None, max_seconds: float) -> AudioClip | None:
    """The clip, or None when soundfile should not (or cannot) read this format."""
    import soundfile as sf

    target: Any = io.BytesIO(data) if data is not None else str(path)
    try:
        info = sf.info(target)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    ok = info.format in SOUNDFILE_FORMATS or (info.format == "OGG" and info.subtype in SOUNDFILE_OGG_SUBTYPES)
    if not ok:
        return None
    if info.samplerate <= 0:
        raise AudioError("corrupt", f"the audio header gives an impossible sample rate ({info.samplerate})")
    if info.frames <= 0:
        raise AudioError("empty", "the recording holds no audio samples")
    seconds = info.frames / info.samplerate
    if seconds > max_seconds:
        raise _too_long(seconds, max_seconds)  # refused from the header: nothing decoded
    if isinstance(target, io.BytesIO):
        target.seek(0)
    try:
        samples, rate = sf.read(target, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError("corrupt", f"the {info.format} audio is damaged and cannot be decoded ({exc})") from None
    return _finish(samples, int(rate), max_seconds)


def _decode_with_ffmpeg(data: bytes | None, path: Path | None, max_seconds: float) -> AudioClip:
    # Decode at most a little past the limit: a 2-hour upload costs no more than a max_seconds one.
    limit = max_seconds + 0.5
    command = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
        "-i", "pipe:0" if data is not None else str(path),
        "-t", f"{limit:.3f}", "-vn", "-ac", "1", "-ar", str(TARGET_RATE), "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(
            "corrupt", f"ffmpeg took over {FFMPEG_TIMEOUT_S:g} s to decode the audio; is it damaged?"
        ) from None
    except OSError as exc:
        raise AudioError(
            "no_ffmpeg", f"ffmpeg could not be started ({exc}); install it with {FFMPEG_INSTALL}"
        ) from None
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        reason = stderr.splitlines()[-1] if stderr else f"exit status {done.returncode}"
        if "does not contain any stream" in stderr or "matches no streams" in stderr:
            raise AudioError("unsupported", f"the file has no audio track ({reason})")
        raise AudioError("corrupt", f"the audio cannot be decoded; it may be damaged or not audio (ffmpeg: {reason})")
    audio = np.frombuffer(done.stdout, dtype="<f4")
    if audio.size == 0:
        raise AudioError("empty", "the recording holds no audio samples")
    if audio.size / TARGET_RATE > max_seconds:
        raise _too_long(_probe_seconds(path), max_seconds)
    return _finish(audio.copy(), TARGET_RATE, max_seconds)


def _probe_seconds(path: Path | None) -> float | None:
    """The duration ffprobe reads from a file's header, for the message only (None when unknown)."""
    if path is None or shutil.which("ffprobe") is None:
        return None
    command = ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)]
    try:
        out = subprocess.run(command, capture_output=True, timeout=10, check=False).stdout.decode().strip()
        seconds = float(out)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    return seconds if math.isfinite(seconds) else None
