"""Voice activity detection with silero-vad: trims silence and tells speech apart from silence and noise.

The silero-vad package carries its own model (no download). It is loaded once per process and shared;
calls are serialised because the model keeps state between audio windows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from modules.audio_types import AudioClip

VAD_RATE = 16000
INSTALL_COMMAND = "pip install silero-vad==6.2.3"

_lock = threading.Lock()


@dataclass(frozen=True)
class SpeechRegion:
    """A stretch of speech, in seconds from the start of the clip."""

    start: float
    end: float


@dataclass(frozen=True, eq=False)
class SpeechChunk:
    """A piece of a clip to recognise on its own: whole speech regions, at most ``max_chunk_s`` long."""

    clip: AudioClip
    offset: float  # where the piece starts in the original clip, in seconds


@dataclass(frozen=True, eq=False)
class VadResult:
    """Speech found in a clip: the regions, the clip trimmed to them (silence inside is kept), and the
    trimmed speech cut at pauses into chunks a recogniser takes in one go."""

    clip: AudioClip
    regions: tuple[SpeechRegion, ...]
    chunks: tuple[SpeechChunk, ...] = ()

    @property
    def speech_seconds(self) -> float:
        return sum(r.end - r.start for r in self.regions)


@cache
def _load() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in requirements.txt
        raise ImportError(f"voice activity detection needs torch: {exc}") from exc
    threads = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad
    except ImportError as exc:
        raise ImportError(f"voice activity detection (asr.vad) needs silero-vad: run `{INSTALL_COMMAND}`") from exc
    finally:
        # Importing silero_vad sets torch to one thread for the whole process; FunASR needs them back.
        torch.set_num_threads(threads)
    return load_silero_vad(onnx=True), get_speech_timestamps


class SileroVad:
    """Finds speech in 16 kHz clips; clips that hold none (silence, noise, a word fragment) give None."""

    def __init__(
        self,
        threshold: float = 0.5,
        min_speech_ms: int = 250,
        min_silence_ms: int = 300,
        pad_ms: int = 300,
        max_chunk_s: float = 25.0,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"VAD threshold must be between 0 and 1 (asr.vad_threshold), got {threshold}")
        if min_speech_ms < 0 or min_silence_ms < 0 or pad_ms < 0:
            raise ValueError("VAD durations must not be negative")
        self.threshold = threshold
        self.min_speech_ms = min_speech_ms
        self.min_silence_ms = min_silence_ms
        self.pad_ms = pad_ms
        # Whisper hears 30 s at a time and skips words across window edges; cutting at pauses avoids that.
        self.max_chunk_s = max_chunk_s

    def regions(self, clip: AudioClip) -> list[SpeechRegion]:
        """The speech regions of the clip (an empty list when there is no speech)."""
        if clip.sample_rate != VAD_RATE:
            raise ValueError(
                f"VAD needs {VAD_RATE} Hz audio (use modules.asr.audio.load_audio), got {clip.sample_rate}"
            )
        if clip.seconds * 1000 < self.min_speech_ms:
            return []  # shorter than the shortest speech we accept: a click or a word fragment
        import torch

        model, get_speech_timestamps = _load()
        audio = torch.from_numpy(np.ascontiguousarray(clip.samples, dtype=np.float32))
        with _lock, torch.inference_mode():
            stamps = get_speech_timestamps(
                audio,
                model,
                threshold=self.threshold,
                sampling_rate=VAD_RATE,
                min_speech_duration_ms=self.min_speech_ms,
                min_silence_duration_ms=self.min_silence_ms,
                speech_pad_ms=0,
            )
        return [SpeechRegion(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in stamps]

    def trim(self, clip: AudioClip) -> VadResult | None:
        """The clip cut to its speech plus a little padding, or None when it holds no speech."""
        found = self.regions(clip)
        if not found:
            return None
        start, end = self._span(clip, found[0], found[-1])
        chunks = tuple(
            SpeechChunk(AudioClip(clip.samples[a:b], clip.sample_rate), a / clip.sample_rate)
            for a, b in (self._span(clip, group[0], group[-1]) for group in self._groups(found))
        )
        return VadResult(AudioClip(clip.samples[start:end], clip.sample_rate), tuple(found), chunks)

    def _span(self, clip: AudioClip, first: SpeechRegion, last: SpeechRegion) -> tuple[int, int]:
        pad = self.pad_ms / 1000
        start = max(0, int((first.start - pad) * clip.sample_rate))
        return start, min(len(clip.samples), int((last.end + pad) * clip.sample_rate))

    def _groups(self, regions: list[SpeechRegion]) -> list[list[SpeechRegion]]:
        """Consecutive regions joined while the group stays within max_chunk_s (a longer region stands alone)."""
        groups: list[list[SpeechRegion]] = [[regions[0]]]
        for region in regions[1:]:
            if region.end - groups[-1][0].start <= self.max_chunk_s:
                groups[-1].append(region)
            else:
                groups.append([region])
        return groups


WINDOW = 512  # samples per silero window at 16 kHz (32 ms)


class StreamingVad:
    """Speech probability of live audio, a 32 ms window at a time; one per stream (the model keeps state)."""

    def __init__(self) -> None:
        _load()  # imports silero-vad (with the thread fix) or raises naming the install command
        from silero_vad import load_silero_vad

        self._model = load_silero_vad(onnx=True)

    def probability(self, window: np.ndarray) -> float:
        """The probability that this 512-sample (16 kHz) window is speech."""
        import torch

        if window.shape != (WINDOW,):
            raise ValueError(f"a VAD window is {WINDOW} samples at {VAD_RATE} Hz, got shape {window.shape}")
        with torch.inference_mode():
            return float(self._model(torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32)), VAD_RATE))

    def reset(self) -> None:
        self._model.reset_states()
