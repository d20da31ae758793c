"""visualize: draw the worst queries (by visualize.metric) with their retrieved items, and their Grad-CAM."""

from __future__ import annotations

import sys
from pathlib import Path

from reprokit.core.config import Config, load_config
from reprokit.core.console import shown_path, summary
from reprokit.core.errors import GradCamError
from reprokit.core.layout import RunsDir, VisualizeDir
from reprokit.core.stage_deps import require_stage_deps, stage_params
from reprokit.core.stage_runner import record_params, run_main, stage_parser
from reprokit.data.images import ImageDataset
from reprokit.data.source import load_dataset, scored_rows
from reprokit.train.checkpoint import load_model
from reprokit.visualize.gradcam import resolve_layer
from reprokit.visualize.gradcam_figure import draw_gradcam, draw_no_gradcam
from reprokit.visualize.worst_queries import draw_worst_queries, read_per_query

__all__ = ["run", "main", "gradcam"]

_RUNS = RunsDir()  # the project's run folder: the paths' defaults


def gradcam(cfg: Config, model_path: Path, pq, val_df, val_paths, out: Path) -> str:
    """Draw the Grad-CAM figure; when the model allows none, a figure saying why. Returns what was written."""
    model, _ = load_model(model_path)  # a checkpoint that does not load fails the stage, as it fails validate
    try:
        layer = resolve_layer(model, cfg.visualize.gradcam_layer)
        images = ImageDataset.from_frame(val_df, val_paths, cfg.data.image_size, cfg.data.image_mode)
        draw_gradcam(pq, val_df, images, model, layer, cfg.visualize, cfg.validate.distance, out)
    except GradCamError as exc:
        # The worst-queries figure stands; the declared output says why there is no Grad-CAM.
        reason = exc.one_line()
        draw_no_gradcam(reason, out)
        print(f"visualize: warning: no Grad-CAM: {reason}", file=sys.stderr)
        return f"no Grad-CAM -> {out}"
    return f"Grad-CAM at {layer.path} -> {out}"


def run(
    cfg: Config,
    *,
    per_query: str | Path = _RUNS.validate.per_query,
    model: str | Path = _RUNS.train.model,
    out: str | Path = _RUNS.visualize.root,
) -> None:
    """The stage's work: the worst queries of validate's table ``per_query`` and their Grad-CAM on the
    checkpoint ``model``, drawn into ``out``."""
    out_dir = VisualizeDir(out)
    df, paths, _ = load_dataset(cfg, check_images=False)  # validate already checked the images
    val_df, val_paths = scored_rows(cfg, df, paths)  # the split validate scored: per_query.tsv indexes its rows
    pq = read_per_query(Path(per_query))
    n = draw_worst_queries(pq, val_df, val_paths, cfg.visualize, out_dir.worst_queries)
    cams = gradcam(cfg, Path(model), pq, val_df, val_paths, out_dir.gradcam)
    record_params(out_dir.params, cfg, stage_params("visualize"))  # what DVC tracks for it: its params in dvc.yaml
    summary("visualize", f"{n} worst queries by {cfg.visualize.metric} -> {shown_path(out_dir.worst_queries)}; {cams}")


def main(argv: list[str] | None = None) -> None:
    """The stage's entry point (``argv``: its arguments; None: the command line's): errors become
    one line on stderr and exit code 1."""

    def stage() -> None:
        parser = stage_parser(
            "visualize", __doc__, per_query=_RUNS.validate.per_query, model=_RUNS.train.model, out=_RUNS.visualize.root
        )
        args = parser.parse_args(argv)
        require_stage_deps("visualize", args.params)  # first: every file it reads is a DVC dependency
        run(load_config(args.params), per_query=args.per_query, model=args.model, out=args.out)

    run_main(stage, "visualize", argv)
