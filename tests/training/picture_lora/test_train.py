import json

import numpy as np
import pytest
from PIL import Image

from modules.image.diffusers_gen import DiffusersGenerator, lora_metadata
from modules.image.settings import ImageSettings
from training.picture_lora.train import (
    LoraTrainConfig,
    LoraTrainError,
    TrainingExample,
    load_examples,
    main,
    parse_args,
    train_lora,
)


def pictures(folder, names=("wukong_snow_1.png", "wukong_staff.jpg", "temple-night (2).png"), size=(80, 96)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def config(base, images, output, **overrides) -> LoraTrainConfig:
    values = {"steps": 2, "resolution": 64, "learning_rate": 0.05, "rank": 4, "device": "cpu", **overrides}
    return LoraTrainConfig(base, images, output, **values)


def test_two_steps_make_a_lora_the_generator_loads_and_that_changes_the_picture(tiny_sd_dir, tmp_path):
    images = pictures(tmp_path / "imgs")
    seen = []
    result = train_lora(config(tiny_sd_dir, images, tmp_path / "out" / "me.safetensors"), on_progress=seen.append)
    assert [p.step for p in seen] == [1, 2] and all(np.isfinite(p.loss) for p in seen)
    assert result.output.is_file() and result.images == 3 and result.steps == 2
    meta = lora_metadata(result.output)
    assert meta["wulewule_trigger_words"] == "dstnd_one" and meta["wulewule_steps"] == "2"
    assert json.loads(meta["wulewule_settings"])["rank"] == "4"
    assert not list((tmp_path / "out").glob("tmp*"))  # the temporary folder is gone

    gen = DiffusersGenerator(ImageSettings(model=str(tiny_sd_dir), width=64, height=64, steps=2), tmp_path)
    request = gen.request_for("dstnd_one, wukong", seed=3)
    before = np.asarray(list(gen.generate(request))[-1].image, dtype=np.int16)
    gen.load_lora(result.output, scale=1.0)
    assert gen.trigger_words == "dstnd_one"
    after = np.asarray(list(gen.generate(request))[-1].image, dtype=np.int16)
    assert np.abs(after - before).max() > 0


def test_checkpoints_and_the_overwrite_guard(tiny_sd_dir, tmp_path):
    images = pictures(tmp_path / "imgs", names=("a.png",))
    out = tmp_path / "l.safetensors"
    result = train_lora(config(tiny_sd_dir, images, out, steps=3, save_every=2, random_flip=True, center_crop=False))
    assert result.checkpoints == (tmp_path / "l-step2.safetensors",)
    assert lora_metadata(result.checkpoints[0])["wulewule_steps"] == "2"
    with pytest.raises(LoraTrainError, match="--overwrite"):
        train_lora(config(tiny_sd_dir, images, out))
    assert train_lora(config(tiny_sd_dir, images, out, overwrite=True, steps=1)).steps == 1


def test_captions_from_metadata_captions_txt_sidecars_and_names(tmp_path):
    folder = pictures(tmp_path / "a", names=("one.png", "two.png", "three_monkey_4.png", "four.png"))
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "one.png", "text": "in snow"}) + "\n")
    (folder / "captions.txt").write_text("# comment\ntwo.png\tdstnd_one holding a staff\n")
    (folder / "four.txt").write_text("at the temple")
    examples = {e.image.name: e.caption for e in load_examples(folder, "dstnd_one")}
    assert examples == {
        "four.png": "dstnd_one, at the temple",
        "one.png": "dstnd_one, in snow",
        "three_monkey_4.png": "dstnd_one, three monkey",
        "two.png": "dstnd_one holding a staff",  # the trigger already there is not repeated
    }
    assert all(isinstance(e, TrainingExample) for e in load_examples(folder, "x"))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda f: None, "no pictures"),
        (lambda f: (pictures(f), (f / "metadata.jsonl").write_text("{not json}\n")), "metadata.jsonl line 1"),
        (lambda f: (pictures(f), (f / "captions.txt").write_text("just words\n")), "captions.txt line 1"),
        (lambda f: (pictures(f), (f / "captions.txt").write_text("ghost.png\ta ghost\n")), "ghost.png"),
    ],
)
def test_bad_picture_folders_are_explained(tmp_path, setup, message):
    folder = tmp_path / "imgs"
    folder.mkdir()
    setup(folder)
    with pytest.raises(LoraTrainError, match=message):
        load_examples(folder, "dstnd_one")


def test_unusable_pictures_and_settings_are_refused(tiny_sd_dir, tiny_sdxl_dir, tmp_path):
    small = pictures(tmp_path / "small", names=("tiny.png",), size=(32, 32))
    with pytest.raises(LoraTrainError, match="at least 64 px"):
        train_lora(config(tiny_sd_dir, small, tmp_path / "x.safetensors"))
    broken = pictures(tmp_path / "broken", names=("ok.png",))
    (broken / "bad.png").write_text("not an image")
    with pytest.raises(LoraTrainError, match="cannot read picture"):
        train_lora(config(tiny_sd_dir, broken, tmp_path / "x.safetensors"))
    images = pictures(tmp_path / "imgs")
    with pytest.raises(LoraTrainError, match=r"SD 1\.5 LoRAs only"):
        train_lora(config(tiny_sdxl_dir, images, tmp_path / "x.safetensors"))
    with pytest.raises(LoraTrainError, match="python -m app download image"):
        train_lora(config(tmp_path / "nowhere", images, tmp_path / "x.safetensors"))
    with pytest.raises(LoraTrainError, match=r"--rank.*--output must end in \.safetensors"):
        train_lora(config(tiny_sd_dir, images, tmp_path / "x.pt", rank=0))
    with pytest.raises(LoraTrainError, match="--mixed-precision needs a GPU"):
        train_lora(config(tiny_sd_dir, images, tmp_path / "x.safetensors", mixed_precision="fp16"))


def test_command_line(tiny_sd_dir, tmp_path, capsys):
    images = pictures(tmp_path / "imgs", names=("a.png",))
    out = tmp_path / "cli.safetensors"
    args = ["--base-model", str(tiny_sd_dir), "--images", str(images), "--output", str(out)]
    args += ["--steps", "1", "--resolution", "64", "--rank", "2", "--alpha", "4", "--trigger", "wk", "--device", "cpu"]
    parsed = parse_args(args)
    assert (parsed.rank, parsed.alpha, parsed.trigger, parsed.center_crop) == (2, 4.0, "wk", True)
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "step 1/1" in printed and f"image.lora.path={out}" in printed
    assert lora_metadata(out)["wulewule_trigger_words"] == "wk"
    assert main([*args[:6], "--output", str(tmp_path / "y.safetensors"), "--trigger", "a,b"]) == 2
    assert "error: --trigger" in capsys.readouterr().err
