"""Tiny random FunASR Paraformers, saved like a downloaded ModelScope model directory.

The directory holds what ``funasr.AutoModel(model=<dir>)`` reads from a real one: ``config.yaml`` (the same
shape as ``iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch``'s: SANM encoder,
SANM decoder, CifPredictorV2, an LFR 7/6 fbank front end, a character tokenizer), ``tokens.txt`` and
``model.pt``. Only the sizes are tiny (2 blocks of width 32), so loading and decoding a clip takes well
under a second. The weights are random: the text is garbage, but the loading and inference code under
test is the real one. ``kind="seaco"`` builds a SeACo-Paraformer, the model that takes hotwords.

Used by ``tests/modules/asr`` and by any app test that needs a FunASR model (``build_tiny_paraformer``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# A character vocabulary that covers the game names the tests use, plus the special symbols.
TOKENS = ["<blank>", "<s>", "</s>", *"黑熊精黄风大圣眉悟空天命人神话金箍棒筋斗云三昧的在哪里怎么打", "<unk>"]
WIDTH = 32


def tiny_config(kind: str = "paraformer") -> dict[str, Any]:
    """The config.yaml of a tiny Paraformer (``paraformer``) or SeACo-Paraformer (``seaco``)."""
    if kind not in ("paraformer", "seaco"):
        raise ValueError(f"kind must be paraformer or seaco, got {kind!r}")
    config: dict[str, Any] = {
        "model": "Paraformer" if kind == "paraformer" else "SeacoParaformer",
        "model_conf": {
            "ctc_weight": 0.0,
            "lsm_weight": 0.1,
            "length_normalized_loss": True,
            "predictor_weight": 1.0,
            "predictor_bias": 1,
            "sampling_ratio": 0.75,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": {
            "output_size": WIDTH,
            "attention_heads": 2,
            "linear_units": 64,
            "num_blocks": 2,
            "dropout_rate": 0.0,
            "positional_dropout_rate": 0.0,
            "attention_dropout_rate": 0.0,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {
            "attention_heads": 2,
            "linear_units": 64,
            "num_blocks": 2,
            "dropout_rate": 0.0,
            "positional_dropout_rate": 0.0,
            "self_attention_dropout_rate": 0.0,
            "src_attention_dropout_rate": 0.0,
            "att_layer_num": 2,
            "kernel_size": 11,
            "sanm_shfit": 0,
        },
        "predictor": "CifPredictorV2",
        "predictor_conf": {"idim": WIDTH, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
        "frontend": "WavFrontend",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": 80,
            "frame_length": 25,
            "frame_shift": 10,
            "lfr_m": 7,
            "lfr_n": 6,
        },
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
        "normalize": None,
    }
    if kind == "seaco":
        # SeACo's bias encoder reads hotwords through the decoder's embedding, so its width is the model's.
        config["model_conf"].update(
            {
                "inner_dim": WIDTH,
                "bias_encoder_type": "lstm",
                "seaco_decoder": "ParaformerSANMDecoder",
                "seaco_decoder_conf": {
                    "attention_heads": 2,
                    "linear_units": 64,
                    "num_blocks": 1,
                    "dropout_rate": 0.0,
                    "positional_dropout_rate": 0.0,
                    "self_attention_dropout_rate": 0.0,
                    "src_attention_dropout_rate": 0.0,
                    "kernel_size": 21,
                    "sanm_shfit": 0,
                    "use_output_layer": False,
                    "wo_input_layer": True,
                },
                "NO_BIAS": len(TOKENS) - 1,
            }
        )
    return config


def build_tiny_paraformer(root: Path, kind: str = "paraformer", seed: int = 0) -> Path:
    """Write a tiny random Paraformer model directory at ``root`` and return it."""
    import funasr.models  # noqa: F401  (registers the model classes)
    import torch
    from funasr.register import tables

    config = tiny_config(kind)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    conf = {**config, **config["model_conf"]}
    conf.update(vocab_size=len(TOKENS), input_size=config["frontend_conf"]["n_mels"] * config["frontend_conf"]["lfr_m"])
    torch.manual_seed(seed)
    model = tables.model_classes.get(config["model"])(**conf)
    torch.save(model.state_dict(), root / "model.pt")
    return root
