"""xtuner configs for incremental pretraining and (Q)LoRA SFT, rendered from one template (render.py)."""
