import shutil

import pytest

from modules.image.diffusers_gen import DiffusersGenerator
from modules.image.service import NO_IMAGE_MODEL, backend_status, create_generator
from modules.image.settings import ImageSettings
from modules.model_files import ModelNotFoundError


def test_no_model_means_no_generator_and_says_how_to_get_one(tmp_path):
    settings = ImageSettings(model="models/stable-diffusion-v1-5")
    assert create_generator(settings, tmp_path) is None
    status = backend_status(settings, tmp_path)
    assert not status.ok and status.model_path is None
    assert "python -m app download image" in status.detail and "image.model" in status.detail
    assert "python -m app download image" in NO_IMAGE_MODEL


def test_a_present_model_gives_an_unloaded_generator(tiny_sd_dir, tmp_path):
    settings = ImageSettings(model=str(tiny_sd_dir))
    gen = create_generator(settings, tmp_path)
    assert isinstance(gen, DiffusersGenerator) and gen._pipe is None  # loads on the first picture
    status = backend_status(settings, tmp_path)
    assert status.ok and status.model_path == tiny_sd_dir and status.backend == "diffusers"
    assert str(tiny_sd_dir) in status.detail


def test_a_hub_id_is_found_in_the_models_folder(tiny_sd_dir, tmp_path):
    shutil.copytree(tiny_sd_dir, tmp_path / "models" / "someone" / "tiny-sd")
    status = backend_status(ImageSettings(model="someone/tiny-sd"), tmp_path)
    assert status.ok and status.model_path == tmp_path / "models" / "someone" / "tiny-sd"


def test_explicit_backend_with_a_missing_model_raises(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"image\.model.*python -m app download image"):
        create_generator(ImageSettings(backend="diffusers", model="models/none"), tmp_path)


def test_a_missing_lora_is_reported_even_in_auto(tiny_sd_dir, tmp_path):
    settings = ImageSettings(model=str(tiny_sd_dir), lora={"path": "loras/missing.safetensors"})
    status = backend_status(settings, tmp_path)
    assert not status.ok and "image.lora.path" in status.detail
    with pytest.raises(ModelNotFoundError, match=r"image\.lora\.path"):
        create_generator(settings, tmp_path)


def test_status_names_the_loras(tiny_sd_dir, tiny_lora_file, tmp_path):
    settings = ImageSettings(model=str(tiny_sd_dir), lora={"path": str(tiny_lora_file)}, fast_lora=str(tiny_lora_file))
    detail = backend_status(settings, tmp_path).detail
    assert "LoRA destined_one.safetensors" in detail and "LCM-LoRA destined_one.safetensors" in detail
