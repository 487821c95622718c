"""A small-scale LoRA fine-tuner on transformers + peft: the SFT data, trained without xtuner.

    python -m training.lora_sft BASE_MODEL DATA.jsonl… --out DIR [--steps N] [--merge DIR]

For quick experiments with a small model on a CPU or one GPU in the app environment, and for the tests'
end-to-end fine-tune; the production runs (QLoRA, DeepSpeed, packing, the 7B model) go through xtuner
(``python -m training run``). It reads the same xtuner-format JSONL the data commands write and formats each
conversation with the *model's own chat template* — the template the app's transformers backend prompts it with —
learning only the assistant's replies (xtuner's masking). Raw-text records (one turn, empty input, no system) are
learned whole, as in incremental pretraining. ``merge_lora`` folds the adapter into the base weights for serving.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.data.records import Conversation, read_conversations

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install torch==2.9.1 transformers==5.24.0 peft==0.21.2 (or: pip install -r requirements.txt)"
IGNORE_INDEX = -100  # labels the loss skips: the prompt, and padding


@dataclass(frozen=True)
class LoraSftConfig:
    """Hyperparameters of a LoRA fine-tune."""

    steps: int = 100
    lr: float = 2e-4
    batch_size: int = 2
    max_length: int = 1024
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_length", "lora_r", "lora_alpha"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")


@dataclass(frozen=True)
class Encoded:
    """One example as token ids, with labels masked where there is nothing to learn."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class LoraSftResult:
    """What a fine-tune did: where the adapter is, and the loss of every step."""

    adapter_dir: Path
    examples: int
    losses: tuple[float, ...]


def _import_libraries() -> tuple[Any, Any, Any]:
    try:
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(f"LoRA fine-tuning needs torch, transformers and peft: {INSTALL_HINT} ({exc})") from exc
    return torch, transformers, peft


# -- encoding -----------------------------------------------------------------------------------------


def _is_raw_text(conversation: Conversation) -> bool:
    return len(conversation.turns) == 1 and not conversation.turns[0].input and not conversation.turns[0].system


def encode(tokenizer: Any, conversation: Conversation, max_length: int) -> Encoded | None:
    """Token ids and labels of a conversation; None when truncation leaves nothing to learn."""
    if _is_raw_text(conversation):
        body = tokenizer.encode(conversation.turns[0].output, add_special_tokens=False)
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        raw_ids: list[int] = [*bos, *body, *eos][:max_length]
        return Encoded(tuple(raw_ids), tuple(raw_ids)) if raw_ids else None
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; SFT data needs a chat model's tokenizer")
    messages: list[dict[str, str]] = []
    if conversation.turns[0].system:
        messages.append({"role": "system", "content": conversation.turns[0].system})
    ids: list[int] = []
    labels: list[int] = []
    rendered = ""
    for turn in conversation.turns:
        messages.append({"role": "user", "content": turn.input})
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        messages.append({"role": "assistant", "content": turn.output})
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not (prompt.startswith(rendered) and full.startswith(prompt)):
            raise ValueError("the tokenizer's chat template does not extend its own prompts turn by turn")
        # Each piece is tokenised on its own, as xtuner does: the boundary between prompt and reply is exact.
        prompt_ids = tokenizer.encode(prompt[len(rendered) :], add_special_tokens=False)
        reply_ids = tokenizer.encode(full[len(prompt) :], add_special_tokens=False)
        ids += prompt_ids + reply_ids
        labels += [IGNORE_INDEX] * len(prompt_ids) + reply_ids
        rendered = full
    if len(ids) > max_length:
        # Keep the end: the reply is what is learned, and the prompt's start (the system prompt) is the least news.
        ids, labels = ids[-max_length:], labels[-max_length:]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return Encoded(tuple(ids), tuple(labels))


