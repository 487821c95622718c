"""Drawing: a request -> progress steps and a picture (Stable Diffusion + LoRA), behind the ImageGenerator seam."""

from modules.image.base import GeneratedImage, ImageGenerator, ImageProgress, ImageRequest

__all__ = ["GeneratedImage", "ImageGenerator", "ImageProgress", "ImageRequest"]
