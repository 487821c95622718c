from pathlib import Path

from modules.model_files import is_hub_id, locate_model


def test_hub_ids_and_paths_are_told_apart():
    assert is_hub_id("maidalun1020/bce-embedding-base_v1")
    assert not is_hub_id("./models/x")
    assert not is_hub_id("/abs/path")
    assert not is_hub_id("models/a/b")


def test_existing_local_path(tmp_path: Path):
    (tmp_path / "m").mkdir()
    loc = locate_model(str(tmp_path / "m"), tmp_path)
    assert loc.path == tmp_path / "m" and not loc.is_hub_id


def test_relative_path_resolves_against_the_repo(tmp_path: Path):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    assert locate_model("models/mine", tmp_path).path == tmp_path / "models" / "mine"


def test_hub_id_found_in_models_dir(tmp_path: Path):
    target = tmp_path / "models" / "org" / "name"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    loc = locate_model("org/name", tmp_path)
    assert loc.is_hub_id and loc.path == target


def test_hub_id_not_anywhere(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    loc = locate_model("nobody/nothing-here", tmp_path)
    assert loc.is_hub_id and loc.path is None