def load_examples(files: Sequence[Path]) -> list[Conversation]:
    """Every conversation in the files; a missing or malformed file is a DataFormatError naming it."""
    conversations: list[Conversation] = []
    for path in files:
        conversations += read_conversations(path)
    if not conversations:
        raise ValueError(f"no training examples in {', '.join(map(str, files))}")
    return conversations


# -- training -----------------------------------------------------------------------------------------


def _batches(examples: list[Encoded], batch_size: int, seed: int) -> Any:
    rng = random.Random(seed)
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            yield [examples[i] for i in order[start : start + batch_size]]


def _collate(batch: list[Encoded], pad_id: int, torch: Any) -> dict[str, Any]:
    width = max(len(e.input_ids) for e in batch)
    ids = [list(e.input_ids) + [pad_id] * (width - len(e.input_ids)) for e in batch]
    labels = [list(e.labels) + [IGNORE_INDEX] * (width - len(e.labels)) for e in batch]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def train_lora(
    base_model: Path,
    data: Sequence[Path],
    out_dir: Path,
    config: LoraSftConfig = LoraSftConfig(),  # frozen: one shared default is safe
    on_step: Callable[[int, float], None] | None = None,
) -> LoraSftResult:
    """Fine-tune a LoRA adapter on the data; saves the adapter (and the tokenizer) to ``out_dir``."""
    torch, transformers, peft = _import_libraries()
    if not Path(base_model).is_dir():
        raise FileNotFoundError(f"base model directory {base_model} does not exist")
    conversations = load_examples(data)
    tokenizer = transformers.AutoTokenizer.from_pretrained(base_model)
    encoded = [e for e in (encode(tokenizer, c, config.max_length) for c in conversations) if e is not None]
    if not encoded:
        raise ValueError(f"every example is longer than max_length={config.max_length} before its reply")
    torch.manual_seed(config.seed)
    model = transformers.AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    lora = peft.LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(model, lora).to(config.device)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
    losses = []
    batches = _batches(encoded, config.batch_size, config.seed)
    for step in range(1, config.steps + 1):
        batch = {k: v.to(config.device) for k, v in _collate(next(batches), pad_id, torch).items()}
        loss = model(**batch).loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"the loss became {loss.item()} at step {step}; lower the learning rate")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, loss.item())
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return LoraSftResult(out_dir, len(encoded), tuple(losses))


def merge_lora(base_model: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Base weights + adapter folded into one model directory (with the tokenizer), loadable without peft."""
    torch, transformers, peft = _import_libraries()
    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json)")
    base = transformers.AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    merged = peft.PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir)
    transformers.AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(out_dir)
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.lora_sft", description=__doc__.splitlines()[0])
    parser.add_argument("base_model", type=Path, help="a local causal LM directory with a chat-template tokenizer")
    parser.add_argument("data", nargs="+", type=Path, help="xtuner-format JSONL files (python -m training qa …)")
    parser.add_argument("--out", type=Path, required=True, help="where the adapter goes")
    parser.add_argument("--merge", type=Path, help="also write the merged model here")
    defaults = LoraSftConfig()
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--lora-r", type=int, default=defaults.lora_r)
    parser.add_argument("--lora-alpha", type=int, default=defaults.lora_alpha)
    parser.add_argument("--device", default=defaults.device)
    args = parser.parse_args(argv)
    try:
        config = LoraSftConfig(
            steps=args.steps,
            lr=args.lr,
            batch_size=args.batch_size,
            max_length=args.max_length,
            lora_r=args.lora_r,
            lora_alpha=args.lora_alpha,
            device=args.device,
        )
        result = train_lora(
            args.base_model, args.data, args.out, config, lambda s, loss: print(f"step {s:>5}  loss {loss:.4f}")
        )
        print(f"adapter: {result.adapter_dir} ({result.examples} examples)")
        if args.merge:
            print(f"merged model: {merge_lora(args.base_model, args.out, args.merge)}")
    except (ValueError, FileNotFoundError, FloatingPointError, ImportError) as exc:
        print(f"lora_sft: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
