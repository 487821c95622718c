"""DiffusersGenerator on tiny random pipelines loaded from disk with from_pretrained (the real path)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from modules.image.base import GeneratedImage, ImageGenerationError, ImageGenerator, ImageProgress, ImageRequest
from modules.image.diffusers_gen import DiffusersGenerator, trigger_words_from_metadata
from modules.image.settings import ImageSettings
from modules.model_files import ModelNotFoundError
from tests.modules.image.tiny_sd import write_random_lora


def make(model: Path, root: Path, **overrides) -> DiffusersGenerator:
    settings = ImageSettings(model=str(model), width=64, height=64, steps=2, device="cpu", **overrides)
    return DiffusersGenerator(settings, root)


def render(gen: DiffusersGenerator, request: ImageRequest) -> tuple[list[ImageProgress], GeneratedImage]:
    items = list(gen.generate(request))
    assert isinstance(items[-1], GeneratedImage)
    assert all(isinstance(i, ImageProgress) for i in items[:-1])
    return items[:-1], items[-1]


def pixels(result: GeneratedImage) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


@pytest.fixture(scope="module")
def gen(tiny_sd_dir, tmp_path_factory) -> DiffusersGenerator:
    return make(tiny_sd_dir, tmp_path_factory.mktemp("root"))


def test_full_render_64_in_2_steps(gen):
    assert isinstance(gen, ImageGenerator)
    request = gen.request_for("the Destined One in snow", seed=7)
    assert (request.steps, request.guidance, request.width, request.height) == (2, 7.0, 64, 64)
    steps, result = render(gen, request)
    assert [(s.step, s.total) for s in steps] == [(0, 2), (1, 2), (2, 2)]
    assert result.image.size == (64, 64)
    assert result.seed == 7 and result.request is request
    assert result.model == gen.settings.model and result.lora is None
    assert result.scheduler == "DPM++ 2M Karras" and not result.nsfw and result.elapsed_s > 0


def test_pipeline_is_loaded_once(gen):
    render(gen, gen.request_for("a", seed=1))
    pipe = gen._pipe
    render(gen, gen.request_for("b", seed=2))
    assert gen._pipe is pipe


def test_same_seed_same_picture_other_seed_another(gen):
    _, first = render(gen, gen.request_for("the Destined One", seed=11))
    _, again = render(gen, gen.request_for("the Destined One", seed=11))
    _, other = render(gen, gen.request_for("the Destined One", seed=12))
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))


def test_a_random_seed_is_reported_and_redraws_the_picture(gen):
    _, first = render(gen, gen.request_for("the Destined One"))
    assert isinstance(first.seed, int) and 0 <= first.seed < 2**32
    _, again = render(gen, gen.request_for("the Destined One", seed=first.seed))
    assert np.array_equal(pixels(first), pixels(again))


def test_lora_changes_the_picture_and_unloading_restores_it(tiny_sd_dir, tiny_lora_file, tmp_path):
    gen = make(tiny_sd_dir, tmp_path)
    request = gen.request_for("dstnd_one, the Destined One", seed=5)
    _, base = render(gen, request)
    gen.load_lora(tiny_lora_file, scale=1.0)
    assert gen.lora == "destined_one.safetensors:1" and gen.trigger_words == "dstnd_one"
    _, styled = render(gen, request)
    assert styled.lora == "destined_one.safetensors:1"
    assert np.abs(pixels(styled) - pixels(base)).max() > 10
    gen.unload_lora()
    _, restored = render(gen, request)
    assert np.array_equal(pixels(restored), pixels(base)) and restored.lora is None


def test_lora_from_settings_and_scale_zero_draws_like_the_base(tiny_sd_dir, tiny_lora_file, tmp_path):
    request = ImageRequest("x", seed=3, steps=2, width=64, height=64)
    _, base = render(make(tiny_sd_dir, tmp_path), request)
    zero = make(tiny_sd_dir, tmp_path, lora={"path": str(tiny_lora_file), "scale": 0.0})
    _, drawn = render(zero, request)
    assert zero.lora == "destined_one.safetensors:0"
    assert np.abs(pixels(drawn) - pixels(base)).max() <= 1


def test_trigger_words_config_wins_over_metadata(tiny_sd_dir, tiny_lora_file, tmp_path):
    gen = make(tiny_sd_dir, tmp_path, lora={"path": str(tiny_lora_file), "trigger_words": "wukong_style"})
    assert gen.trigger_words == "wukong_style"
    assert make(tiny_sd_dir, tmp_path).trigger_words == ""


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"wulewule_trigger_words": "dstnd_one"}, "dstnd_one"),
        ({"modelspec.trigger_phrase": "tmr"}, "tmr"),
        ({"ss_tag_frequency": json.dumps({"10_wukong": {"dstnd": 12, "snow": 3, "staff": 5}})}, "dstnd"),
        ({"ss_tag_frequency": json.dumps({"a": {"dstnd": 4, "monkey": 2}, "b": {"dstnd": 6, "monkey": 6}})}, "dstnd"),
        ({"ss_tag_frequency": json.dumps({"a": {"dstnd": 4, "snow": 1}, "b": {"monkey": 7, "dstnd": 2}})}, "monkey"),
        ({"ss_tag_frequency": "not json"}, ""),
        ({}, ""),
    ],
)
def test_trigger_words_from_metadata(meta, words):
    assert trigger_words_from_metadata(meta) == words


def test_closing_the_generator_stops_between_steps(tiny_sd_dir, tmp_path):
    gen = make(tiny_sd_dir, tmp_path)
    gen.load()
    calls = []
    hook = gen._pipe.unet.register_forward_hook(lambda *_: calls.append(1))
    try:
        stream = gen.generate(ImageRequest("x", seed=1, steps=40, width=64, height=64))
        assert next(stream) == ImageProgress(0, 40)
        assert next(stream) == ImageProgress(1, 40)
        stream.close()  # returns once the worker has left the denoising loop
        done = len(calls)
        time.sleep(0.3)
        assert done == len(calls) and done < 40
    finally:
        hook.remove()
    # The render lock was released: the next picture starts at once.
    _, result = render(gen, ImageRequest("y", seed=2, steps=2, width=64, height=64))
    assert result.image.size == (64, 64)


def test_cancel_event_stops_the_render(gen):
    cancel = threading.Event()
    items = []
    for item in gen.generate(ImageRequest("x", seed=1, steps=40, width=64, height=64), cancel=cancel):
        items.append(item)
        if isinstance(item, ImageProgress) and item.step == 2:
            cancel.set()
    assert not any(isinstance(i, GeneratedImage) for i in items)
    assert 2 <= items[-1].step < 40


def test_cancel_set_before_the_start_draws_nothing(gen):
    cancel = threading.Event()
    cancel.set()
    assert list(gen.generate(ImageRequest("x", steps=2, width=64, height=64), cancel=cancel)) == []


def test_two_players_at_once_both_get_their_picture(gen):
    results: dict[int, GeneratedImage] = {}

    def draw(seed: int) -> None:
        results[seed] = list(gen.generate(gen.request_for("x", seed=seed)))[-1]

    threads = [threading.Thread(target=draw, args=(s,)) for s in (21, 22)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(results) == {21, 22}
    _, alone = render(gen, gen.request_for("x", seed=21))
    assert np.array_equal(pixels(results[21]), pixels(alone))


def test_sdxl_family_renders(tiny_sdxl_dir, tmp_path):
    gen = make(tiny_sdxl_dir, tmp_path, family="sdxl", scheduler="euler_a")
    _, result = render(gen, gen.request_for("x", seed=1))
    assert result.image.size == (64, 64) and result.scheduler == "Euler a"


@pytest.mark.parametrize(("choice", "label"), [("ddim", "DDIM"), ("euler_a", "Euler a"), ("default", "DDIMScheduler")])
def test_scheduler_from_settings(tiny_sd_dir, tmp_path, choice, label):
    gen = make(tiny_sd_dir, tmp_path, scheduler=choice)
    _, result = render(gen, gen.request_for("x", seed=1))
    assert result.scheduler == label


def test_safety_checker_kept_when_shipped_and_on(tiny_sd_safety_dir, tmp_path):
    kept = make(tiny_sd_safety_dir, tmp_path)
    kept.load()
    assert kept._pipe.safety_checker is not None
    dropped = make(tiny_sd_safety_dir, tmp_path, safety_checker=False)
    dropped.load()
    assert dropped._pipe.safety_checker is None


def test_a_flagged_picture_is_reported(tiny_sd_flagging_dir, tmp_path):
    _, result = render(make(tiny_sd_flagging_dir, tmp_path), ImageRequest("x", seed=1, steps=2, width=64, height=64))
    assert result.nsfw and pixels(result).max() == 0  # the pipeline blanks what its checker flags


def test_fast_path_uses_the_lcm_lora_and_fast_settings(tiny_sd_dir, tiny_lora_file, tmp_path):
    fast_lora = write_random_lora(tiny_sd_dir, tmp_path / "lcm" / "pytorch_lora_weights.safetensors", seed=9)
    gen = make(
        tiny_sd_dir,
        tmp_path,
        fast=True,
        fast_lora=str(fast_lora.parent),
        fast_steps=3,
        lora={"path": str(tiny_lora_file)},
    )
    assert gen.fast and gen.steps == 3 and gen.guidance == 1.5
    request = gen.request_for("x", seed=1)
    assert (request.steps, request.guidance) == (3, 1.5)
    steps, result = render(gen, request)
    assert len(steps) == 4 and result.scheduler == "LCM"
    assert set(gen._pipe.get_list_adapters()["unet"]) == {"fast", "style"}
    gen.unload_lora()
    assert gen._pipe.get_list_adapters()["unet"] == ["fast"]
    render(gen, request)


def test_fast_auto_is_on_for_cpu_only_with_a_fast_lora(tiny_sd_dir, tiny_lora_file, tmp_path):
    assert not make(tiny_sd_dir, tmp_path).fast
    assert make(tiny_sd_dir, tmp_path, fast_lora=str(tiny_lora_file)).fast
    assert not make(tiny_sd_dir, tmp_path, fast_lora=str(tiny_lora_file), fast="false").fast


def test_fast_true_without_a_fast_lora_is_an_error(tiny_sd_dir, tmp_path):
    with pytest.raises(ImageGenerationError, match=r"image\.fast_lora"):
        make(tiny_sd_dir, tmp_path, fast=True)


def test_cpu_plan(tiny_sd_dir, tmp_path, caplog):
    plan = make(tiny_sd_dir, tmp_path).plan
    assert (plan.device, plan.dtype, plan.cpu_offload, plan.attention_slicing, plan.vae_tiling) == (
        "cpu",
        "float32",
        False,
        False,
        True,
    )
    with caplog.at_level(logging.WARNING):
        assert not make(tiny_sd_dir, tmp_path, cpu_offload="true").plan.cpu_offload
    assert "cpu_offload" in caplog.text


def test_cuda_without_a_gpu_is_a_clear_error(tiny_sd_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    gen = DiffusersGenerator(ImageSettings(model=str(tiny_sd_dir), device="cuda"), tmp_path)
    with pytest.raises(ImageGenerationError, match=r"image\.device"):
        list(gen.generate(ImageRequest("x", steps=1, width=64, height=64)))


@pytest.mark.parametrize("spec", ["models/nowhere", "someone/not-downloaded-sd"])
def test_missing_model_names_the_key_and_the_fix(spec, tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        DiffusersGenerator(ImageSettings(model=spec), tmp_path)
    assert "image.model" in str(err.value) and "python -m app download image" in str(err.value)


def test_a_single_checkpoint_file_or_a_plain_folder_is_refused(tmp_path):
    (tmp_path / "sd15.safetensors").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    for spec, words in (("sd15.safetensors", "single checkpoint"), ("folder", "model_index.json")):
        with pytest.raises(ModelNotFoundError, match=words):
            DiffusersGenerator(ImageSettings(model=spec), tmp_path)


def test_family_mismatch_is_named(tiny_sdxl_dir, tmp_path):
    with pytest.raises(ImageGenerationError, match=r"image\.family=sdxl"):
        DiffusersGenerator(ImageSettings(model=str(tiny_sdxl_dir)), tmp_path)


def test_missing_lora_names_its_key(tiny_sd_dir, tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"image\.lora\.path"):
        make(tiny_sd_dir, tmp_path, lora={"path": "loras/nope.safetensors"})


def test_a_broken_lora_fails_the_render_with_a_message(tiny_sd_dir, tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"not_a_lora.weight": torch.zeros(2)}, tmp_path / "junk.safetensors")
    gen = make(tiny_sd_dir, tmp_path, lora={"path": "junk.safetensors"})
    with pytest.raises(ImageGenerationError, match=r"image.lora.path: junk.safetensors holds no LoRA weights"):
        list(gen.generate(gen.request_for("x")))


def test_a_corrupt_model_fails_with_a_message(tiny_sd_dir, tmp_path):
    broken = shutil.copytree(tiny_sd_dir, tmp_path / "broken")
    for weights in (broken / "unet").glob("*.safetensors"):
        weights.write_bytes(b"garbage")
    gen = make(broken, tmp_path)
    with pytest.raises(ImageGenerationError, match="could not load the image model"):
        list(gen.generate(gen.request_for("x")))


def test_out_of_memory_is_explained(gen):
    error = gen._describe_failure(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), gen.request_for("x"))
    assert "ran out of memory" in str(error) and "cpu_offload" in str(error)


def test_a_lora_file_that_is_not_safetensors_inside_fails_with_a_message(tiny_sd_dir, tmp_path):
    (tmp_path / "fake.safetensors").write_bytes(b"this is not a safetensors file")
    gen = make(tiny_sd_dir, tmp_path, lora={"path": "fake.safetensors"})
    with pytest.raises(ImageGenerationError, match=r"image\.lora\.path: could not load the LoRA fake\.safetensors"):
        list(gen.generate(gen.request_for("x")))
    with pytest.raises(ImageGenerationError, match=r"not a readable \.safetensors"):
        _ = gen.trigger_words
