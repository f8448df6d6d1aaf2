"""The frontier's in-process engine (``asympo_plugin/study/engine.py``): what it must share with a real cell.

Each test runs a few engine steps on the built-in task at a small batch (4 prompts x 4 responses), in this
process, against the installed verl: the cell's resolved config, the sampled policy version, the behavior
log-probs PPO-clip bypass reads, the loss verl's ``ppo_loss`` dispatches to, and the files the study reads.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch

from asympo_plugin.study import engine
from asympo_plugin.study.analysis import load_run, summarize
from asympo_plugin.study.matrix import FULL, METHODS, Cell
from asympo_plugin.study.runner import MARKER, REAL, cell_argv, is_finished, load_cell, sweep
from asympo_plugin.task import prepare
from asympo_plugin.task.prepare import RECIPE_KEY, weights_sha256

SMALL = replace(FULL, steps=4, batch_size=4, n=4, test_freq=2)


@pytest.fixture(scope="module")
def task():
    return prepare(log=lambda *a: None)


def make(task, tmp_path, method: str, staleness: int, lr: float = 5e-4):
    cell = Cell(METHODS[method], staleness, seed=1)
    cfg, _ = engine.engine_config(cell, replace(SMALL, lr=lr), task, cell.run_dir(tmp_path))
    return engine.Engine(cfg, staleness, seed=1)


def _same(state_a: dict, state_b: dict) -> bool:
    return all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_config_is_the_real_cells_resolved_config(task, tmp_path):
    e = make(task, tmp_path, "ppo_bypass", 1, lr=6.32e-4)
    actor = e.cfg.actor_rollout_ref.actor
    assert actor.policy_loss.loss_mode == "vanilla" and e.bypass and e.reads_old
    assert actor.optim.lr == pytest.approx(6.32e-4) and e.batch_size == 4 and e.n == 4
    assert e.cfg.actor_rollout_ref.rollout.calculate_log_probs is True
    a = make(task, tmp_path, "asympo", 1)
    # asympo-train's own translation of the loss (behavior-free, its aggregation) is what the engine trains with
    assert a.cfg.actor_rollout_ref.actor.policy_loss.loss_mode == "asympo" and not a.reads_old
    assert a.actor_cfg.loss_agg_mode == a.cfg.actor_rollout_ref.actor.loss_agg_mode != "token-mean"


def test_batch_t_is_sampled_by_version_t_minus_1_minus_staleness(task, tmp_path):
    e = make(task, tmp_path, "spo", 2)
    initial = e._snapshot()
    seen = []
    for t in range(1, 5):
        m = e.step(t)
        seen.append({k: v.clone() for k, v in e.sampler.state_dict().items()})
        assert m["asympo/staleness/mean"] == min(t - 1, 2)
    assert all(_same(initial, s) for s in seen[:3])  # versions 0, 0, 0
    assert not _same(initial, seen[3])  # step 4 samples version 1
    assert not _same(e._snapshot(), seen[3])  # ... while the actor is at version 3


def test_bypass_reads_the_samplers_log_probs_and_they_differ_from_the_actors(task, tmp_path, monkeypatch):
    from verl.workers.utils import losses

    e = make(task, tmp_path, "ppo_bypass", 1)
    captured = []
    real = losses.ppo_loss

    def spy(config, output, data, dp_group=None):
        captured.append(data["old_log_probs"].clone())
        return real(config, output, data, dp_group)

    monkeypatch.setattr(losses, "ppo_loss", spy)
    e.step(1)
    m = e.step(2)  # sampled by version 0, trained at version 1: the ratio is not 1 any more
    assert len(captured) == 2
    assert m["actor/ppo_kl"] != 0.0 and "actor/pg_clipfrac" in m  # verl's vanilla PPO-clip, via the registry
    # staleness 1 and no clipping hit would leave ppo_kl == 0 only if old == current
    r = make(task, tmp_path, "ppo_recompute", 1)
    r.step(1)
    assert r.step(2)["actor/ppo_kl"] == pytest.approx(0.0, abs=1e-6)  # recomputed: old == current


def test_asympo_goes_through_the_registry_with_its_diagnostics(task, tmp_path):
    e = make(task, tmp_path, "asympo", 1)
    m = e.step(1)
    assert {"actor/asympo/s_p10", "actor/asympo/s_p50", "actor/asympo/floored_frac"} <= set(m)
    assert abs(m["actor/scale/balance_residual"]) < 1e-5  # ASymPO's balance holds at every step
    n = make(task, tmp_path, "naive", 1).step(1)
    assert "actor/asympo/s_p50" not in n and abs(n["actor/scale/balance_residual_naive"]) > 0  # verl's gpg
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    assert not hasattr(get_policy_loss_fn("gpg"), "asympo_diagnostics")  # verl's own function again after the step


def test_a_run_writes_what_the_study_reads_and_resumes(task, tmp_path):
    cell = Cell(METHODS["asympo"], 1, seed=1)
    ok, wall, msg = engine.run_cell(cell, SMALL, task, tmp_path)
    assert ok, msg
    run_dir = cell.run_dir(tmp_path)
    marker = json.loads((run_dir / MARKER).read_text())
    assert marker["engine"] == engine.ENGINE
    argv = cell_argv(cell, SMALL, task, run_dir)
    assert is_finished(run_dir, argv, SMALL.steps, task=task, engine=engine.ENGINE)
    # an engine run never stands in for a real cell
    assert not is_finished(run_dir, argv, SMALL.steps, task=task, engine=REAL)
    s = summarize(load_run(run_dir / "metrics.jsonl"))
    assert s["steps"] == 4 and s["final_val_reward"] is not None and s["staleness"]["max"] == 1


def test_a_run_made_on_another_task_model_is_not_finished(task, tmp_path):
    """The warm start stops adaptively, so two machines can build other weights under one cache name:
    the marker records the model, and a sweep reruns a cell whose marker names another one."""
    cell = Cell(METHODS["spo"], 1, seed=1)
    preset = replace(SMALL, steps=2)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    ok, _, msg = engine.run_cell(cell, preset, task, tmp_path)
    assert ok, msg
    run_dir = cell.run_dir(tmp_path)
    argv = cell_argv(cell, preset, task, run_dir)
    marker = json.loads((run_dir / MARKER).read_text())
    assert marker["task_model"] == task.identity()
    assert marker["task_model"]["weights_sha256"] == weights_sha256(task.model_dir)
    # when it finished, for the report's same-window check on timing ratios
    assert before <= datetime.fromisoformat(marker["finished_utc"]) <= datetime.now(timezone.utc)
    loaded = load_cell(cell, tmp_path)
    assert loaded.finished_utc == marker["finished_utc"]
    assert loaded.task_model == weights_sha256(task.model_dir) == marker["task_model"]["weights_sha256"]
    assert is_finished(run_dir, argv, 2, task=task, engine=engine.ENGINE)

    other = {**marker, "task_model": {**marker["task_model"], "warm_start_steps": 400, "weights_sha256": "0" * 16}}
    (run_dir / MARKER).write_text(json.dumps(other))
    assert not is_finished(run_dir, argv, 2, task=task, engine=engine.ENGINE)
    lines = []
    runs, failures = sweep(
        [cell], preset, task, tmp_path, log=lines.append, engine=engine.ENGINE
    )  # reruns it, on this machine's model, and says why
    assert "1 to run" in lines[0] and "finished on another task model" in lines[1], lines
    assert not failures and json.loads((run_dir / MARKER).read_text())["task_model"] == task.identity()

    legacy = {k: v for k, v in marker.items() if k != "task_model"}  # written before the model was recorded
    (run_dir / MARKER).write_text(json.dumps(legacy))
    assert is_finished(run_dir, argv, 2, task=task, engine=engine.ENGINE)


def test_the_task_identity_is_the_saved_weights(task, tmp_path):
    """A cache built before the hash was recorded gets it from the weights file; other weights, other identity."""
    import shutil

    copy = tmp_path / "cache" / RECIPE_KEY
    shutil.copytree(task.root, copy)
    done = json.loads((copy / "DONE.json").read_text())
    done.pop("weights_sha256", None)
    (copy / "DONE.json").write_text(json.dumps(done))
    assert prepare(tmp_path / "cache").identity() == task.identity()
    weights = copy / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    assert prepare(tmp_path / "cache").identity()["weights_sha256"] != task.identity()["weights_sha256"]


def test_a_finished_run_counts_as_finished_on_another_machine(task, tmp_path):
    """Markers store portable command lines: a sweep copied elsewhere (docs/study, a CI clone) is not rerun."""
    import shutil
    from dataclasses import fields

    cell = Cell(METHODS["spo"], 1, seed=1)
    ok, _, msg = engine.run_cell(cell, replace(SMALL, steps=2), task, tmp_path / "here")
    assert ok, msg
    there = cell.run_dir(tmp_path / "there")
    shutil.copytree(cell.run_dir(tmp_path / "here"), there)
    moved = {f.name: getattr(task, f.name) for f in fields(task)}
    for name, value in moved.items():  # the task cache under another home directory
        if str(value).startswith(str(task.root)):
            moved[name] = type(value)(str(value).replace(str(task.root), "/elsewhere/cache"))
    # ... and the package installed somewhere else (the reward function's path is in the command line)
    moved["reward_path"] = "/elsewhere/site-packages/asympo_plugin/task/letters.py"
    elsewhere = type(task)(**moved)
    argv = cell_argv(cell, replace(SMALL, steps=2), elsewhere, there)
    assert any(moved["reward_path"] in a for a in argv)
    assert is_finished(there, argv, 2, task=elsewhere, engine=engine.ENGINE)
    other_lr = cell_argv(cell, replace(SMALL, steps=2, lr=1e-3), elsewhere, there)
    assert not is_finished(there, other_lr, 2, task=elsewhere, engine=engine.ENGINE)  # a different cell is not


def test_every_committed_frontier_run_is_a_finished_point_of_the_grid(task):
    """docs/study/frontier: each committed run matches today's grid and code, so a sweep resumes from it."""
    from asympo_plugin.study import frontier

    root = Path(__file__).resolve().parents[1] / "docs" / "study" / "frontier"
    committed = sorted(root.glob("lr*/staleness*/*/seed*/DONE.json"))
    assert committed, "no committed frontier runs"
    finished = {
        str(c.run_dir(frontier.lr_root(root, lr)) / MARKER)
        for lr, c in frontier.points()
        if frontier._finished(root, lr, c, task)
    }
    assert {str(p) for p in committed} <= finished
