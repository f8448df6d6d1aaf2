"""The statistics fixed in docs/STUDY_METHOD.md, on series whose answers are known by construction.

Max drawdown, the bootstrap interval, the collapse mechanism, and the method and staleness that a
user's resolved verl config implies.
"""

from __future__ import annotations

import math
import re
import statistics

import numpy as np
import pytest

from asympo_plugin.core import metrics as names
from asympo_plugin.study.analysis import (
    REWARD,
    STEP_TIME,
    Run,
    bootstrap_ci,
    max_drawdown,
    measured_staleness,
    mechanism,
    method_from_config,
    summarize,
)
from asympo_plugin.study.report import write_report

NEG = names.scale_key(names.NEG_NLL)
POS = names.scale_key(names.POS_NLL)


def test_max_drawdown_of_a_rise_fall_and_partial_recovery():
    # trailing mean of 5 over a plateau of 1.0 and then 0.2: the 5-step mean falls from 1.0 to 0.2
    rewards = [1.0] * 10 + [0.2] * 10 + [0.6] * 10
    d = max_drawdown(list(range(1, 31)), rewards)
    assert d["drop"] == pytest.approx(0.8)
    assert d["relative"] == pytest.approx(0.8)
    assert d["peak_step"] == 5 and d["trough_step"] == 15  # first full window at 1.0; first all-0.2 window
    rising = max_drawdown(list(range(1, 21)), [0.01 * i for i in range(20)])
    assert rising["drop"] == 0.0
    # one lucky first step is not a peak by itself (full windows only): the peak is the first window's 0.36
    assert max_drawdown(list(range(1, 11)), [1.0] + [0.2] * 9)["drop"] == pytest.approx(0.36 - 0.2)
    with pytest.raises(ValueError, match="differ in length"):
        max_drawdown([1, 2], [0.1])


def test_bootstrap_interval_known_cases():
    assert bootstrap_ci([0.7]) == (0.7, None, None)
    assert bootstrap_ci([]) == (None, None, None)
    assert bootstrap_ci([0.3, None, 0.3, 0.3]) == (pytest.approx(0.3), pytest.approx(0.3), pytest.approx(0.3))
    # two seeds: the resampled means are a, (a+b)/2, b with p 1/4, 1/2, 1/4 -> the interval is [a, b]
    mean, low, high = bootstrap_ci([0.2, 0.6])
    assert (mean, low, high) == (pytest.approx(0.4), pytest.approx(0.2), pytest.approx(0.6))
    # fixed seed: same inputs, same interval; another seed moves it a little
    values = np.random.default_rng(5).uniform(0, 1, size=12).tolist()
    assert bootstrap_ci(values) == bootstrap_ci(values)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values)
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_ci([0.1, math.nan])


def test_bootstrap_interval_matches_the_normal_one_for_many_seeds():
    data = np.random.default_rng(7).normal(0.5, 0.1, size=200).tolist()
    mean, low, high = bootstrap_ci(data)
    half = 1.96 * statistics.stdev(data) / math.sqrt(len(data))
    assert low < mean < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)


def _collapsing_run(*, with_quantiles: bool) -> Run:
    """Reward and neg NLL change at step 21; pos NLL, residual, grad norm stay flat (small noise)."""
    rng = np.random.default_rng(3)
    metrics = {}
    for step in range(1, 41):
        after = step >= 21
        m = {
            STEP_TIME: 1.0,
            REWARD: 0.05 if after else 0.6,
            POS: 0.5 + 0.01 * rng.standard_normal(),
            NEG: (2.5 if after else 0.8) + 0.01 * rng.standard_normal(),
            names.scale_key(names.BALANCE_RESIDUAL): 1e-3 * abs(rng.standard_normal()),
            names.GRAD_NORM: 1.0 + 0.02 * rng.standard_normal(),
        }
        if with_quantiles:
            m[names.asympo_scale_key("s_p10")] = 0.02 if after else 0.3
            m[names.asympo_scale_key("s_p50")] = 0.6
            m[names.asympo_scale_key("s_p90")] = 0.9
            m[names.floored_key()] = 0.4 if after else 0.0
        metrics[step] = m
    return Run(name="synthetic_seed1", metrics=metrics)


def test_mechanism_names_what_changed_and_what_was_not_logged():
    run = _collapsing_run(with_quantiles=True)
    s = summarize(run)
    assert s["collapsed"] and s["collapse_step"] == 23  # the 5-step mean first falls below half the peak at 23
    found = mechanism(run, s["collapse_step"])
    rows = {r["label"]: r for r in found["rows"]}
    changed = {label for label, r in rows.items() if r["changed"]}
    assert changed == {"sampler reward", "neg NLL (A < 0)", "s_i 10th pct", "floored fraction"}
    assert rows["neg NLL (A < 0)"]["change"] == pytest.approx(1.7, abs=0.05)
    assert rows["balance residual (naive)"]["baseline"] is None
    assert re.search(r"neg NLL \(A < 0\) rose from 0\.[78]\d* to 2\.[45]", found["text"]), found["text"]
    assert "floored fraction rose from 0 to 0.4" in found["text"]
    assert "Not logged: balance residual (naive)." in found["text"]
    assert found["baseline_steps"] == list(range(13, 18)) and found["collapse_steps"] == list(range(23, 28))


