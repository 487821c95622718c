"""A tiny random causal LM with a byte-level tokenizer and an InternLM2-style chat template.

    python tests/training/tiny_lm.py OUT_DIR

Runs in either environment — the app's (transformers 5) in-process, the training env's (transformers 4.48) as a
subprocess, because a tokenizer saved by transformers 5 does not load in 4.48. It imports nothing from the
project. The byte-level vocabulary covers every text (Chinese included) without a trained tokenizer; the chat
template is InternLM2's ``<|im_start|>role … <|im_end|>`` layout, which xtuner's ``internlm2_chat`` prompt
template also writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_lm(out: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a random LlamaForCausalLM and its tokenizer to ``out``; returns ``out``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate([*SPECIALS, *sorted(pre_tokenizers.ByteLevel.alphabet())])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(SPECIALS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
        chat_template=CHAT_TEMPLATE,
    )
    tokenizer.save_pretrained(out)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=vocab["<s>"],
        eos_token_id=[vocab["</s>"], vocab["<|im_end|>"]],
        pad_token_id=vocab["</s>"],
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/training/tiny_lm.py OUT_DIR")
    print(build_tiny_lm(Path(sys.argv[1])))
