"""FunASR on tiny random Paraformers: real loading and decoding (garbage text), hotwords, streaming, the error paths."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from modules.asr.audio import load_audio
from modules.asr.base import RecognitionError, SpeechRecognizer, TranscriptSegment
from modules.asr.funasr_asr import (
    FunasrRecognizer,
    check_chunk_size,
    locate_funasr_model,
    model_kind,
    resolve_device,
    streaming_mode,
    write_hotword_file,
)
from modules.asr.recognize import SpeechPipeline
from modules.asr.settings import AsrSettings, FunasrSettings
from modules.audio_types import AudioClip
from modules.model_files import ModelNotFoundError
from tests.modules.asr.conftest import REPO, fixture
from tests.modules.asr.tiny_paraformer_streaming import build_tiny_punc, build_tiny_streaming_paraformer


@pytest.fixture(scope="module")
def paraformer(tiny_paraformer_dir: Path, vocabulary: list[str]) -> FunasrRecognizer:
    return FunasrRecognizer(tiny_paraformer_dir, vocabulary, device="auto")


@pytest.fixture(scope="module")
def seaco(tiny_seaco_dir: Path, vocabulary: list[str]) -> FunasrRecognizer:
    return FunasrRecognizer(tiny_seaco_dir, vocabulary, device="cpu")


@pytest.fixture(scope="module")
def question() -> AudioClip:
    return load_audio(fixture("zh_01.wav"), 60)


def test_paraformer_loads_and_decodes(paraformer, question):
    assert isinstance(paraformer, SpeechRecognizer)
    assert paraformer.kind == "Paraformer" and paraformer.device == resolve_device("auto")
    segments = list(paraformer.segments(question))
    assert len(segments) <= 1
    for seg in segments:
        assert isinstance(seg, TranscriptSegment) and isinstance(seg.text, str)
        assert seg.language == "zh" and seg.end == pytest.approx(question.seconds)
        assert " " not in seg.text  # Chinese characters are joined


def test_plain_paraformer_takes_no_hotwords(paraformer):
    assert paraformer.supports_hotwords is False
    assert paraformer.hotword_file is None
    assert "hotword" not in paraformer.generate_options()


def test_seaco_paraformer_gets_the_names_as_hotwords(seaco, vocabulary, question):
    assert seaco.kind == "SeacoParaformer" and seaco.supports_hotwords
    assert seaco.hotword_file is not None and seaco.hotword_file.suffix == ".txt"
    lines = seaco.hotword_file.read_text(encoding="utf-8").splitlines()
    assert lines[0] == " ".join(vocabulary[0])  # characters space-separated, most important name first
    assert "黄 风 大 圣" in lines
    assert seaco.generate_options() == {"hotword": str(seaco.hotword_file)}
    segments = list(seaco.segments(question))  # the hotword path of SeACo runs for real
    assert all(isinstance(s.text, str) for s in segments)


def test_hotwords_off(tiny_seaco_dir, vocabulary):
    recognizer = FunasrRecognizer(tiny_seaco_dir, vocabulary, hotwords=False)
    assert recognizer.hotword_file is None and "hotword" not in recognizer.generate_options()
    recognizer.close()


def test_pipeline_on_funasr(tiny_paraformer_dir, vocabulary):
    settings = AsrSettings(
        backend="funasr", funasr=FunasrSettings(model=str(tiny_paraformer_dir), vad_model="", punc_model="")
    )
    pipeline = SpeechPipeline(settings, vocabulary, REPO)
    assert pipeline.status().backend == "funasr" and pipeline.status().ok
    heard = pipeline.transcribe(fixture("zh_08.wav"))
    assert heard.backend == "funasr" and heard.language == "zh"
    assert isinstance(heard.text, str) and heard.raw_text
    assert heard.audio_seconds == pytest.approx(2.192, abs=0.01)


def test_sensevoice_options_and_tags(paraformer):
    paraformer.kind = "SenseVoiceSmall"  # the cleaning and options depend only on the declared kind
    try:
        assert paraformer.generate_options() == {"language": "auto", "use_itn": True}
        assert paraformer._clean("<|zh|><|NEUTRAL|><|Speech|><|withitn|>黑熊精在哪。") == ("黑熊精在哪。", "zh")
        text, language = paraformer._clean("<|en|><|HAPPY|><|Speech|><|withitn|>Where is the Black Bear?")
        assert language == "en" and text == "Where is the Black Bear?"
        assert paraformer._clean("<|nospeech|><|Event_UNK|>") == ("", None)
    finally:
        paraformer.kind = "Paraformer"


def test_traditional_output_is_simplified(paraformer):
    assert paraformer._clean("黃 風 嶺 在 哪 裡") == ("黄风岭在哪里", "zh")


def test_missing_hub_model_names_the_key_and_the_command(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        locate_funasr_model("iic/not-downloaded-model", "asr.funasr.model", tmp_path)
    assert "asr.funasr.model" in str(err.value) and "python -m app download asr" in str(err.value)
    with pytest.raises(ModelNotFoundError, match="check the path"):
        locate_funasr_model(str(tmp_path / "nowhere"), "asr.funasr.model", tmp_path)


def test_missing_vad_model_is_named(tiny_paraformer_dir, tmp_path):
    settings = FunasrSettings(model=str(tiny_paraformer_dir), vad_model="iic/no-such-vad", punc_model="")
    with pytest.raises(ModelNotFoundError, match=r"asr\.funasr\.vad_model"):
        FunasrRecognizer.from_settings(settings, tmp_path, [], "zh")


def test_not_a_funasr_directory(tmp_path):
    with pytest.raises(RecognitionError, match=r"no config\.yaml"):
        model_kind(tmp_path)
    (tmp_path / "config.yaml").write_text("model: [unclosed", encoding="utf-8")
    with pytest.raises(RecognitionError, match="cannot be read"):
        model_kind(tmp_path)


def test_broken_model_directory_is_a_clear_error(tmp_path, tiny_paraformer_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.yaml", "tokens.txt"):
        (broken / name).write_bytes((tiny_paraformer_dir / name).read_bytes())
    with pytest.raises(RecognitionError, match="cannot load"):
        FunasrRecognizer(broken)  # model.pt is missing


def test_hotword_file_keeps_chinese_names_up_to_the_limit(tmp_path):
    path = write_hotword_file(["黑熊精", "Black Bear", "酒", "黑熊精", "魔将·劫波", "黄眉"], tmp_path, limit=2)
    assert path is not None
    assert path.read_text(encoding="utf-8").splitlines() == ["黑 熊 精", "魔 将 劫 波"]
    assert write_hotword_file(["Black Bear"], tmp_path) is None


def test_bad_language_and_rate(tiny_paraformer_dir, paraformer):
    with pytest.raises(ValueError, match=r"asr\.language"):
        FunasrRecognizer(tiny_paraformer_dir, language="fr")
    with pytest.raises(ValueError, match="16000 Hz"):
        list(paraformer.segments(AudioClip(np.zeros(800, dtype=np.float32), 8000)))


# -- the streaming Paraformer (paraformer-zh-streaming), decoded online -------------------------------


@pytest.fixture(scope="module")
def tiny_streaming_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_streaming_paraformer(tmp_path_factory.mktemp("tiny-paraformer-streaming"))


@pytest.fixture(scope="module")
def tiny_punc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_punc(tmp_path_factory.mktemp("tiny-ct-punc"))


@pytest.fixture(scope="module")
def streaming(tiny_streaming_dir: Path, vocabulary: list[str]) -> FunasrRecognizer:
    return FunasrRecognizer(tiny_streaming_dir, vocabulary, device="auto")


def spy_generate(monkeypatch: pytest.MonkeyPatch, model: Any) -> list[SimpleNamespace]:
    """Record every ``generate`` call of a FunASR AutoModel (and still run it)."""
    calls: list[SimpleNamespace] = []
    real = model.generate

    def generate(input: Any, **options: Any) -> Any:
        cache = options.get("cache")
        call = SimpleNamespace(input=input, options=options, cache=cache, fresh=cache == {})
        results = real(input=input, **options)
        call.start_idx = cache["encoder"]["start_idx"] if cache else None  # frames the encoder has seen
        calls.append(call)
        return results

    monkeypatch.setattr(model, "generate", generate)
    return calls


def test_streaming_model_is_detected_and_configured(streaming, tiny_streaming_dir):
    assert model_kind(tiny_streaming_dir) == "ParaformerStreaming"
    assert streaming.kind == "ParaformerStreaming" and streaming.streaming and streaming.online
    assert streaming.supports_hotwords is False and streaming.hotword_file is None
    assert streaming.chunk_samples == 9600  # chunk_size[1] = 10 frames of 60 ms
    assert streaming.generate_options() == {
        "chunk_size": [0, 10, 5],
        "encoder_chunk_look_back": 4,
        "decoder_chunk_look_back": 1,
    }
    assert isinstance(streaming, SpeechRecognizer)


def test_segments_decode_online_chunk_by_chunk_with_one_cache(streaming, question, monkeypatch):
    calls = spy_generate(monkeypatch, streaming._model)
    segments = list(streaming.segments(question))
    n = len(question.samples)
    assert [len(c.input) for c in calls] == [9600, 9600, 9600, n - 3 * 9600]  # 600 ms chunks, then the rest
    assert all(c.cache is calls[0].cache for c in calls)  # the cache is carried from chunk to chunk
    assert calls[0].fresh and [c.options["is_final"] for c in calls] == [False, False, False, True]
    assert [c.start_idx for c in calls] == [10, 20, 30, 0]  # the encoder moves on; FunASR resets it when final
    assert all(c.options["chunk_size"] == [0, 10, 5] and c.options["encoder_chunk_look_back"] == 4 for c in calls)
    assert all("cache" in c.options for c in calls)  # never the offline call, which drops the last partial chunk
    assert len(segments) == 1  # one segment per clip: the chunk texts joined
    seg = segments[0]
    assert isinstance(seg.text, str) and seg.text and " " not in seg.text
    assert seg.language == "zh" and seg.start == 0.0 and seg.end == pytest.approx(question.seconds)
    first_cache = calls[0].cache
    calls.clear()
    assert [s.text for s in streaming.segments(question)] == [seg.text]  # a fresh cache per call: same text
    assert calls[0].fresh and calls[0].cache is not first_cache and len(calls) == 4


def test_streaming_false_decodes_each_clip_in_one_final_call(tiny_streaming_dir, streaming, question, monkeypatch):
    online_text = next(streaming.segments(question)).text
    whole = FunasrRecognizer(tiny_streaming_dir, streaming=False, device="auto")
    assert whole.streaming and not whole.online
    calls = spy_generate(monkeypatch, whole._model)
    segments = list(whole.segments(question))
    assert len(calls) == 1 and len(calls[0].input) == len(question.samples)
    assert calls[0].fresh and calls[0].options["is_final"] is True
    assert [s.text for s in segments] == [online_text]  # FunASR chunks it the same way inside the call
    whole.close()


def test_stream_session_gives_text_while_audio_arrives(streaming, question):
    stream = streaming.stream_session()
    returned, decoded = [], []
    for start in range(0, len(question.samples), 1600):  # 100 ms at a time, as a microphone would
        returned.append(stream.feed(question.samples[start : start + 1600]))
        decoded.append(stream.chunks_decoded)
    assert all(isinstance(t, str) for t in returned)
    assert decoded[4] == 0 and decoded[5] == 1  # nothing until a whole 600 ms chunk is in, then one chunk
    assert [i for i, t in enumerate(returned) if t] and not any(returned[:5])  # text comes before the end
    assert stream.chunks_decoded == 3 and stream.samples_fed == len(question.samples)
    partial = stream.text
    assert partial == "".join(returned) and partial
    final = stream.finish()
    assert final.startswith(partial) and stream.chunks_decoded == 4 and stream.language == "zh"
    assert final == next(streaming.segments(question)).text  # the same decoding as the whole clip
    with pytest.raises(RuntimeError, match="finished"):
        stream.feed(question.samples[:1600])
    with pytest.raises(RuntimeError, match="finished"):
        stream.finish()


def test_stream_session_input_checks(streaming, question):
    stream = streaming.stream_session()
    with pytest.raises(ValueError, match="1-D"):
        stream.feed(np.zeros((2, 1600), dtype=np.float32))
    pcm = (question.samples[:9600] * 32767).astype(np.int16)  # 16-bit PCM is scaled to [-1, 1]
    assert isinstance(stream.feed(pcm), str) and stream.chunks_decoded == 1
    assert isinstance(stream.finish(), str)


def test_streaming_short_and_empty_audio_give_nothing(streaming, paraformer, monkeypatch):
    calls = spy_generate(monkeypatch, streaming._model)
    for recognizer in (streaming, paraformer):
        for n in (0, 500, 959):  # less than one 60 ms model frame
            assert list(recognizer.segments(AudioClip(np.zeros(n, dtype=np.float32), 16000))) == []
    stream = streaming.stream_session()
    assert stream.feed(np.zeros(500, dtype=np.float32)) == "" and stream.finish() == ""
    assert stream.chunks_decoded == 0 and calls == []
    tiny = load_audio(fixture("tiny_0.1s.wav"), 60)  # 100 ms: one final chunk
    assert all(isinstance(s.text, str) for s in streaming.segments(tiny)) and len(calls) == 1
    assert calls[0].options["is_final"] is True


def test_streaming_punctuates_the_finished_text_only(tiny_streaming_dir, tiny_punc_dir, streaming, question, tmp_path):
    raw = next(streaming.segments(question)).text
    recognizer = FunasrRecognizer(tiny_streaming_dir, punc_dir=tiny_punc_dir, vad_dir=tmp_path, device="auto")
    # Neither VAD nor punctuation runs inside the ASR AutoModel: they would cut and punctuate every chunk.
    assert recognizer._model.vad_model is None and recognizer._model.punc_model is None
    asked: list[str] = []
    real = recognizer._punc.generate

    def punctuate(input: str) -> Any:
        asked.append(input)
        return real(input=input)

    recognizer._punc.generate = punctuate
    stream = recognizer.stream_session()
    partials = [stream.feed(question.samples[i : i + 9600]) for i in range(0, 3 * 9600, 9600)]
    assert asked == [] and all(partials)  # chunk texts come unpunctuated
    final = stream.finish(question.samples[3 * 9600 :])
    assert asked == [raw]  # once, on the whole utterance
    assert final == recognizer._clean(str(real(input=raw)[0]["text"]))[0]
    assert [s.text for s in recognizer.segments(question)] == [final] and asked == [raw, raw]
    recognizer.close()


def test_streaming_setting_and_chunk_size_checks(tiny_paraformer_dir, paraformer, tmp_path):
    assert streaming_mode("ParaformerStreaming", "auto", tmp_path) == (True, True)
    assert streaming_mode("ParaformerStreaming", False, tmp_path) == (True, False)
    assert streaming_mode("unknown", True, tmp_path) == (True, True)  # a layout without config.yaml: trusted
    assert streaming_mode("Paraformer", "auto", tmp_path) == (False, False)
    with pytest.raises(RecognitionError, match=r"asr\.funasr\.streaming is true .* Paraformer"):
        streaming_mode("Paraformer", True, tmp_path)
    with pytest.raises(ValueError, match=r"asr\.funasr\.streaming"):
        streaming_mode("Paraformer", "yes", tmp_path)
    assert check_chunk_size((0, 8, 4)) == [0, 8, 4]
    bad_sizes: list[Any] = [[0, 0, 5], [0, 10], [-1, 10, 5], [0, 10.5, 5]]
    for bad in bad_sizes:
        with pytest.raises(ValueError, match=r"asr\.funasr\.chunk_size"):
            check_chunk_size(bad)
    with pytest.raises(RecognitionError, match="streaming Paraformer"):
        paraformer.stream_session()
    assert not paraformer.streaming and "chunk_size" not in paraformer.generate_options()


def test_streaming_settings_reach_the_recognizer(tiny_streaming_dir, monkeypatch):
    defaults = FunasrSettings()
    assert defaults.streaming == "auto" and defaults.chunk_size == (0, 10, 5)
    assert (defaults.encoder_chunk_look_back, defaults.decoder_chunk_look_back) == (4, 1)
    with pytest.raises(ValidationError):
        FunasrSettings(streaming="sometimes")
    with pytest.raises(ValidationError):
        FunasrSettings(encoder_chunk_look_back=-1)
    settings = FunasrSettings(
        model=str(tiny_streaming_dir), vad_model="", punc_model="", chunk_size=[0, 8, 4], decoder_chunk_look_back=0
    )
    recognizer = FunasrRecognizer.from_settings(settings, REPO, [], "zh")
    assert recognizer.online and recognizer.chunk_samples == 8 * 960
    assert recognizer.stream_options == {
        "chunk_size": [0, 8, 4],
        "encoder_chunk_look_back": 4,
        "decoder_chunk_look_back": 0,
    }
    recognizer.close()


def test_pipeline_on_streaming_funasr(tiny_streaming_dir, vocabulary):
    settings = AsrSettings(
        backend="funasr", funasr=FunasrSettings(model=str(tiny_streaming_dir), vad_model="", punc_model="")
    )
    pipeline = SpeechPipeline(settings, vocabulary, REPO)
    heard = pipeline.transcribe(fixture("zh_08.wav"))
    assert heard.backend == "funasr" and heard.language == "zh" and heard.raw_text
    phrase = pipeline.recognize_phrase(load_audio(fixture("zh_08.wav"), 60))  # the hands-free mode's seam
    assert len(phrase) <= 1 and all(isinstance(s.text, str) for s in phrase)
