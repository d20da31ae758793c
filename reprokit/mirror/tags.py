"""Tags as each kind of backend wants them.

Key/value backends (MLflow, TensorBoard/CSV files) get ``reprokit.run_id``, ``reprokit.run_name``,
the automatic tags (``git_commit``, ``git_branch``, ``git_dirty``, ``dvc_exp_name``) and the
user tags joined in ``reprokit.tags``. List-only backends (ClearML, W&B) get the user tags as
they are plus ``key:value`` strings for the automatic ones.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["key_value_tags", "flat_tags", "sweep_tags"]


def key_value_tags(run_id: str, run_name: str, user_tags: list[str], auto: Mapping[str, str]) -> dict[str, str]:
    out = {"reprokit.run_id": run_id, "reprokit.run_name": run_name}
    out.update(auto)
    out["reprokit.tags"] = ",".join(user_tags)
    return out


def flat_tags(user_tags: list[str], auto: Mapping[str, str]) -> list[str]:
    return list(dict.fromkeys([*user_tags, *(f"{k}:{v}" for k, v in auto.items())]))


def sweep_tags(sweep: str, trial: int | None, exp_name: str | None) -> dict[str, str]:
    """A sweep trial's tags: the sweep, the trial number (``promoted``: the best params retrained) and
    the DVC experiment (DVC names it in ``$DVC_EXP_NAME``; a trial's is ``<sweep>-<trial>``)."""
    out = {"sweep": sweep, "sweep_trial": "promoted" if trial is None else str(trial)}
    exp = exp_name or (f"{sweep}-{trial}" if trial is not None else None)
    if exp:
        out["dvc_exp_name"] = exp
    return out