def test_mechanism_says_when_nothing_changed():
    run = _collapsing_run(with_quantiles=False)
    for m in run.metrics.values():
        m[NEG] = 0.8
    found = mechanism(run, 30)  # inside the flat post-collapse stretch: nothing moves there
    assert "none of the logged diagnostics changed" in found["text"]


def test_report_explains_each_collapsed_run(tmp_path):
    bad = _collapsing_run(with_quantiles=True)
    good = Run(name="flat_seed1", metrics={s: {STEP_TIME: 1.0, REWARD: 0.4} for s in range(1, 41)})
    for run, method in ((bad, "asympo"), (good, "spo")):
        run.method, run.label, run.staleness = method, method.upper(), 4
    written = write_report([bad, good], tmp_path, title="t", command="c")
    report = written["report"].read_text()
    section = report.split("## Collapses: the mechanism from the diagnostics")[1]
    assert "### ASYMPO: synthetic_seed1 (staleness 4), collapsed at step 23" in section
    assert "| neg NLL (A < 0) | `actor/scale/neg_nll` |" in section and "flat_seed1" not in section
    png = written["files"]["mechanism_synthetic_seed1_staleness4"]
    assert png.stat().st_size > 10_000
    assert "max drawdown" in report and "best val reward (greedy)" in report


def _cfg(loss="vanilla", adv="grpo", bypass=None, pipeline="sync", **extra):
    cfg = {"actor_rollout_ref": {"actor": {"policy_loss": {"loss_mode": loss}}}, "algorithm": {"adv_estimator": adv}}
    if bypass is not None:
        cfg["algorithm"]["rollout_correction"] = {"bypass_mode": bypass}
    if pipeline == "one-step-off":
        cfg["rollout"] = {"nnodes": 1}
    if pipeline == "fully-async":
        cfg["async_training"] = {"staleness_threshold": extra.get("threshold", 1)}
        cfg["actor_rollout_ref"]["actor"]["ppo_mini_batch_size"] = 4
        cfg["actor_rollout_ref"]["rollout"] = {"n": 2}
    return cfg


@pytest.mark.parametrize(
    "cfg, metrics, method",
    [
        (_cfg("asympo"), {}, "asympo"),
        (_cfg("spo"), {}, "spo"),
        (_cfg("gpg", "grpo"), {}, "naive"),
        (_cfg("gpg", "gpg"), {}, "gpg"),
        (_cfg(bypass=True, pipeline="one-step-off"), {}, "ppo_bypass"),
        (_cfg(bypass=False, pipeline="one-step-off"), {}, "ppo_recompute"),
        (_cfg(bypass=False), {}, "grpo_sync"),
        # no bypass key: an old-log-prob stage in the metrics means recomputed, none means the rollout's
        (_cfg(pipeline="one-step-off"), {1: {"timing_s/old_log_prob": 0.3}}, "ppo_recompute"),
        (_cfg(pipeline="one-step-off"), {1: {}}, "ppo_bypass"),
    ],
)
def test_method_from_a_users_config(cfg, metrics, method):
    assert method_from_config(cfg, metrics)[0] == method


def test_staleness_from_the_pipelines_structure():
    steps = {s: {STEP_TIME: 1.0} for s in range(1, 5)}
    assert measured_staleness(Run("a", steps, config=_cfg(pipeline="one-step-off")))["steady"] == 1.0
    assert measured_staleness(Run("b", steps, config=_cfg()))["steady"] == 0.0
    assert measured_staleness(Run("c", steps))["key"] is None  # no config, no metric: unknown, not guessed
    # fully async: stale-trajectory count (cumulative) over mini-batch 4 x n 2 = 8 trajectories a step
    counts = {s: {STEP_TIME: 1.0, names.FULLY_ASYNC_STALE_TRAJ: c} for s, c in zip(range(1, 6), (0, 4, 12, 20, 28))}
    st = measured_staleness(Run("d", counts, config=_cfg(pipeline="fully-async", threshold=2)))
    assert st["bound"] == 3.0 and st["pipeline"] == "fully-async"
    assert st["mean"] == pytest.approx((0 + 0.5 + 1 + 1 + 1) / 5)
    # verl V1's own per-trajectory metric wins over the structure
    v1 = {s: {STEP_TIME: 1.0, names.VERL_STALENESS: 2.0} for s in range(1, 6)}
    assert measured_staleness(Run("e", v1, config=_cfg(pipeline="one-step-off")))["steady"] == 2.0
