"""Drawing: a request -> progress steps and a picture (Stable Diffusion + LoRA), behind the ImageGenerator seam."""

from modules.image.base import GeneratedImage, ImageGenerationError, ImageGenerator, ImageProgress, ImageRequest

__all__ = ["GeneratedImage", "ImageGenerationError", "ImageGenerator", "ImageProgress", "ImageRequest"]
