"""Training tests reuse the image tests' tiny pipeline and their one-thread setting."""

from tests.modules.image.conftest import one_torch_thread  # noqa: F401
from tests.modules.image.tiny_sd import tiny_sd_dir, tiny_sdxl_dir  # noqa: F401
