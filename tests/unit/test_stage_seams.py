"""Each stage is ``main(argv)`` (parse, check the deps, load the config, one line on error) over
``run(cfg, <paths>)`` (the work): a test, a notebook or the sweep hands ``run`` a Config object,
and ``main`` takes its arguments as a list as well as from the command line."""

from __future__ import annotations

import gc
import json

import pytest
import yaml

from reprokit.core.config import config_from_dict
from reprokit.core.layout import RunsDir
from reprokit.pipeline import prepare, validate, visualize
from reprokit.train.checkpoint import save_model
from reprokit.train.models import IMAGE_CHANNELS, build_model

# 12 source digits x 2 views: 8 labels to train on, 4 to validate.
SMALL = {"data": {"digits": {"n_source": 12, "views": 2}}, "train": {"n_labels": 4, "n_instances": 2}}


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    gc.unfreeze()  # run_main freezes the collector for a stage's short process: not for this one


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder without dvc.yaml (a notebook's): the digits, and an untrained model's checkpoint."""
    monkeypatch.chdir(tmp_path)
    cfg = config_from_dict(SMALL)
    prepare.run(cfg)
    model = build_model(cfg.model, IMAGE_CHANNELS[cfg.data.image_mode], cfg.data.image_size)
    save_model(RunsDir().train.model, model, cfg.model, cfg.data, in_channels=IMAGE_CHANNELS[cfg.data.image_mode])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(SMALL))
    return tmp_path


def test_run_takes_a_config_object_and_paths(project, capsys):
    cfg = config_from_dict(SMALL)
    assert len((project / "data/digits/df.csv").read_text().splitlines()) == 1 + 12 * 2
    validate.run(cfg, model=RunsDir().train.model, out=project / "scored")
    metrics = json.loads((project / "scored/metrics.json").read_text())
    assert set(metrics["overall"]) == set(cfg.validate.metric_names()) and metrics["n_queries"] == 4 * 2
    visualize.run(cfg, per_query=project / "scored/per_query.tsv", out=project / "drawn")
    assert (project / "drawn/worst_queries.png").stat().st_size > 0
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("validate: cmc@1=") for line in lines)
    assert any(line.startswith("visualize: ") and "worst queries by" in line for line in lines)


def test_main_with_argv_is_the_stage_and_writes_what_run_writes(project, capsys):
    cfg = config_from_dict(SMALL)
    validate.run(cfg, out=project / "by-run")
    with pytest.raises(SystemExit) as info:
        validate.main(["--params", "params.yaml", "--out", str(project / "by-main")])
    assert info.value.code == 0
    for name in ("metrics.json", "per_query.tsv", "params.yaml"):
        assert (project / "by-main" / name).read_bytes() == (project / "by-run" / name).read_bytes(), name


@pytest.mark.parametrize("verbose", [False, True])
def test_main_reports_a_bad_config_in_one_line_and_honours_verbose_in_argv(project, capsys, verbose):
    (project / "bad.yaml").write_text("seed: -1\n")
    with pytest.raises(SystemExit) as info:
        prepare.main(["--params", "bad.yaml", *(["--verbose"] if verbose else [])])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("prepare: error: seed must be an integer in [0, ")
    assert ("Traceback" in err) == verbose  # --verbose read from argv, not from sys.argv
