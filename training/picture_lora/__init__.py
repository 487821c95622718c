"""LoRA fine-tuning of Stable Diffusion 1.5 on the player's pictures (the Destined One), for modules/image."""
