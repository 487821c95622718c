"""A GGUF chat model run in-process by llama.cpp (llama-cpp-python): the local backend for CPU laptops."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, cast

from llm.base import ChatModelError, ChatTurn

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestMessage, CreateChatCompletionStreamResponse

log = logging.getLogger(__name__)

INSTALL_COMMAND = ".venv/bin/pip install -r requirements-llamacpp.txt"
GGUF_MAGIC = b"GGUF"


def _llama_class(model_path: Path) -> type[Llama]:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ImportError(
            f"llm.backend llamacpp (model {model_path}) needs llama-cpp-python: run `{INSTALL_COMMAND}` "
            "(llama-cpp-python==0.3.36; it compiles from source, about 8 minutes on 2 cores)"
        ) from exc
    return Llama


def _request_message(turn: ChatTurn) -> ChatCompletionRequestMessage:
    """``turn`` as llama-cpp's message dict, typed by its role."""
    if turn.role == "system":
        return {"role": "system", "content": turn.content}
    if turn.role == "user":
        return {"role": "user", "content": turn.content}
    return {"role": "assistant", "content": turn.content}


def _check_gguf(path: Path) -> None:
    """A clear error for a path that is missing or is not a GGUF file, before llama.cpp gives a vague one."""
    if not path.is_file():
        raise ChatModelError(
            f"llamacpp: model file {path} does not exist. Point llm.llamacpp.model at a .gguf file "
            "(or run `python -m app download cpu`); `python -m app doctor` checks it"
        )
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ChatModelError(
            f"llamacpp: {path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r}). "
            "llm.llamacpp.model must name a .gguf model, e.g. one converted with llama.cpp's convert_hf_to_gguf.py"
        )


class LlamaCppChatModel:
    """Streams chat completions from a GGUF model; the chat template is the one stored in the GGUF."""

    name = "llamacpp"

    def __init__(self, model_path: Path | str, n_ctx: int = 4096, n_threads: int = 0, n_gpu_layers: int = 0) -> None:
        """Load the model; n_threads 0 means every core, n_gpu_layers > 0 needs a GPU build of llama.cpp."""
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be at least 1 (got {n_ctx})")
        if n_threads < 0:
            raise ValueError(f"n_threads must be 0 (all cores) or more (got {n_threads})")
        if n_gpu_layers < -1:
            raise ValueError(f"n_gpu_layers must be -1 (all), 0 (CPU only) or more (got {n_gpu_layers})")
        self.model_path = Path(model_path).expanduser()
        _check_gguf(self.model_path)
        llama_class = _llama_class(self.model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        if n_gpu_layers:
            import llama_cpp

            if not llama_cpp.llama_supports_gpu_offload():
                log.warning(
                    "llamacpp: llm.llamacpp.n_gpu_layers=%d, but this llama-cpp-python build runs on CPU only; "
                    "reinstall it with CMAKE_ARGS=-DGGML_CUDA=on to offload layers",
                    n_gpu_layers,
                )
        try:
            self._llama = llama_class(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_gpu_layers=n_gpu_layers,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ChatModelError(
                f"llamacpp: could not load {self.model_path} ({exc}). The file may be truncated or use a "
                "format newer than llama-cpp-python 0.3.36 reads; fetch it again or convert it anew"
            ) from exc
        # One llama.cpp context holds one conversation's state: generations must take turns.
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's own tokenizer."""
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def start(self) -> None:
        """Nothing to start: the weights loaded when the model was built."""

    def stream_chat(self, messages: Sequence[ChatTurn], max_tokens: int, temperature: float) -> Iterator[str]:
        """The reply's text pieces as they are generated; closing the generator stops generation."""
        with self._lock:
            try:
                # create_chat_completion is annotated as returning a response or an iterator whatever ``stream``
                # is; with stream=True it returns a generator of chunks (which is what makes closing() work).
                chunks = cast(
                    "Generator[CreateChatCompletionStreamResponse, None, None]",
                    self._llama.create_chat_completion(
                        messages=[_request_message(m) for m in messages],
                        stream=True,
                        max_tokens=max_tokens,
                        temperature=temperature,
                    ),
                )
                # Closing llama-cpp's generator ends its token loop at once; doing it here, rather than
                # leaving it to garbage collection, makes a stop take effect before the lock is released.
                with closing(chunks):
                    for chunk in chunks:
                        # A delta is either {"content": str | None, ...} or empty; only a non-empty str is text.
                        text = chunk["choices"][0]["delta"].get("content")
                        if isinstance(text, str) and text:
                            yield text
            except ValueError as exc:
                if "exceed context window" in str(exc):
                    raise ChatModelError(
                        f"llamacpp ({self.model_path}): the prompt does not fit the model's window "
                        f"(llm.llamacpp.n_ctx={self.n_ctx}): {exc}. Lower llm.context_tokens or raise "
                        "llm.llamacpp.n_ctx"
                    ) from exc
                raise ChatModelError(f"llamacpp ({self.model_path}): generation failed: {exc}") from exc
            except RuntimeError as exc:
                raise ChatModelError(f"llamacpp ({self.model_path}): generation failed: {exc}") from exc
