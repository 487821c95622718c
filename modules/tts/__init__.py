"""Speech out: text -> audio chunks (ChatTTS, espeak-ng), behind the SpeechSynthesizer seam."""

from modules.tts.base import SpeechSynthesisError, SpeechSynthesizer

__all__ = ["SpeechSynthesisError", "SpeechSynthesizer"]
