"""Relative paths in a config file resolve against the file's folder, from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlestar.config import load_config
from mlestar.config.paths import resolve_path

REPO = Path(__file__).parents[2]


def write(folder: Path, raw: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mle_star_config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_relative_paths_follow_the_config_file_not_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "project", {"project": {"runs_dir": "out/runs"},
                                        "data": {"source": "imagefolder", "path": "../images/train.tar",
                                                 "cache_dir": "cache"}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(Path("..") / "project" / "mle_star_config.yaml").config
    assert cfg.data.path == tmp_path / "images" / "train.tar"  # '..' taken from the config's folder
    assert cfg.data.cache_dir == tmp_path / "project" / "cache"
    assert cfg.project.runs_dir == tmp_path / "project" / "out" / "runs"
    assert load_config(path).config == cfg  # the same config whichever way the file is named


def test_a_table_path_resolves_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "p", {"data": {"source": "table", "path": "data/churn.csv", "target": "churned"}})
    monkeypatch.chdir(tmp_path)
    assert load_config(path.relative_to(tmp_path)).config.data.path == tmp_path / "p" / "data" / "churn.csv"


def test_absolute_paths_stay_and_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path / "p", {"project": {"runs_dir": "~/runs"},
                                  "data": {"source": "imagefolder", "path": "/srv/../srv/images"}})
    cfg = load_config(path).config
    assert cfg.project.runs_dir == tmp_path / "home" / "runs"
    assert cfg.data.path == Path("/srv/../srv/images")  # absolute: as written, not normalised


def test_an_unwritten_runs_dir_stays_under_the_working_directory(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "p", {"data": {"source": "digits"}})).config
    assert cfg.project.runs_dir == Path("runs")  # where status, show and dashboard look by default
    assert cfg.data.path is None and cfg.data.cache_dir is None


def test_a_bad_type_is_left_for_validation_to_name(tmp_path: Path) -> None:
    from mlestar.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.path: Input is not a valid path"):
        load_config(write(tmp_path, {"data": {"source": "imagefolder", "path": 3}}))


def test_legacy_configs_resolve_the_same_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "legacy", {"quality_gates": {}, "data": {"raw_data_path": "./images/raw/"},
                                       "paths": {"output_root": "./outputs/"}})
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path).config
    assert (cfg.data.source, cfg.data.path) == ("imagefolder", tmp_path / "legacy" / "images" / "raw")
    assert cfg.project.runs_dir == tmp_path / "legacy" / "outputs"


def test_examples_point_where_they_pointed_from_the_repo_root(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # any cwd: the paths are the examples' own
    for name in ("cifar10.yaml", "cifar10-quick.yaml"):
        path = load_config(REPO / "examples" / name).config.data.path
        assert path == REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
    assert load_config(REPO / "examples" / "template_project.yaml").config.project.runs_dir == REPO / "runs"


def test_resolve_path_normalises_like_cd(tmp_path: Path) -> None:
    assert resolve_path("a/./b/../c", tmp_path) == tmp_path / "a" / "c"
    assert resolve_path(Path("/x/y"), tmp_path) == Path("/x/y")
