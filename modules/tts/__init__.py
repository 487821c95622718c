"""Speech out: text -> audio chunks (ChatTTS, espeak-ng), behind the SpeechSynthesizer seam."""

from modules.tts.base import SpeechSynthesizer

__all__ = ["SpeechSynthesizer"]
