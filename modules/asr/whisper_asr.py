"""faster-whisper (CTranslate2) speech recognition: English and Chinese, CPU laptops and GPUs.

Chinese names come out badly without help (黑熊精 -> 黑雄金), so for Chinese speech Whisper gets an
initial prompt that names the game and its most mentioned entities. The prompt is not used for English:
a Chinese prompt makes Whisper answer English speech in Chinese, or with the prompt itself. Whisper's own
VAD is off (the pipeline trims with silero-vad first), and segments that merely repeat the prompt, as
Whisper does on silence, are dropped.

Cost on a CPU (``asr.whisper``, measured with ``bench/bench_asr.py --sweep``): the encoder reads a 30 s
window whatever the question's length and is about two thirds of the time; the padding after the clip is
given to it as silence, as Whisper was trained (faster-whisper pads with zeros, which hears worse).
Decoding is beam 2 (as accurate as 5 on the fixtures, cheaper), text tokens only, no carried-over text.
``window_s`` shortens the encoder's window: much faster, but Whisper-base then mishears more names.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modules.asr.base import RecognitionError, TranscriptSegment
from modules.asr.chinese import han_count, to_simplified
from modules.asr.hotwords import spoken_form, word_frequency
from modules.audio_types import AudioClip

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from modules.asr.settings import WhisperSettings

log = logging.getLogger(__name__)

INSTALL_COMMAND = "pip install faster-whisper==1.2.1"
WHISPER_RATE = 16000
PROMPT_HEAD = "以下是关于游戏《黑神话：悟空》的问题，可能提到："
# Whisper keeps at most 223 tokens of prompt (half its 448-token context); stay under with a margin.
PROMPT_TOKEN_BUDGET = 210
FULL_WINDOW_S = 30  # Whisper's own window: faster-whisper pads every clip to 30 s for the encoder
WINDOW_MARGIN_S = 1.0  # silence after the clip's last sound that a shortened window still holds
FRAMES_PER_S = 100  # Whisper's mel frames per second of audio
MAX_NEW_TOKENS = 220
# Whisper's own filter needs both signals; alone, each separates the fixtures' silence, noise and word fragment
# (no-speech probability 0.59-0.74) from their questions (at most 0.02).
NO_SPEECH_PROB = 0.5
MIN_AVG_LOGPROB = -2.0  # Whisper's 448-token window minus the prompt
PROMPT_KNOWN_FREQ = 100  # names this common in everyday Chinese (jieba's count) need no place in the prompt
# Phrases only the prompt says: a transcript holding one is the prompt echoed, not speech.
_ECHO_MARKERS = ("以下是关于", "可能提到")
_ECHO_FILLERS = frozenset("的和与")
_HEAD_END = "可能提到："
_NOT_SPOKEN = re.compile(r"[\W_]+", re.UNICODE)
LANGUAGES = ("zh", "en")


def normalize_for_echo(text: str) -> str:
    """Simplified, lower-case text with punctuation and spaces removed (for comparing with the prompt)."""
    return _NOT_SPOKEN.sub("", unicodedata.normalize("NFKC", to_simplified(text)).lower())


def prompt_pieces(prompt: str) -> tuple[set[str], set[str]]:
    """(framing pieces, names) of a prompt built by ``build_prompt``, normalised for comparison."""
    head, _, names = prompt.partition(_HEAD_END)
    framing = {normalize_for_echo(p) for p in re.split(r"[，。、：《》\s]+", head)} | {"黑神话悟空", "黑神话", "悟空"}
    return {p for p in framing if p}, {normalize_for_echo(n) for n in names.split("、") if normalize_for_echo(n)}


def is_prompt_echo(text: str, prompt: str | None) -> bool:
    """True when a segment only repeats the initial prompt, as Whisper does on silence and noise.

    The segment is read as a run of prompt pieces (its framing words, the game's name, the names it lists),
    with at most a 的 between them. It is an echo when nothing else is left and it used the framing, or
    two or more names: a player who says just one name ("黄眉") is heard, not filtered.
    """
    if not prompt:
        return False
    heard = normalize_for_echo(text)
    if not heard:
        return False
    if any(marker in heard for marker in _ECHO_MARKERS):
        return True
    framing, names = prompt_pieces(prompt)
    pieces = sorted(framing | names, key=len, reverse=True)
    used_framing, used_names, pos = False, 0, 0
    while pos < len(heard):
        piece = next((p for p in pieces if heard.startswith(p, pos)), None)
        if piece is None:
            if heard[pos] in _ECHO_FILLERS:
                pos += 1
                continue
            return False
        used_framing = used_framing or piece in framing
        used_names += piece in names
        pos += len(piece)
    return used_framing or used_names >= 2


def build_prompt(
    names: Sequence[str], count_tokens: Callable[[str], int], head: str = PROMPT_HEAD, budget: int = PROMPT_TOKEN_BUDGET
) -> str:
    """The head followed by as many names as fit the token budget, in the order given (most important first).

    The budget goes to names Whisper cannot know. Words in everyday use (唐僧, 葫芦, 土地) are skipped:
    Whisper writes them right without help. So are names that add little to one already chosen: one
    inside another (黄眉 / 黄眉大王) or one character apart (第一回 / 第二回).
    """
    spoken_head = normalize_for_echo(head)
    chosen: list[str] = []
    for name in names:
        form = spoken_form(name)
        if form is None or form in spoken_head or word_frequency(form) >= PROMPT_KNOWN_FREQ:
            continue
        if any(_near(form, c) for c in chosen):
            continue
        if count_tokens(head + "、".join([*chosen, form]) + "。") > budget:
            if count_tokens(head + "、".join(chosen) + "。") >= budget - 2:
                break  # not even the shortest name fits any more
            continue
        chosen.append(form)
    if chosen:
        return head + "、".join(chosen) + "。"
    return head.removesuffix(_HEAD_END).rstrip("，：:") + "。"


def _near(a: str, b: str) -> bool:
    """One name inside the other, or the same length with one character different."""
    if a in b or b in a:
        return True
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def max_new_tokens(seconds: float) -> int:
    """A generous ceiling on tokens for this much speech (fast Chinese is about 7 tokens a second)."""
    return int(min(MAX_NEW_TOKENS, 24 + 10 * seconds))


def window_frames(seconds: float, window_s: float) -> int:
    """Mel frames the encoder reads for a clip this long: the clip plus a margin, at least ``window_s``.

    The encoder's cost grows faster than its input (Whisper-base, 2 cores: about 0.75 s for 30 s, 0.19 s for
    15 s, 0.11 s for 10 s), but Whisper was trained on 30 s windows and hears worse in shorter ones (CER on
    the fixtures 0.061 -> 0.086-0.106, bench/README.md). ``window_s`` 30 keeps Whisper's own window.
    """
    if window_s >= FULL_WINDOW_S:
        return FULL_WINDOW_S * FRAMES_PER_S
    seconds = min(FULL_WINDOW_S, max(window_s, seconds + WINDOW_MARGIN_S))
    frames = math.ceil(seconds * FRAMES_PER_S)
    return frames + frames % 2  # the encoder's convolution halves the frames


def silence_padded(features: np.ndarray, content: int) -> np.ndarray:
    """Features whose frames after ``content`` read as silence, as Whisper was trained, not as zeros.

    faster-whisper pads the log-mel features with 0, a middling level on Whisper's scale; OpenAI's Whisper pads
    the audio with zeros, so its padding reads as the quietest level the clip's scale allows: the loudest
    log-mel value less 8, and never below log10(1e-10), normalised as (x + 4) / 4. Measured on the fixtures
    (beam 2): CER after correction 0.071 with zeros, 0.061 with silence, at the same cost.
    """
    floor = max(float(features[..., :content].max()) - 2.0, -1.5)
    padded = np.array(features, dtype=np.float32, copy=True)
    padded[..., content:] = floor
    return padded


def resolve_device(device: str) -> str:
    """auto -> cuda when CTranslate2 sees a GPU, else cpu."""
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:  # a broken CUDA setup means CPU, not a crash
        return "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """default -> int8 on CPU, float16 on GPU."""
    if compute_type != "default":
        return compute_type
    return "int8" if device == "cpu" else "float16"


def check_model_dir(path: Path, key: str = "asr.whisper.model") -> None:
    """A clear error for a directory that is not a CTranslate2 Whisper model."""
    missing = [name for name in ("model.bin", "config.json") if not (path / name).is_file()]
    if missing:
        raise RecognitionError(
            f"{key}: {path} is not a faster-whisper (CTranslate2) model: {', '.join(missing)} missing. "
            "Use a converted model such as Systran/faster-whisper-base (`python -m app download asr-cpu`) "
            "or convert one with `ct2-transformers-converter --model openai/whisper-base --output_dir DIR`"
        )
    if not (path / "tokenizer.json").is_file():
        raise RecognitionError(f"{key}: {path} has no tokenizer.json; copy it from the original Whisper model")


def content_frames(features: np.ndarray) -> int:
    """Frames before faster-whisper's padding (all 80 values exactly 0, which no sound gives)."""
    sounding = np.flatnonzero(np.any(features.reshape(-1, features.shape[-1]) != 0, axis=0))
    return int(sounding[-1]) + 1 if sounding.size else 0


