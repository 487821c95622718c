"""A Hugging Face causal LM run in-process with transformers: the chat backend that needs no server.

The model answers in a background thread that feeds a ``TextIteratorStreamer``; the generator the
caller holds reads from it. Closing that generator sets an event that a stopping criterion checks
after every token, so a stopped answer frees the model within one decoding step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llm.base import ChatModelError, ChatTurn

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install torch==2.9.1 transformers==5.24.0 (or: pip install -r requirements.txt)"
DTYPES = ("auto", "float32", "float16", "bfloat16")
# How long closing a stream waits for the current decoding step; a longer one (a huge prompt still being
# read on a CPU) finishes on its own, and its thread exits at the next token.
JOIN_TIMEOUT_S = 10.0


def _import_libraries() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(
            f"the transformers chat backend needs torch and transformers: {INSTALL_HINT} ({exc})"
        ) from exc
    return torch, transformers


class TransformersChatModel:
    """A local chat model directory (weights, tokenizer with a chat template) run with transformers."""

    name = "transformers"

    def __init__(
        self,
        model_dir: Path | str,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise ChatModelError(
                f"transformers: model directory {self.model_dir} does not exist. Point llm.transformers.model at "
                "a local chat model directory; `python -m app doctor` checks it"
            )
        torch, transformers = _import_libraries()
        self._torch = torch
        self.device = self._pick_device(device)
        self.dtype = self._pick_dtype(dtype)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                self.model_dir, trust_remote_code=trust_remote_code
            )
            # device_map puts the weights straight on the device instead of staging a full copy in CPU memory.
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                self.model_dir, dtype=self.dtype, device_map=self.device, trust_remote_code=trust_remote_code
            ).eval()
        except Exception as exc:
            raise ChatModelError(
                f"transformers: could not load the model in {self.model_dir}: {_sentence(exc)} Check that the "
                "directory holds a complete causal LM (config.json, weights, tokenizer); models with custom code need "
                "llm.transformers.trust_remote_code=true"
            ) from exc
        # One generation at a time: two at once on one model share its compute and double the caches' memory,
        # so the first player waits longer than if the second queued.
        self._lock = threading.Lock()
        log.info("transformers: loaded %s on %s as %s", self.model_dir, self.device, self.dtype)

    def _pick_device(self, device: str) -> Any:
        torch = self._torch
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            chosen = torch.device(device)
        except RuntimeError as exc:
            raise ChatModelError(
                f"transformers: llm.transformers.device {device!r} is not a device (use auto, cpu, cuda or cuda:N)"
            ) from exc
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ChatModelError(
                f"transformers: llm.transformers.device is {device!r} but torch sees no CUDA GPU here; "
                "set it to auto or cpu"
            )
        return chosen

    def _pick_dtype(self, dtype: str) -> Any:
        torch = self._torch
        if dtype != "auto":
            return getattr(torch, dtype)
        if self.device.type != "cuda":
            # Half precision on a CPU is slower than float32 and some kernels lack it.
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def count_tokens(self, text: str) -> int:
        """How many tokens the model's tokenizer makes of text (no special tokens added)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def start(self) -> None:
        """Nothing to start: the weights loaded when the model was built."""

    def stream_chat(self, messages: Sequence[ChatTurn], max_tokens: int, temperature: float) -> Iterator[str]:
        """The model's reply to messages, streamed; temperature 0 decodes greedily."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ChatModelError(
                f"transformers: the tokenizer in {self.model_dir} has no chat template, so it cannot be prompted "
                "with messages. Use a chat (instruct) model, or give the tokenizer one (chat_template.jinja)"
            )
        try:
            inputs = self.tokenizer.apply_chat_template(
                [turn.to_dict() for turn in messages],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )
        except Exception as exc:
            # Some templates refuse roles they do not know (a system turn, two user turns in a row).
            raise ChatModelError(
                f"transformers: the chat template of {self.model_dir} rejected the conversation: {exc}"
            ) from exc
        return self._generate_stream(inputs, max_tokens, temperature)

    def _generate_stream(self, inputs: Any, max_tokens: int, temperature: float) -> Iterator[str]:
        # The thread starts here, inside the generator, so a stream that is never read never starts one.
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {
            "input_ids": inputs["input_ids"].to(self.device),
            "attention_mask": inputs["attention_mask"].to(self.device),
            "max_new_tokens": max_tokens,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_StopWhenSet(stop)]),
            "pad_token_id": pad,
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            kwargs["temperature"] = temperature
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._run, args=(kwargs, streamer, stop, failure), name="transformers-generate", daemon=True
        )
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            stop.set()
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.warning("transformers: generation still finishing its step after %.0f s", JOIN_TIMEOUT_S)
        if failure:
            raise ChatModelError(
                f"transformers: generation with {self.model_dir} failed: {_sentence(failure[0])} If memory ran out, "
                "lower llm.max_tokens or llm.context_tokens"
            ) from failure[0]

    def _run(self, kwargs: dict[str, Any], streamer: Any, stop: threading.Event, failure: list[BaseException]) -> None:
        with self._lock:
            if stop.is_set():
                # Closed while waiting for the previous answer: nobody reads this one.
                streamer.end()
                return
            try:
                self.model.generate(**kwargs)
            except Exception as exc:
                failure.append(exc)
                # The reader would otherwise wait for ever for the end of a stream that never comes.
                streamer.end()


def _sentence(exc: BaseException) -> str:
    """An exception's message as one sentence, for embedding in ours."""
    text = str(exc).strip() or type(exc).__name__
    return text if text.endswith((".", "!", "?")) else text + "."


class _StopWhenSet:
    """A stopping criterion that ends generation once an event is set (the reader went away).

    It has transformers' ``StoppingCriteria`` call signature without subclassing it, so that importing
    this module does not import transformers; ``generate`` only calls it.
    """

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)
