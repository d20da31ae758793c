"""The manual's snippets run as written.

The ```python blocks of the loggers guide's "## Track and visualize" section are joined in order into one
script, as a reader would run them one after the other, and run in a fresh interpreter in an
empty directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Track and visualize"


def section_text() -> str:
    text = (ROOT / "docs" / "guides" / "loggers.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    following = re.search(r"^## ", text[start + len(SECTION) :], flags=re.MULTILINE)
    return text[start : start + len(SECTION) + following.start()] if following else text[start:]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_section_shows_what_the_issue_asks_for():
    code = "\n".join(blocks(section_text(), "python"))
    for needle in (
        'self.log("some_value", self.global_step)',
        "self.log_dict(",
        "prog_bar=True",
        "reduce_fx=torch.max",
        "reduce_fx=torch.median",
        "reprokit.LightningModule",
    ):
        assert needle in code, needle
    assert any("tensorboard --logdir" in b for b in blocks(section_text(), "bash"))


@pytest.mark.slow
def test_python_snippets_run(tmp_path):
    text = section_text()
    script = "\n\n".join(blocks(text, "python"))
    assert script.strip(), "no ```python blocks in the section"
    (tmp_path / "snippets.py").write_text(script, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-W", "default", "snippets.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The printed progress-bar metrics hold the prog_bar value.
    assert "'train_loss'" in proc.stdout
    # What `tensorboard --logdir X` points at holds event files with the logged image and text.
    logdir = re.search(r"tensorboard --logdir (\S+)", text).group(1)
    events = list((tmp_path / logdir).rglob("events.out.tfevents.*"))
    assert events, f"no event files under {logdir}"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"some_value", "train_loss", "val_err", "val_err_max", "val_err_median"} <= set(tags["scalars"])
    assert [(i.width, i.height) for i in acc.Images("an_image")] == [(48, 32), (48, 32)]
    assert "some_text/text_summary" in tags["tensors"]
    # The CSV snippet: files instead of images/text, and exactly one warning about it.
    assert "media/images/an_image/0.png" in proc.stdout and "media/text/some_text/0.txt" in proc.stdout
    assert proc.stderr.count("CSVLogger cannot store images or text") == 1
    # ... and the training scalars are in its metrics.csv: the snippet's logging interval fits its batches.
    import csv

    tables = list((tmp_path / "csv_logs").rglob("metrics.csv"))
    assert len(tables) == 1, tables
    with open(tables[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    logged = {k for row in rows for k, v in row.items() if v not in ("", None)}
    assert {"train_loss", "some_value", "loss_x2", "val_err"} <= logged, sorted(logged)


@pytest.mark.parametrize("page", ["README.md", "docs/guides/train-a-real-model.md"])
def test_the_train_a_real_model_params_are_accepted_and_every_name_resolves(page):
    """The params block of "## Train a real model" loads as written, and each library name it uses exists."""
    import yaml

    from reprokit.core.config import config_from_dict
    from reprokit.train.library import AUGMENTATIONS, OPTIMIZERS, PML_LOSSES, PML_MINERS, SCHEDULERS, resolve

    text = (ROOT / page).read_text(encoding="utf-8")
    section = text[text.index("## Train a real model") :]
    following = re.search(r"^## ", section[3:], flags=re.MULTILINE)
    section = section[: following.start() + 3] if following else section
    (params,) = [yaml.safe_load(b) for b in blocks(section, "yaml")]
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, value in params.items():
        base[name] = {**base.get(name, {}), **value} if name != "model" else value
    t = config_from_dict(base).train
    resolve("train.optimizer.name", t.optimizer.name, OPTIMIZERS)
    resolve("train.scheduler.name", t.scheduler.name, SCHEDULERS)
    resolve("train.loss.name", t.loss.name, PML_LOSSES)
    resolve("train.miner.name", t.miner.name, PML_MINERS)
    for i, block in enumerate(t.augment):
        resolve(f"train.augment[{i}].name", block.name, AUGMENTATIONS)
