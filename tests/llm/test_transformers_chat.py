"""The transformers backend, run for real on a tiny random Llama with a tokenizer trained here."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm.base import ChatModel, ChatModelError, ChatTurn
from llm.grounded import GroundedAnswerer
from llm.transformers_chat import TransformersChatModel
from modules.rag.types import Chunk, Passage
from tests.conftest import ENTRIES

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
MESSAGES = [ChatTurn("system", "你是悟了悟了。"), ChatTurn("user", "黑熊精在哪里打？")]
THREAD_NAME = "transformers-generate"


def save_tokenizer(root: Path, chat_template: str | None) -> int:
    """A word-level tokenizer (one token per Chinese character or English word) trained on the test KB."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    # Word-level keeps the test exact: decoding then re-encoding gives back the generated tokens one for one.
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, strip_accents=False, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = [*ENTRIES.values(), "The Destined One fights the Black Bear Guai on Black Wind Mountain."]
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, show_progress=False))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="[PAD]", unk_token="[UNK]"
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(root)
    return len(fast)


def save_tiny_llama(root: Path, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab_size = save_tokenizer(root, chat_template)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=SPECIAL_TOKENS.index("<s>"),
        eos_token_id=SPECIAL_TOKENS.index("</s>"),
        pad_token_id=SPECIAL_TOKENS.index("[PAD]"),
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def model(model_dir: Path) -> TransformersChatModel:
    return TransformersChatModel(model_dir, device="cpu")


def generation_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def read_within(stream: Iterator[str], seconds: float = 30.0) -> list[str]:
    """The stream read to its end; a stream that hangs fails the test instead of hanging the run."""
    result: list[list[str]] = []
    error: list[BaseException] = []

    def read() -> None:
        try:
            result.append(list(stream))
        except BaseException as exc:
            error.append(exc)

    # A daemon reader, so a hung stream cannot keep the test process from exiting either.
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    assert not reader.is_alive(), f"the stream did not end within {seconds} s"
    if error:
        raise error[0]
    return result[0]


def test_loads_as_a_chat_model_with_auto_defaults(model_dir: Path):
    import torch

    chat = TransformersChatModel(str(model_dir))
    assert isinstance(chat, ChatModel)
    assert chat.name == "transformers"
    on_gpu = torch.cuda.is_available()
    assert chat.device.type == ("cuda" if on_gpu else "cpu")
    assert chat.dtype in ((torch.bfloat16, torch.float16) if on_gpu else (torch.float32,))
    assert next(chat.model.parameters()).dtype == chat.dtype
    assert next(chat.model.parameters()).device.type == chat.device.type
    assert "".join(chat.stream_chat(MESSAGES, 4, 0.0))


def test_explicit_dtype_is_used(model_dir: Path):
    import torch

    chat = TransformersChatModel(model_dir, device="cpu", dtype="bfloat16")
    assert next(chat.model.parameters()).dtype == torch.bfloat16
    assert "".join(chat.stream_chat(MESSAGES, 4, 0.0))


def test_streams_several_pieces(model: TransformersChatModel):
    pieces = list(model.stream_chat(MESSAGES, 20, 0.0))
    assert len(pieces) >= 5
    assert all(isinstance(p, str) and p for p in pieces)
    assert not generation_threads()


def test_greedy_is_deterministic(model: TransformersChatModel):
    first = "".join(model.stream_chat(MESSAGES, 20, 0.0))
    second = "".join(model.stream_chat(MESSAGES, 20, 0.0))
    assert first.strip()
    assert first == second


def test_sampling_varies(model: TransformersChatModel):
    # A random model's next-token distribution is nearly flat: five sampled answers are never all equal.
    answers = {"".join(model.stream_chat(MESSAGES, 12, 1.0)) for _ in range(5)}
    assert len(answers) > 1


def test_max_tokens_bounds_the_answer(model: TransformersChatModel):
    short = "".join(model.stream_chat(MESSAGES, 3, 0.0))
    longer = "".join(model.stream_chat(MESSAGES, 30, 0.0))
    assert 0 < model.count_tokens(short) <= 3
    assert model.count_tokens(longer) > 3


def test_count_tokens_uses_the_tokenizer(model: TransformersChatModel):
    assert model.count_tokens("") == 0
    assert model.count_tokens("黑熊精") == 3  # one token per character with this tokenizer
    assert model.count_tokens("Black Bear Guai") == 3


def test_closing_the_stream_stops_generation(model: TransformersChatModel):
    steps = 0

    def count_step(*_args: object) -> None:
        nonlocal steps
        steps += 1

    hook = model.model.register_forward_hook(count_step)
    try:
        stream = model.stream_chat(MESSAGES, 5000, 0.0)  # minutes of work if nothing stopped it
        assert next(stream)
        assert generation_threads()
        started = time.monotonic()
        stream.close()
        assert time.monotonic() - started < 2.0
        assert not generation_threads()
    finally:
        hook.remove()
    assert steps < 200


def test_a_stream_never_read_starts_no_thread(model: TransformersChatModel):
    stream = model.stream_chat(MESSAGES, 50, 0.0)
    assert not generation_threads()
    stream.close()


def test_concurrent_streams_both_get_the_whole_answer(model: TransformersChatModel):
    alone = "".join(model.stream_chat(MESSAGES, 15, 0.0))
    a = model.stream_chat(MESSAGES, 15, 0.0)
    b = model.stream_chat(MESSAGES, 15, 0.0)
    a_text, b_text = next(a), next(b)
    a_text += "".join(a)
    b_text += "".join(b)
    assert a_text == b_text == alone


def test_a_failed_generation_is_a_chat_model_error(model: TransformersChatModel):
    # The error is raised inside the generation thread; the reader must hear of it, not wait for ever.
    with pytest.raises(ChatModelError, match=r"transformers: generation with .* failed: `max_new_tokens`"):
        read_within(model.stream_chat(MESSAGES, -1, 0.0))
    assert not generation_threads()
    assert "".join(model.stream_chat(MESSAGES, 5, 0.0))


def test_a_tokenizer_without_chat_template_is_refused(tmp_path: Path):
    chat = TransformersChatModel(save_tiny_llama(tmp_path / "base-model", chat_template=None), device="cpu")
    with pytest.raises(ChatModelError, match="no chat template"):
        list(chat.stream_chat(MESSAGES, 5, 0.0))


def test_a_template_that_rejects_the_conversation_is_a_chat_model_error(model_dir: Path, tmp_path: Path):
    strict = tmp_path / "strict"
    shutil.copytree(model_dir, strict)
    (strict / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{{ m['content'] }}{% endfor %}",
        encoding="utf-8",
    )
    chat = TransformersChatModel(strict, device="cpu")
    with pytest.raises(ChatModelError, match="no system role"):
        list(chat.stream_chat(MESSAGES, 5, 0.0))


def test_a_missing_directory_is_named(tmp_path: Path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ChatModelError, match="does not exist") as err:
        TransformersChatModel(missing)
    assert str(missing) in str(err.value)


def test_a_directory_that_does_not_load_is_named(model_dir: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ChatModelError, match="could not load") as err:
        TransformersChatModel(broken, device="cpu")
    assert str(broken) in str(err.value)


def test_bad_arguments(model_dir: Path):
    import torch

    with pytest.raises(ValueError, match="dtype must be one of"):
        TransformersChatModel(model_dir, dtype="float8")
    with pytest.raises(ChatModelError, match="not a device"):
        TransformersChatModel(model_dir, device="toaster")
    if not torch.cuda.is_available():
        with pytest.raises(ChatModelError, match="no CUDA GPU"):
            TransformersChatModel(model_dir, device="cuda")


def test_grounded_answerer_streams_through_it(model: TransformersChatModel):
    passages = [
        Passage(Chunk(i, f"bosses/{i}.md", title, section, text, f"assets/knowledge/bosses/{i}.md"), 1.0 / (i + 1))
        for i, (title, section, text) in enumerate(
            [
                ("黑熊精", "位置", "黑熊精在黑风山山顶的黑风洞前与天命人交手。"),
                ("黑熊精", "打法", "黑熊精的扑击范围很大，向侧后方闪避比后撤更安全。"),
                ("红孩儿", "", "红孩儿是第五回的最终头目，住在火焰山。"),
            ]
        )
    ]
    answerer = GroundedAnswerer(model, "只根据资料回答。", max_tokens=16, temperature=0.0, context_tokens=1024)
    assert answerer.name == "transformers"
    pieces = list(
        answerer.stream("黑熊精在哪里打？", passages, [ChatTurn("user", "你好"), ChatTurn("assistant", "你好！")])
    )
    assert len(pieces) >= 3
    assert 0 < model.count_tokens("".join(pieces)) <= 16
