"""Hands-free conversation mode: end of speech → first audio, and barge-in onset → voice stopped.

    .venv/bin/python bench/bench_conversation.py [--runs 1] [--json]

Runs in-process on the shipped knowledge base, the extractive answerer, the espeak voice and the dev
Whisper-base (WULEWULE_DEV_WHISPER; `eval "$(../shared/dev-models/fetch)"`), as `python -m app` does in
conversation mode. The spoken fixtures are played into a ``Conversation`` in 100 ms frames at real time
(as the browser streams them), with silence before and after:

- "end of speech → first audio": from the moment the player's last word was played in to the first
  chunk of the spoken answer. It includes the end-of-turn pause (asr.conversation.pause_ms), the
  recognition of what was left (phrases closed earlier were recognised while the player spoke),
  retrieval, the answer and the synthesis of its first sentence. The network hop to the browser
  (loopback) is not in it.
- "barge-in": an answer is being spoken; the player starts a new question. From the first sample of
  their speech to the moment the answer's turn is closed (text and voice stopped server-side). In the
  browser the voice element is paused by the same event.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from app.companion import Companion
from app.config import load_settings
from app.conversation import Conversation, Interrupt, TurnReady
from app.evaluation import percentile
from app.events import SpeechChunk
from modules.asr.audio import load_audio
from modules.asr.vad import SileroVad
from modules.audio_types import AudioClip

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO.parent / "shared" / "testdata" / "speech"
FRAME_S = 0.1
RATE = 16000


def speech_span(clip: np.ndarray) -> tuple[float, float]:
    """Where the fixture's speech starts and ends (its files carry a little silence at both ends)."""
    regions = SileroVad().regions(AudioClip(clip, RATE))
    return regions[0].start, regions[-1].end


def frames(audio: np.ndarray) -> list[np.ndarray]:
    step = int(RATE * FRAME_S)
    return [audio[i : i + step] for i in range(0, len(audio), step)]


def play(conversation: Conversation, audio: np.ndarray, until: type, speech_at: float) -> tuple[float, object]:
    """Feed frames at real time until an action of type ``until``; (wall time the speech boundary was
    spoken, the action). ``speech_at``: the boundary's position in the audio, seconds.

    Frame k holds the audio from k to k+1 frame lengths and is fed at k frame lengths from the start: so
    the sound at audio time t reached the microphone at start + t - one frame, as in a browser that sends
    each frame the moment it is complete."""
    start = time.perf_counter()
    for k, frame in enumerate(frames(audio)):
        time.sleep(max(0.0, start + k * FRAME_S - time.perf_counter()))
        for action in conversation.hear(RATE, frame):
            if isinstance(action, until):
                return start + speech_at - FRAME_S, action
    raise RuntimeError(f"no {until.__name__} in the audio")


def end_of_speech_to_audio(companion: Companion, conversation: Conversation, clip: np.ndarray) -> float:
    audio = np.concatenate([np.zeros(int(0.5 * RATE), np.float32), clip, np.zeros(int(2.0 * RATE), np.float32)])
    spoken_end, ready = play(conversation, audio, TurnReady, 0.5 + speech_span(clip)[1])
    assert isinstance(ready, TurnReady)
    heard = conversation.take(ready.token)
    for event in companion.turn(transcript=heard.transcript, speak=True):
        if isinstance(event, SpeechChunk):
            return time.perf_counter() - spoken_end
    raise RuntimeError("no spoken answer")


def barge_in(companion: Companion, conversation: Conversation, clip: np.ndarray) -> float:
    """Seconds from the player's first sample of speech to the spoken answer being stopped."""
    interrupted = conversation.answering()
    turn = companion.turn(text="黑熊精在哪里打？怎么打？", speak=True)
    playing = threading.Event()

    def speak() -> None:
        for event in turn:
            if isinstance(event, SpeechChunk):
                conversation.played(event.clip.seconds)
                playing.set()
            if interrupted.is_set():
                return

    voice = threading.Thread(target=speak, daemon=True)
    voice.start()
    playing.wait(30)
    audio = np.concatenate([np.zeros(int(0.5 * RATE), np.float32), clip])
    onset, _ = play(conversation, audio, Interrupt, 0.5 + speech_span(clip)[0])
    voice.join(10)
    turn.close()  # what gradio's cancel does to the answer's event
    stopped = time.perf_counter()
    conversation.done()
    conversation.detector.reset()
    return stopped - onset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="passes over the fixtures")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    whisper = os.environ.get("WULEWULE_DEV_WHISPER")
    if not whisper:
        parser.error('WULEWULE_DEV_WHISPER is unset: eval "$(../shared/dev-models/fetch)"')
    manifest = [json.loads(line) for line in (SPEECH / "manifest.jsonl").read_text().splitlines() if line.strip()]
    questions = [m for m in manifest if m.get("kind") == "question"]
    with tempfile.TemporaryDirectory() as tmp:
        sets = [
            f"app.data_dir={tmp}",
            "asr.backend=whisper",
            f"asr.whisper.model={whisper}",
            "tts.backend=espeak",
            "rag.embedding.backend=none",
        ]
        settings = load_settings(None, sets)
        companion = Companion(settings)
        companion.chat.warm_up()
        companion.recognizer.warm_up()
        conversation = Conversation(settings.asr, companion.recognizer)
        first_audio, barge = [], []
        for _ in range(args.runs):
            for item in questions:
                clip = load_audio(SPEECH / item["file"], 60).samples
                first_audio.append(end_of_speech_to_audio(companion, conversation, clip))
                barge.append(barge_in(companion, conversation, clip))
        conversation.close()
    pause = settings.asr.conversation.pause_ms
    rows = [
        ("end of speech → first audio (incl. the pause)", first_audio),
        ("barge-in: speech onset → voice stopped", barge),
    ]
    if args.json:
        print(json.dumps({name: {"p50": percentile(v, 50), "p90": percentile(v, 90), "n": len(v)} for name, v in rows}))
        return 0
    print(f"conversation mode, {len(questions)} spoken questions × {args.runs}, pause_ms={pause:g}, frames of 100 ms")
    print(f"{'measure':<48}{'p50 s':>8}{'p90 s':>8}{'n':>5}")
    for name, values in rows:
        print(f"{name:<48}{percentile(values, 50):>8.3f}{percentile(values, 90):>8.3f}{len(values):>5}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
