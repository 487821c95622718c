import re

import pytest
from PIL import Image

from modules.image.base import GeneratedImage, ImageRequest
from modules.image.png import a1111_parameters, read_png_metadata, save_png


def result(prompt="dstnd_one, the Destined One in snow", lora="destined_one.safetensors:0.8") -> GeneratedImage:
    request = ImageRequest(
        prompt, negative_prompt="lowres, 模糊", seed=None, steps=4, guidance=1.5, width=64, height=72
    )
    image = Image.new("RGB", (64, 72), (200, 30, 30))
    return GeneratedImage(image, request, seed=1234, model="models/stable-diffusion-v1-5", lora=lora, scheduler="LCM")


def test_round_trip(tmp_path):
    path = save_png(result(prompt="天命人 in snow, 水墨"), tmp_path)
    meta = read_png_metadata(path)
    assert meta["prompt"] == "天命人 in snow, 水墨" and meta["negative_prompt"] == "lowres, 模糊"
    assert (meta["seed"], meta["steps"], meta["guidance"], meta["width"], meta["height"]) == (1234, 4, 1.5, 64, 72)
    assert meta["model"] == "models/stable-diffusion-v1-5" and meta["lora"] == "destined_one.safetensors:0.8"
    assert meta["scheduler"] == "LCM" and meta["software"] == "wulewule"
    with Image.open(path) as img:
        assert img.size == (64, 72) and img.getpixel((0, 0)) == (200, 30, 30)


def test_a1111_parameters_chunk():
    text = a1111_parameters(result())
    prompt, negative, settings = text.split("\n")
    assert prompt == "dstnd_one, the Destined One in snow <lora:destined_one:0.8>"
    assert negative == "Negative prompt: lowres, 模糊"
    assert settings == ("Steps: 4, Sampler: LCM, CFG scale: 1.5, Seed: 1234, Size: 64x72, Model: stable-diffusion-v1-5")
    no_lora = a1111_parameters(result(lora=None))
    assert "<lora:" not in no_lora


def test_file_names_never_come_from_the_prompt(tmp_path):
    first = save_png(result(prompt="../../etc/passwd 天命人"), tmp_path)
    second = save_png(result(prompt="../../etc/passwd 天命人"), tmp_path)
    assert first.parent == tmp_path and second.parent == tmp_path and first != second
    assert re.fullmatch(r"\d{8}-\d{6}-1234-[0-9a-f]{6}\.png", first.name)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_chosen_name_stays_inside_the_folder(tmp_path):
    assert save_png(result(), tmp_path, name="../../evil name") == tmp_path / "evil_name.png"
    assert save_png(result(), tmp_path / "new", name="pic.PNG") == tmp_path / "new" / "pic.PNG"
    with pytest.raises(ValueError, match="usable file name"):
        save_png(result(), tmp_path, name="../..")


def test_reading_something_else_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such picture"):
        read_png_metadata(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(ValueError, match="not a picture"):
        read_png_metadata(tmp_path / "text.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.jpg")
    with pytest.raises(ValueError, match="not a PNG"):
        read_png_metadata(tmp_path / "photo.jpg")


def test_values_another_program_wrote_are_kept_as_text(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("seed", "random")
    info.add_text("parameters", "a cat\nSteps: 20")
    Image.new("RGB", (8, 8)).save(tmp_path / "a1111.png", pnginfo=info)
    assert read_png_metadata(tmp_path / "a1111.png") == {"seed": "random", "parameters": "a cat\nSteps: 20"}