def _window_caching(base: type[WhisperModel], window_s: float, pad_silence: bool = True) -> type[WhisperModel]:
    """WhisperModel whose encoder hears silence after the clip, in a window of ``window_s``, once per window.

    faster-whisper hands the encoder 30 s of features: the clip, then zeros. This model fills the padding
    with the clip's silence level (``silence_padded``) and, with ``window_s`` under 30, cuts the window to
    the clip plus a margin (``window_frames``). Language detection and decoding each run the encoder on the
    same window, and the encoder is most of the cost of a short question; with the output kept,
    ``language: auto`` costs one encoder pass, not two. ``encoder_seconds`` adds up the encoder's wall time.
    """

    class WindowCachingWhisperModel(base):
        _last_window: tuple[bytes, Any] | None = None
        encoder_seconds = 0.0

        def encode(self, features: np.ndarray) -> Any:
            content = content_frames(features)
            features = features[..., : window_frames(content / FRAMES_PER_S, window_s)]
            if pad_silence and 0 < content < features.shape[-1]:
                features = silence_padded(features, content)
            key = hashlib.blake2b(np.ascontiguousarray(features).tobytes(), digest_size=16).digest()
            if self._last_window is not None and self._last_window[0] == key:
                return self._last_window[1]
            started = time.perf_counter()
            output = super().encode(features)
            self.encoder_seconds += time.perf_counter() - started
            self._last_window = (key, output)
            return output

    return WindowCachingWhisperModel


