"""A ChatTTS asset folder with random weights, in the real layout and formats, for tests and the benchmark.

``build_tiny_chattts(root)`` writes ``root/asset/``: Decoder, DVAE, Embed and Vocos safetensors built
from ChatTTS's own module classes and its config (their sizes are fixed by ``ChatTTS.config.Config``,
so they are full size), a GPT folder (``config.json`` + ``model.safetensors``, a LlamaModel whose depth
and width come from that config.json: a shallow one here; its hidden size must stay the config's 768
because the embeddings feed it), and a BERT tokenizer whose vocabulary has the real size (21178) with
the characters to be synthesised and ChatTTS's control tokens ([spk_emb], [speed_5], [break_0] …) as
added tokens. The weights are random: the audio is noise-like, but every loading and inference step
is ChatTTS's real code. The sha256 check fails on these files, as it should (verify_checksums=False).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

# Control tokens the ChatTTS code and prompts use. Refinement keeps tokens below [break_0] in the
# vocabulary, so the ones that may stay in refined text ([uv_break], [laugh] …) come first.
_KEPT_CONTROLS = ["[Stts]", "[Ptts]", "[Sbreak]", "[Pbreak]", "[spk_emb]", "[empty_spk]", "[uv_break]", "[v_break]",
                  "[lbreak]", "[laugh]"]  # fmt: skip
_PROMPT_CONTROLS = [
    *(f"[break_{i}]" for i in range(8)),
    "[Ebreak]",
    *(f"[oral_{i}]" for i in range(10)),
    *(f"[laugh_{i}]" for i in range(3)),
    *(f"[speed_{i}]" for i in range(10)),
]
DEFAULT_TEXT = "黑熊精是第一回的最终头目，盘踞在黑风山。大圣来也！Black Myth Wukong 天命人 abcdefghijklmnopqrstuvwxyz"


def _save(module: object, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}  # type: ignore[attr-defined]
    save_file(state, str(path))


def build_tokenizer(out: Path, text: str, vocab_size: int) -> None:
    """A BertTokenizerFast with text's characters, padded to vocab_size with ChatTTS's controls at the end."""
    from tokenizers import AddedToken
    from transformers import BertTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    controls = _KEPT_CONTROLS + _PROMPT_CONTROLS
    chars = sorted({c for c in text.lower() if not c.isspace()} | set("，。、！？,.!? "))
    base = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[c for c in chars if c.strip()]]))
    filler = vocab_size - len(controls) - len(base)
    if filler < 0:
        raise ValueError(f"{len(base) + len(controls)} tokens do not fit a vocabulary of {vocab_size}")
    base += [f"[unused{i}]" for i in range(filler)]
    vocab = {token: i for i, token in enumerate(base)}
    tokenizer = BertTokenizerFast(vocab=vocab, tokenize_chinese_chars=True, do_lower_case=True)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in controls], special_tokens=True)
    if len(tokenizer) != vocab_size:
        raise AssertionError(f"tokenizer has {len(tokenizer)} tokens, expected {vocab_size}")
    tokenizer.save_pretrained(str(out))
    special = out / "special_tokens_map.json"
    if not special.exists():  # transformers 5 no longer writes it; ChatTTS's asset list names it
        special.write_text(
            json.dumps({"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                        "mask_token": "[MASK]", "additional_special_tokens": controls}, ensure_ascii=False),
            encoding="utf-8",
        )  # fmt: skip
    (out / "vocab.txt").unlink(missing_ok=True)  # the real asset folder carries tokenizer.json only


def build_tiny_chattts(
    root: Path, text: str = DEFAULT_TEXT, gpt_layers: int = 2, gpt_intermediate: int = 256, seed: int = 0
) -> Path:
    """Write root/asset/ (see the module docstring) and return root, the folder Chat.load takes.

    ``gpt_layers=20, gpt_intermediate=3072`` gives the released GPT's size (for cost estimates).
    """
    import torch
    from ChatTTS.config import Config
    from ChatTTS.model import DVAE, Embed
    from transformers import LlamaConfig, LlamaModel
    from vocos import Vocos
    from vocos.pretrained import instantiate_class

    torch.manual_seed(seed)
    config = Config()
    asset = root / "asset"
    (asset / "gpt").mkdir(parents=True, exist_ok=True)

    vocos = Vocos(
        feature_extractor=instantiate_class(args=(), init=asdict(config.vocos.feature_extractor)),
        backbone=instantiate_class(args=(), init=asdict(config.vocos.backbone)),
        head=instantiate_class(args=(), init=asdict(config.vocos.head)),
    )
    _save(vocos, asset / "Vocos.safetensors")
    dvae = DVAE(
        decoder_config=asdict(config.dvae.decoder),
        encoder_config=asdict(config.dvae.encoder),
        vq_config=asdict(config.dvae.vq),
        dim=config.dvae.decoder.idim,
    )
    _save(dvae, asset / "DVAE.safetensors")
    _save(DVAE(decoder_config=asdict(config.decoder), dim=config.decoder.idim), asset / "Decoder.safetensors")
    embed = Embed(
        config.embed.hidden_size, config.embed.num_audio_tokens, config.embed.num_text_tokens, config.embed.num_vq
    )
    _save(embed, asset / "Embed.safetensors")

    gpt_config = LlamaConfig(
        hidden_size=config.gpt.hidden_size,  # must match the embeddings
        intermediate_size=gpt_intermediate,
        num_attention_heads=config.gpt.num_attention_heads,
        num_key_value_heads=config.gpt.num_attention_heads,
        num_hidden_layers=gpt_layers,
        max_position_embeddings=config.gpt.max_position_embeddings,
        vocab_size=8,  # ChatTTS drops the LlamaModel's own token embeddings
    )
    LlamaModel(gpt_config).save_pretrained(str(asset / "gpt"), safe_serialization=True)
    build_tokenizer(asset / "tokenizer", text, config.gpt.num_text_tokens)
    return root
