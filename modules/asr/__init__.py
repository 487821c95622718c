"""Speech in: audio -> text (FunASR, faster-whisper), behind the SpeechRecognizer seam."""

from modules.asr.base import SpeechRecognizer, Transcript, TranscriptSegment

__all__ = ["SpeechRecognizer", "Transcript", "TranscriptSegment"]