class WhisperRecognizer:
    """Speech -> text with a faster-whisper model directory; load once, call from any thread."""

    name = "whisper"

    def __init__(
        self,
        model_dir: Path,
        names: Sequence[str] = (),
        *,
        language: str = "auto",
        device: str = "auto",
        compute_type: str = "default",
        beam_size: int = 2,
        cpu_threads: int = 0,
        use_prompt: bool = True,
        prompt_tokens: int = PROMPT_TOKEN_BUDGET,
        without_timestamps: bool = True,
        window_s: float = FULL_WINDOW_S,
        pad_silence: bool = True,
    ) -> None:
        """Load the model; ``names`` (most important first) feed the Chinese prompt.

        ``prompt_tokens``: the prompt's token budget. ``without_timestamps``: decode text tokens only.
        ``window_s``: the shortest encoder window (``window_frames``); 30 = Whisper's own. ``pad_silence``
        False keeps faster-whisper's zero padding (for comparison in bench/bench_asr.py).
        """
        if language not in ("auto", *LANGUAGES):
            raise ValueError(f"asr.language must be auto, zh or en (got {language!r})")
        if beam_size < 1:
            raise ValueError(f"asr.whisper.beam_size must be at least 1 (got {beam_size})")
        if cpu_threads < 0:
            raise ValueError(f"asr.whisper.cpu_threads must be 0 (all cores) or more (got {cpu_threads})")
        if not 0 <= prompt_tokens <= PROMPT_TOKEN_BUDGET:
            raise ValueError(f"asr.whisper.prompt_tokens must be 0 to {PROMPT_TOKEN_BUDGET} (got {prompt_tokens})")
        if not 0 < window_s <= FULL_WINDOW_S:
            raise ValueError(f"asr.whisper.window_s must be above 0 and at most {FULL_WINDOW_S} (got {window_s})")
        check_model_dir(model_dir)
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ImportError(f"asr.backend whisper needs faster-whisper: run `{INSTALL_COMMAND}`") from exc
        self.model_dir = model_dir
        self.language = language
        self.device = resolve_device(device)
        self.compute_type = resolve_compute_type(compute_type, self.device)
        self.beam_size = beam_size
        self.without_timestamps = without_timestamps
        self.window_s = window_s
        model_class = _window_caching(WhisperModel, window_s, pad_silence)
        try:
            self._model: WhisperModel = model_class(
                str(model_dir), device=self.device, compute_type=self.compute_type, cpu_threads=cpu_threads
            )
        except (RuntimeError, ValueError, OSError) as exc:
            if device != "auto" or self.device == "cpu":
                raise RecognitionError(
                    f"asr.whisper.model: cannot load {model_dir} on {self.device} ({self.compute_type}): {exc}. "
                    "On a machine without a working CUDA setup use --set asr.whisper.device=cpu"
                ) from exc
            # device auto found a GPU that CTranslate2 cannot use (CUDA libraries missing): the CPU still works.
            log.warning("whisper: cannot use %s (%s); falling back to the CPU", self.device, exc)
            self.device, self.compute_type = "cpu", resolve_compute_type(compute_type, "cpu")
            self._model = model_class(
                str(model_dir), device="cpu", compute_type=self.compute_type, cpu_threads=cpu_threads
            )
        self.prompt = build_prompt(names, self._count_tokens, budget=prompt_tokens) if use_prompt else None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: WhisperSettings, model_dir: Path, names: Sequence[str], language: str
    ) -> WhisperRecognizer:
        """Build from the ``asr.whisper`` config section."""
        return cls(
            model_dir,
            names,
            language=language,
            device=settings.device,
            compute_type=settings.compute_type,
            beam_size=settings.beam_size,
            cpu_threads=settings.cpu_threads,
            use_prompt=settings.prompt,
            prompt_tokens=settings.prompt_tokens,
            without_timestamps=settings.without_timestamps,
            window_s=settings.window_s,
        )

    @property
    def encoder_seconds(self) -> float:
        """Wall seconds spent in Whisper's encoder since loading (benchmarks split the cost with it)."""
        return float(getattr(self._model, "encoder_seconds", 0.0))

    def _count_tokens(self, text: str) -> int:
        return len(self._model.hf_tokenizer.encode(" " + text, add_special_tokens=False).ids)

    def detect_language(self, audio: AudioClip) -> str:
        """zh or en, whichever Whisper finds more likely (players speak one of the two)."""
        # The same frames decoding will use (it drops the last one), so the encoder output is reused.
        features = self._model.feature_extractor(audio.samples)
        _, _, all_probs = self._model.detect_language(features=features[..., : features.shape[-1] - 1])
        probs = dict(all_probs)
        return max(LANGUAGES, key=lambda lang: probs.get(lang, 0.0))

    def segments(self, audio: AudioClip) -> Iterator[TranscriptSegment]:
        """Recognised segments of a 16 kHz clip, simplified Chinese for Chinese speech, prompt echoes dropped."""
        if audio.sample_rate != WHISPER_RATE:
            raise ValueError(f"whisper needs {WHISPER_RATE} Hz audio (use modules.asr.audio.load_audio)")
        with self._lock:  # CTranslate2 models are not safe to share between concurrent calls
            results = self._transcribe(audio)
        yield from results

    def _transcribe(self, audio: AudioClip) -> list[TranscriptSegment]:
        import ctranslate2

        language = self.language if self.language != "auto" else self.detect_language(audio)
        prompt = self.prompt if language == "zh" else None
        # Temperature fallback samples; a fixed seed makes the same audio give the same text.
        ctranslate2.set_random_seed(0)
        try:
            found, _ = self._model.transcribe(
                audio.samples,
                language=language,
                beam_size=self.beam_size,
                initial_prompt=prompt,
                # A question is one segment: no timestamp tokens to decode.
                without_timestamps=self.without_timestamps,
                # The pipeline trimmed and cut the clip with silero-vad already.
                vad_filter=False,
                # Each question stands alone; carrying text forward is how long audio falls into loops.
                condition_on_previous_text=False,
                # Speech is at most a few tokens a second: a cap stops a hallucination loop early.
                max_new_tokens=max_new_tokens(audio.seconds),
                # Heard as silence at temperature 0: stop there rather than sample five more guesses.
                no_speech_threshold=NO_SPEECH_PROB,
            )
            raw = list(found)
        except RuntimeError as exc:
            raise RecognitionError(f"whisper failed on a {audio.seconds:.1f} s clip: {exc}") from exc
        segments = []
        for seg in raw:
            text = seg.text.strip()
            if language == "zh" or han_count(text):
                text = to_simplified(text)
            if not text:
                continue
            if seg.no_speech_prob >= NO_SPEECH_PROB or seg.avg_logprob < MIN_AVG_LOGPROB:
                # Whisper writes something for any sound; on silence and noise it is sure there is no speech.
                log.info("whisper: dropped a segment heard as no speech (p=%.2f): %r", seg.no_speech_prob, text)
                continue
            if is_prompt_echo(text, prompt):
                log.info("whisper: dropped a segment that repeats the prompt: %r", text)
                continue
            segments.append(TranscriptSegment(text, float(seg.start), float(seg.end), language))
        return segments
