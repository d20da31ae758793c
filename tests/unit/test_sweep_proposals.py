"""Proposals depend on (seed, trial index) and the shared history, never on the worker (issue 30).

Two handles on one journal file, each with its own sampler built from the same sweep, stand in for
two workers (the controller's ask/suggest order; the real processes are in
tests/integration/test_sweep_distinct.py)."""

from __future__ import annotations

import pytest

from reprokit.core.errors import ConfigError
from reprokit.core.study_storage import open_storage
from reprokit.tune.components import SAMPLERS, Component, build_sampler, check_component
from reprokit.tune.proposals import (
    PROPOSAL_ATTR,
    derived_seed,
    grid_order,
    proposal_index,
    suggest_params,
    tpe_waits_for,
)
from reprokit.tune.sweep_file import Param

SPACE = (Param("lr", "float", low=1e-3, high=1e-2, log=True), Param("miner", "choice", choice=("all", "hard")))


def _worker(path, name: str, args: dict, space=SPACE, seed: int = 1):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = {p.key: list(p.choice) for p in space} if name == "grid" else {}
    sampler = build_sampler(Component(name, args), seed, {p.key: p.distribution() for p in space}, grid, "maximize")
    return optuna.create_study(
        study_name="s", storage=open_storage(str(path)), sampler=sampler, load_if_exists=True
    ), space


def _ask(study, space, index: int | None = None):
    """What the controller does: ask, record the proposal index, suggest every param."""
    trial = study.ask()
    if index is None:
        index = proposal_index(study.get_trials(deepcopy=False), trial.number)
    trial.set_user_attr(PROPOSAL_ATTR, index)
    suggest_params(trial, space)
    return trial


def _score(params) -> float:
    return -abs(params["lr"] - 3e-3) - (params["miner"] == "hard") * 1e-3


@pytest.mark.parametrize("name, args", [("random", {}), ("tpe", {"n_startup_trials": 2, "parallel": 2})])
def test_two_workers_interleaving_on_one_study_propose_distinct_params_the_lone_worker_s_set(tmp_path, name, args):
    a, space = _worker(tmp_path / "two.journal", name, args)
    b, _ = _worker(tmp_path / "two.journal", name, args)
    # a asks 0 and 1 and b asks 2 while nothing has finished; then all finish; b asks 3.
    ts = [_ask(a, space), _ask(a, space)]
    if name == "tpe":  # index 2 learns from index 0: not before it finished
        assert tpe_waits_for(b.get_trials(deepcopy=False), 2, 2, 2) == [ts[0].number]
        a.tell(ts[0], _score(ts[0].params))
        assert tpe_waits_for(b.get_trials(deepcopy=False), 2, 2, 2) is None
    ts.append(_ask(b, space))
    for t in ts:
        if not b.get_trials()[t.number].state.is_finished():
            b.tell(t.number, _score(t.params))
    ts.append(_ask(b, space))
    b.tell(ts[3], _score(ts[3].params))
    together = [t.params for t in b.get_trials()]
    assert len({tuple(p.items()) for p in together}) == 4  # distinct

    lone, _ = _worker(tmp_path / "one.journal", name, args)
    for _ in range(4):
        t = _ask(lone, space)
        lone.tell(t, _score(t.params))
    assert sorted(map(repr, together)) == sorted(map(repr, (t.params for t in lone.get_trials())))


def test_grid_point_i_is_the_seeded_order_s_and_a_point_already_taken_is_skipped(tmp_path):
    space = (Param("lr", "choice", choice=(0.001, 0.01)), Param("margin", "choice", choice=(0.2, 0.5)))
    order = grid_order({p.key: list(p.choice) for p in space}, 1)
    assert len({tuple(p.items()) for p in order}) == 4
    assert grid_order({p.key: list(p.choice) for p in space}, 1) == order  # the same order in every worker
    study, _ = _worker(tmp_path / "g.journal", "grid", {}, space=space)
    assert _ask(study, space).params == order[0]
    assert _ask(study, space, index=0).params == order[1]  # index 0 claimed again (a race): the next free point
    assert _ask(study, space).params == order[2]


def test_the_index_skips_re_asks_and_discarded_trials_and_seeds_differ_per_index(tmp_path):
    study, space = _worker(tmp_path / "i.journal", "random", {})
    t0 = _ask(study, space)
    t1 = _ask(study, space)
    t1.set_user_attr("discarded", True)
    study.tell(t1, state=__import__("optuna").trial.TrialState.FAIL)
    study.enqueue_trial(t0.params, user_attrs={"reasked_from": 0, PROPOSAL_ATTR: 0})
    trials = study.get_trials(deepcopy=False)
    assert proposal_index(trials, 3) == 1  # 0 proposed; 1 discarded; 2 a re-ask keeping index 0
    assert proposal_index(trials, 2) == 0
    assert len({derived_seed(1, i) for i in range(100)} | {derived_seed(2, 0)}) == 101


def test_tpe_parallel_must_be_a_positive_integer(tmp_path):
    check_component(tmp_path / "s.yaml", "sampler", {"name": "tpe", "args": {"parallel": 3}}, SAMPLERS)
    for bad in (0, "2", True):
        with pytest.raises(ConfigError, match=r"sampler.args.parallel must be an integer ≥ 1 .*; got"):
            check_component(tmp_path / "s.yaml", "sampler", {"name": "tpe", "args": {"parallel": bad}}, SAMPLERS)
    with pytest.raises(ConfigError, match="sampler.args for 'random' has unknown key 'parallel'"):
        check_component(tmp_path / "s.yaml", "sampler", {"name": "random", "args": {"parallel": 2}}, SAMPLERS)


def test_a_study_from_before_the_proposal_attribute_still_feeds_tpe(tmp_path):
    study, space = _worker(tmp_path / "old.journal", "tpe", {"n_startup_trials": 1})
    for _ in range(2):  # trials asked by an older reprokit: no `proposal` recorded
        trial = study.ask()
        suggest_params(trial, space)
        study.tell(trial, _score(trial.params))
    assert tpe_waits_for(study.get_trials(deepcopy=False), 2, 1, 1) is None
    assert _ask(study, space).user_attrs[PROPOSAL_ATTR] == 2
