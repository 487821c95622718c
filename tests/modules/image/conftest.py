"""The tiny random Stable Diffusion fixtures for every image test (built once per session)."""

from collections.abc import Iterator

import pytest

from tests.modules.image.tiny_sd import (  # noqa: F401
    tiny_lora_file,
    tiny_sd_dir,
    tiny_sd_flagging_dir,
    tiny_sd_safety_dir,
    tiny_sdxl_dir,
)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: one thread renders in 0.1 s, two fight for minutes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
