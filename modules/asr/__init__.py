"""Speech in: audio -> text (FunASR, faster-whisper), behind the SpeechRecognizer seam.

The app builds one ``SpeechPipeline(settings.asr, game_vocabulary(documents), REPO_ROOT)`` and calls
``transcribe(audio)``; heavy libraries load only when a pipeline first needs them.
"""

from modules.asr.audio import AudioError, load_audio
from modules.asr.base import RecognitionError, SpeechRecognizer, Transcript, TranscriptSegment
from modules.asr.hotwords import game_vocabulary
from modules.asr.recognize import NoSpeechError, SpeechPipeline, backend_status, create_recognizer

__all__ = [
    "AudioError",
    "NoSpeechError",
    "RecognitionError",
    "SpeechPipeline",
    "SpeechRecognizer",
    "Transcript",
    "TranscriptSegment",
    "backend_status",
    "create_recognizer",
    "game_vocabulary",
    "load_audio",
]
