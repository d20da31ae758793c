"""``reprokit sweep FILE --show``: the study's trials ranked by the objective, across parent commits.

The study holds every trial of the sweep whatever commit it ran on and whichever worker ran it,
so the ranking spans parent commits (``dvc exp show --sort-by`` ranks within one) and clones.
Below the table: the best trial's tuning objective beside its validation metrics, which come
from its promoted run (``--promote``: the best params trained on the full training split and
scored on the validation split). A sweep whose objective is the validation split
(``tune_fraction: 0``) is flagged optimistic: the sampler chose by the numbers one would report.
"""

from __future__ import annotations

import math
from typing import Any

from reprokit.tune.study import counts
from reprokit.tune.sweep_file import Sweep

__all__ = ["ranked", "render", "objective_note", "page_data"]


def _value(t: Any) -> float | None:
    if t.value is not None:
        return t.value
    steps = t.intermediate_values
    return steps[max(steps)] if steps else None  # a pruned trial: its last reported value


def ranked(trials: list[Any], direction: str) -> list[Any]:
    """Complete trials by value (best first), then pruned (by last value), failed, running, waiting."""
    from optuna.trial import TrialState as S

    order = {S.COMPLETE: 0, S.PRUNED: 1, S.FAIL: 2, S.RUNNING: 3, S.WAITING: 4}
    sign = -1.0 if direction == "maximize" else 1.0

    def key(t: Any) -> tuple:
        v = _value(t)
        return order[t.state], (sign * v if v is not None and math.isfinite(v) else math.inf), t.number

    return sorted((t for t in trials if not t.user_attrs.get("discarded")), key=key)


def objective_note(sweep: Sweep) -> str:
    if sweep.optimistic:
        return (
            f"{sweep.metric} on the VALIDATION split (tune_fraction: 0): OPTIMISTIC, the sampler chose by the "
            "numbers you would report"
        )
    return (
        f"{sweep.metric} on the tuning split ({sweep.tune_fraction:g} of the training labels, class-disjoint, "
        "never trained on); the validation split is never seen by the sampler"
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ranked_rows(sweep: Sweep, study: Any) -> list[tuple[int | None, Any, str]]:
    """(rank or None, trial, note), best first: the rank counts complete trials that count."""
    out, rank = [], 0
    for t in ranked(study.get_trials(deepcopy=False), sweep.direction):
        a = t.user_attrs
        note = a.get("reason", "")
        if a.get("interrupted"):
            note = f"{note} (not counted; params asked again)"
        if t.state.name == "COMPLETE" and counts(t):
            rank += 1
        out.append((rank if t.state.name == "COMPLETE" else None, t, note))
    return out


def page_data(sweep: Sweep, study: Any, storage_text: str) -> dict[str, Any]:
    """What ``--show --html`` draws (``reprokit.visualize.sweep_page``'s plain-data contract)."""
    return {
        "name": sweep.name,
        "metric": sweep.metric,
        "direction": sweep.direction,
        "objective": objective_note(sweep),
        "storage": storage_text,
        "params": [{"key": p.key, "kind": p.kind, "log": p.log} for p in sweep.space],
        "trials": [
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "value": _value(t),
                "params": dict(t.params),
                "experiment": t.user_attrs.get("exp_name", "-"),
                "rank": rank,
                "note": note,
            }
            for rank, t, note in _ranked_rows(sweep, study)
        ],
    }


def render(sweep: Sweep, study: Any, storage_text: str) -> str:
    keys = [p.key for p in sweep.space]
    header = ["rank", "trial", "state", sweep.metric, *keys, "experiment", "parent", "note"]
    rows = [header]
    listed = _ranked_rows(sweep, study)
    trials = [t for _, t, _ in listed]
    for rank, t, note in listed:
        a = t.user_attrs
        rows.append(
            [
                "-" if rank is None else str(rank),
                str(t.number),
                t.state.name.lower(),
                _cell(_value(t)),
                *(_cell(t.params.get(k)) for k in keys),
                a.get("exp_name", "-"),
                (a.get("baseline") or "-")[:7],
                note,
            ]
        )
    out = [
        f"sweep {sweep.name}: study in {storage_text}; objective: {sweep.direction} {objective_note(sweep)}",
        _table(rows),
    ]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if not complete:
        out.append("best: none yet (no trial has completed)")
        return "\n".join(out)
    best = complete[0]
    where = "validation split (optimistic)" if sweep.optimistic else "tuning split"
    out.append(
        f"best: trial {best.number} ({best.user_attrs.get('exp_name')}): {sweep.metric} = {best.value:.4f} "
        f"on the {where}; params: " + " ".join(f"{k}={_cell(best.params[k])}" for k in keys)
    )
    promoted = study.user_attrs.get("promoted") or {}
    if promoted.get("trial") == best.number and promoted.get("metrics"):
        metrics = promoted["metrics"]
        side = [["metric", f"tuning (trial {best.number})", f"validation ({promoted['exp_name']})"]]
        tuning = best.user_attrs.get("metrics") or {}
        for name in metrics:
            side.append([name, _cell(tuning.get(name)), _cell(metrics[name])])
        out.append("the best params retrained on the full training split (`--promote`), side by side:")
        out.append(_table(side))
    elif not sweep.optimistic:
        out.append(
            f"validation metrics: not measured yet; `reprokit sweep {sweep.path} --promote` retrains the best "
            "params on the full training split and scores the validation split"
        )
    return "\n".join(out)
