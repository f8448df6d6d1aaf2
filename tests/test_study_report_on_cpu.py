"""The report's overview table and per-level timing ratios, on runs whose numbers are known by construction."""

from __future__ import annotations

import pytest

from asympo_plugin.study.analysis import OLD_LOG_PROB, REWARD, STEP_TIME, UPDATE_ACTOR, Run
from asympo_plugin.study.report import group, overview_table, ratios_text, timing_ratios, write_report


def _run(method, level, seed, *, collapse=False, update=0.5, old_lp=0.0, steps=20):
    metrics = {}
    for step in range(1, steps + 1):
        reward = (0.6 if step <= 8 else 0.02) if collapse else 0.40 + 0.01 * seed
        metrics[step] = {REWARD: reward, STEP_TIME: 1.0, UPDATE_ACTOR: update}
        if old_lp:
            metrics[step][OLD_LOG_PROB] = old_lp
    run = Run(name=f"{method}_{level}_{seed}", metrics=metrics)
    run.method, run.staleness, run.seed = method, level, seed
    return run


@pytest.fixture
def runs():
    out = []
    for seed in (1, 2):
        out += [
            _run("asympo", 1, seed, update=0.50),
            _run("ppo_recompute", 1, seed, update=0.60, old_lp=0.40),
            _run("asympo", 4, seed, update=0.80),
            _run("ppo_recompute", 4, seed, update=0.70, old_lp=0.30, collapse=seed == 2),
        ]
    return out


def test_overview_has_a_cell_per_method_and_level_with_collapses_counted(runs):
    table = overview_table(group(runs), {"asympo": "ASymPO"})
    lines = table.splitlines()
    assert lines[0] == "| method | staleness 1 | staleness 4 |"
    # seeds 1 and 2 end at 0.41 and 0.42: mean 0.415; resampled means are 0.41, 0.415, 0.42 (p = 1/4, 1/2, 1/4)
    assert lines[2] == "| ASymPO | 0.415 [0.410, 0.420], stable | 0.415 [0.410, 0.420], stable |"
    assert lines[3].startswith("| ppo_recompute | 0.415 [0.410, 0.420], stable | ")
    assert lines[3].endswith(", **collapsed 1/2** |")


def test_learner_ratio_at_every_async_level(runs):
    ratios = timing_ratios(group(runs))
    by_level = {r["staleness"]: r for r in ratios["learner_by_level"]}
    assert by_level[1]["ratio"] == pytest.approx(0.50 / (0.60 + 0.40))
    assert by_level[4]["ratio"] == pytest.approx(0.80 / (0.70 + 0.30))
    assert by_level[1]["met"] and not by_level[4]["met"]
    assert ratios["learner"] is ratios["learner_by_level"][0]  # the headline is the lowest level
    text = ratios_text(ratios)
    assert "(staleness 1): 0.500 s / 1.000 s" in text and "**0.50** (goal <= 0.78: met)" in text
    assert "(staleness 4): 0.800 s / 1.000 s" in text and "**0.80** (goal <= 0.78: NOT met)" in text


def test_report_leads_with_the_overview(runs, tmp_path):
    written = write_report(runs, tmp_path, title="t", command="c")
    report = written["report"].read_text()
    assert report.index("## Overview") < report.index("## Timing ratios") < report.index("## Staleness 1")
    assert written["overview"] in report


def _stamp(runs, method, level, hour):
    for run in runs:
        if run.method == method and run.staleness == level:
            run.finished_utc = f"2026-12-07T{hour:02d}:{10 * run.seed:02d}:00+00:00"


def test_learner_ratio_says_whether_its_runs_share_a_time_window(runs):
    """The machine's speed drifts over hours: a ratio over runs finished far apart is flagged, not just printed."""
    _stamp(runs, "asympo", 1, 1)
    _stamp(runs, "ppo_recompute", 1, 2)  # 01:10 .. 02:20: one window
    _stamp(runs, "asympo", 4, 1)
    _stamp(runs, "ppo_recompute", 4, 8)  # 01:10 .. 08:20: 7.2 h apart
    by_level = {r["staleness"]: r for r in timing_ratios(group(runs))["learner_by_level"]}
    assert by_level[1]["window_h"] == pytest.approx(70 / 60)
    assert by_level[4]["window_h"] == pytest.approx(430 / 60)
    lines = ratios_text(timing_ratios(group(runs))).splitlines()
    assert lines[0].endswith("the compared runs finished within 1.2 h of each other")
    assert "**the compared runs finished 7.2 h apart** (more than 3 h)" in lines[1]
    runs[0].finished_utc = None  # one run without a recorded finish time: the window is unknown
    first = ratios_text(timing_ratios(group(runs))).splitlines()[0]
    assert timing_ratios(group(runs))["learner_by_level"][0]["window_h"] is None
    assert "finish times not recorded for every run" in first


def test_report_names_every_task_model_build_its_runs_used(runs):
    from asympo_plugin.study.cli import task_models_line

    assert task_models_line(runs).startswith("Task model: not recorded by the runs' markers")
    for run in runs:
        run.task_model = "6380de614883cd2c"
    assert task_models_line(runs) == f"Task model recorded by every run's marker: `6380de614883cd2c`: {len(runs)} runs."
    runs[0].task_model, runs[1].task_model, runs[2].task_model = "c8c1c7dcc382cea9", "c8c1c7dcc382cea9", None
    line = task_models_line(runs)
    assert line.startswith("**The runs' markers name 2 task-model builds** (weights hash: ")
    assert f"`6380de614883cd2c`: {len(runs) - 3} runs; `c8c1c7dcc382cea9`: 2 runs) and 1 run's marker does not" in line
    runs[0].task_model = runs[1].task_model = "6380de614883cd2c"  # one build, one run unrecorded: still flagged
    assert task_models_line(runs).startswith("**The runs' markers name 1 task-model build** (")
