"""A tiny random streaming Paraformer and a tiny CT-Transformer punctuation model, saved like downloads.

``build_tiny_streaming_paraformer`` writes the shape of ``paraformer-zh-streaming``
(``iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-online``): ``model: ParaformerStreaming``
with the chunked SANM encoder (``SANMEncoderChunkOpt``, ``pe_online`` position encoding, chunk 12/15,
stride 8/10, look-back factors 4 and 1), the SANM decoder with ``sanm_shfit: 5`` and the streaming fbank
front end (``WavFrontendOnline``); everything else is the tiny Paraformer of ``tiny_paraformer.py``.
``build_tiny_punc`` writes a CT-Transformer (``ct-punc``'s class and punctuation list) of width 32.
The weights are random, so the text is garbage; FunASR's own online decoding code runs for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.modules.asr.tiny_paraformer import TOKENS, WIDTH, tiny_config

PUNCTUATION = ["<unk>", "_", "，", "。", "？", "、"]


def streaming_config() -> dict[str, Any]:
    """The config.yaml of a tiny streaming Paraformer."""
    config = tiny_config("paraformer")
    config["model"] = "ParaformerStreaming"
    config["encoder"] = "SANMEncoderChunkOpt"
    config["encoder_conf"].update(
        {
            "input_layer": "pe_online",
            "chunk_size": [12, 15],
            "stride": [8, 10],
            "pad_left": [0, 0],
            "encoder_att_look_back_factor": [4, 4],
            "decoder_att_look_back_factor": [1, 1],
        }
    )
    config["decoder_conf"]["sanm_shfit"] = 5
    config["frontend"] = "WavFrontendOnline"
    config["frontend_conf"]["dither"] = 0.0
    return config


def punc_config() -> dict[str, Any]:
    """The config.yaml of a tiny CT-Transformer punctuation model over the tiny vocabulary."""
    encoder = {
        "input_size": WIDTH,
        "output_size": WIDTH,
        "attention_heads": 2,
        "linear_units": 64,
        "num_blocks": 1,
        "dropout_rate": 0.0,
        "positional_dropout_rate": 0.0,
        "attention_dropout_rate": 0.0,
        "input_layer": "pe",
        "pos_enc_class": "SinusoidalPositionEncoder",
        "normalize_before": True,
        "kernel_size": 11,
        "sanm_shfit": 0,
        "selfattention_layer_type": "sanm",
        "padding_idx": 0,
    }
    return {
        "model": "CTTransformer",
        "model_conf": {
            "ignore_id": 0,
            "embed_unit": WIDTH,
            "att_unit": WIDTH,
            "dropout_rate": 0.0,
            "punc_list": PUNCTUATION,
            "punc_weight": [1.0] * len(PUNCTUATION),
            "sentence_end_id": 3,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": encoder,
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>"},
    }


def _save(root: Path, config: dict[str, Any], seed: int, **sizes: int) -> Path:
    import funasr.models  # noqa: F401  (registers the model classes)
    import torch
    from funasr.register import tables

    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    torch.manual_seed(seed)
    model = tables.model_classes.get(config["model"])(**config, **config["model_conf"], vocab_size=len(TOKENS), **sizes)
    torch.save(model.state_dict(), root / "model.pt")
    return root


def build_tiny_streaming_paraformer(root: Path, seed: int = 0) -> Path:
    """Write a tiny random streaming Paraformer model directory at ``root`` and return it."""
    config = streaming_config()
    features = config["frontend_conf"]["n_mels"] * config["frontend_conf"]["lfr_m"]
    return _save(root, config, seed, input_size=features)


def build_tiny_punc(root: Path, seed: int = 0) -> Path:
    """Write a tiny random CT-Transformer punctuation model directory at ``root`` and return it."""
    return _save(root, punc_config(), seed)
