"""``asympo-compare compare`` on recorded verl logs of a sync, a one-step-off and a fully-async run.

``tests/data/verl_logs/`` holds three real 3-5 step CPU runs of ASymPO on the built-in task (verl
0.9.1's JSONL ``file`` logger and the resolved config; the one-step-off run's config sits where
Hydra writes it, ``.hydra/config.yaml``). The CPU backend's own ``asympo/staleness/*`` metric was
stripped, so they read as GPU runs do: method from the config, staleness from verl's metrics or
the pipeline's structure. The directories are copied to misleading names here, to show that
names are never used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from asympo_plugin.study.analysis import STALENESS, load_run, summarize
from asympo_plugin.study.cli import main
from asympo_plugin.study.report import level_of

LOGS = Path(__file__).parent / "data" / "verl_logs"
RUNS = {"sync": "sync_asympo", "one-step-off": "one_step_off_asympo", "fully-async": "fully_async_asympo"}


@pytest.fixture
def misnamed(tmp_path):
    """The recorded runs under names that say another method and staleness."""
    out = {}
    for i, (pipeline, folder) in enumerate(RUNS.items()):
        if not (LOGS / folder).exists():
            pytest.fail(f"recorded log {LOGS / folder} missing")
        out[pipeline] = shutil.copytree(LOGS / folder, tmp_path / f"ppo_recompute_staleness{8 + i}_seed{i}")
    return out


def test_recorded_logs_have_no_cpu_only_staleness_metric():
    for folder in RUNS.values():
        lines = (LOGS / folder / "metrics.jsonl").read_text().splitlines()
        assert all(not k.startswith(STALENESS.split("/mean")[0]) for line in lines for k in json.loads(line)["data"])


def test_method_and_staleness_come_from_config_and_metrics(misnamed):
    runs = {p: load_run(d) for p, d in misnamed.items()}
    for run in runs.values():
        assert run.method == "asympo", run.name
    levels = {p: level_of(r, summarize(r)) for p, r in runs.items()}
    assert levels == {"sync": 0, "one-step-off": 1, "fully-async": 2}  # async_training.staleness_threshold=1
    st = {p: summarize(r)["staleness"] for p, r in runs.items()}
    assert st["one-step-off"]["key"] == "structure: one-step-off"
    assert st["sync"]["key"] in ("training/off_policy/trajectory_staleness/mean", "structure: sync")
    fa = st["fully-async"]
    assert fa["pipeline"] == "fully-async" and fa["bound"] == 2.0
    assert fa["key"].startswith("fully_async/count/stale_trajectory_processed")
    assert 0.0 <= fa["mean"] <= 1.0  # a fraction of stale trajectories, from verl's own counter


def test_compare_gives_tables_ratios_and_plots(misnamed, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", *map(str, misnamed.values()), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    for level in (0, 1, 2):
        assert f"## Staleness {level}" in report
        assert (out / f"scale_staleness{level}.png").stat().st_size > 5000
    ratios = json.loads((out / "summary.json").read_text())["ratios"]
    assert ratios["pipeline"]["ratio"] > 0  # asympo sync vs one-step-off, matched by config
    assert "steps/s, ASymPO one-step-off / ASymPO sync" in capsys.readouterr().out
    assert "no resolved config" not in report


def test_compare_refuses_a_config_count_that_does_not_match(misnamed, tmp_path, capsys):
    runs = [str(d) for d in misnamed.values()]
    assert main(["compare", *runs, "--config", str(misnamed["sync"] / "config.yaml"), "--out", str(tmp_path)]) == 2
    assert "give one per run" in capsys.readouterr().err
