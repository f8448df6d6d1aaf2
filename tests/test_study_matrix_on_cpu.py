"""``asympo-compare run`` on a tiny matrix of REAL verl runs: 2 methods x staleness 2 x 1 seed, 3 steps.

Staleness 2 goes through the ``cpu_delayed`` weight sync, so this also checks that the measured
staleness (``asympo/staleness/*``, stamped per trajectory by the rollout server) reaches the level
asked for. Two runs of verl's one-step-off trainer on CPU: about 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import json

import pytest

from asympo_plugin.study.cli import main
from asympo_plugin.study.matrix import METHODS, Cell, FULL
from asympo_plugin.study.runner import MARKER, cell_argv, is_finished

pytestmark = pytest.mark.e2e

ARGS = ["--methods", "asympo,naive", "--staleness", "2", "--seeds", "1", "--steps", "3"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    rc = main(["run", *ARGS, "--out", str(out)])
    return out, rc


def test_tiny_matrix_runs_and_reports(sweep):
    out, rc = sweep
    assert rc == 0, (out / "staleness2").glob("*/seed1/train.log")
    for method in ("asympo", "naive"):
        cell = out / "staleness2" / method / "seed1"
        assert (cell / MARKER).exists() and (cell / "metrics.jsonl").exists() and (cell / "config.yaml").exists()
    report = (out / "report" / "report.md").read_text()
    assert "## Staleness 2" in report
    assert "| ASymPO | 1 | 2.00 / 2 |" in report  # measured staleness: steady 2, max 2
    assert "| naive (gpg loss, GRPO adv.) | 1 | 2.00 / 2 |" in report
    for png in ("rewards.png", "scale_staleness2.png"):
        assert (out / "report" / png).stat().st_size > 5000
    summary = json.loads((out / "report" / "summary.json").read_text())
    runs = summary["runs"]["2"]
    assert runs["asympo"][0]["behavior_bytes_per_token"] == 0  # behavior-free: nothing shipped
    assert runs["asympo"][0]["old_log_prob_skipped"] is True
    assert runs["naive"][0]["steps"] == 3


def test_finished_cells_are_not_rerun(sweep, capsys):
    out, _ = sweep
    assert main(["run", *ARGS, "--out", str(out)]) == 0
    assert "2 already finished, 0 to run" in capsys.readouterr().out


def test_a_cell_with_incomplete_metrics_is_not_finished(sweep, tmp_path):
    from asympo_plugin.task import prepare

    out, _ = sweep
    preset = FULL.__class__(**{**FULL.__dict__, "steps": 3, "seeds": (1,), "staleness": (2,)})
    cell = Cell(METHODS["asympo"], 2, 1)
    root = tmp_path / "copy"
    copy = cell.run_dir(root)
    copy.parent.mkdir(parents=True)
    import shutil

    shutil.copytree(cell.run_dir(out), copy)
    task = prepare()
    argv = cell_argv(cell, preset, task, copy)
    marker = json.loads((copy / MARKER).read_text())
    marker["argv"] = argv  # the copy's own paths
    (copy / MARKER).write_text(json.dumps(marker))
    assert is_finished(copy, argv, 3, task=task)
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    (copy / "metrics.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # the last step never got logged
    assert not is_finished(copy, argv, 3, task=task)


def _recipe_variants() -> dict[str, set[str]]:
    """``recipes/run_head_to_head.sh``'s case branches: variant -> the loss overrides it passes."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "recipes" / "run_head_to_head.sh").read_text()
    body = text[text.index('case "$VARIANT" in') : text.index("esac")]
    variants = {}
    for name, overrides in re.findall(r"^\s*(\w+)\)\s+loss=\(([^)]*)\)", body, flags=re.M):
        variants[name] = {o.lower() for o in overrides.split()}
    return variants


def test_the_recipes_head_to_head_methods_are_the_studys():
    """One method table in spirit: the GPU recipe and the CPU study define each method by the same overrides."""
    recipe = _recipe_variants()
    study = {name: {o.lower() for o in m.overrides} for name, m in METHODS.items()}
    assert set(recipe) == set(study)
    for name in recipe:
        # grpo_sync differs only in that the sync trainer has no bypass stage to turn off
        assert recipe[name] <= study[name] and study[name] - recipe[name] <= {
            "algorithm.rollout_correction.bypass_mode=false"
        }, name


def _override_dict(argv: list[str]) -> dict[str, str]:
    """An asympo-train command line as verl composes it: KEY=VALUE overrides, the last of a key wins."""
    out = {}
    for a in argv:
        key, _, value = a.partition("=")
        out[key] = value
    return out


@pytest.mark.parametrize("seed", [1, 3])
def test_the_fully_async_cell_is_the_committed_fully_async_check(seed, tmp_path):
    """docs/study/fully_async ran a hand-written command line (argv.sh); ``--fully-async`` builds the same one."""
    import os
    import subprocess
    import sys
    from dataclasses import replace
    from pathlib import Path

    from asympo_plugin.study.matrix import FULLY_ASYNC
    from asympo_plugin.task import prepare

    root = Path(__file__).resolve().parents[1]
    run_dir = tmp_path / "staleness2" / "asympo" / f"seed{seed}"
    env = {**os.environ, "SEED": str(seed), "OUTDIR": str(run_dir), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    script = f"source {root / 'docs/study/fully_async/argv.sh'} && printf '%s\\n' \"${{ARGV[@]}}\""
    committed = subprocess.run(["bash", "-c", script], env=env, cwd=root, capture_output=True, text=True, check=True)
    committed = committed.stdout.splitlines()

    preset = replace(FULL, steps=150, lr=2e-4, stale_pipeline=FULLY_ASYNC)
    argv = cell_argv(Cell(METHODS["asympo"], 2, seed), preset, prepare(log=lambda *a: None), run_dir)
    assert argv[:4] == ["--sync-delay", "0", "--save-config", str(run_dir / "config.yaml")]
    ours, theirs = _override_dict(argv[4:]), _override_dict(committed)
    # the experiment name is only a label (the committed runs used fa_seed<N>)
    assert ours.pop("trainer.experiment_name") == f"seed{seed}" and theirs.pop("trainer.experiment_name")
    assert ours == theirs
    assert ours["async_training.staleness_threshold"] == "1" and ours["--pipeline"] == "fully-async"
    # staleness 0 has no fully-async form: the sweep keeps the sync trainer there, a direct call says why
    assert "--pipeline=sync" in cell_argv(Cell(METHODS["grpo_sync"], 0, seed), preset, prepare(log=lambda *a: None), run_dir)
    from asympo_plugin.study.matrix import fully_async_overrides

    with pytest.raises(ValueError, match="synchronous trainer"):
        fully_async_overrides(0, 150, 16)


def test_a_fully_async_sweep_runs_on_verls_fully_async_trainer(tmp_path):
    """``asympo-compare run --fully-async``: a real 3-step run on verl's fully-async trainer, reported at its bound."""
    out = tmp_path / "fa"
    assert main(["run", "--fully-async", "--methods", "asympo", "--staleness", "2", "--seeds", "1", "--steps", "3", "--out", str(out)]) == 0
    cell = out / "staleness2" / "asympo" / "seed1"
    assert (cell / MARKER).exists()
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(cell / "config.yaml")
    assert cfg.async_training.staleness_threshold == 1 and cfg.actor_rollout_ref.actor.policy_loss.loss_mode == "asympo"
    summary = json.loads((out / "report" / "summary.json").read_text())
    run = summary["runs"]["2"]["asympo"][0]
    # verl's fully-async trainer logs no training record for its first step (runner.complete_steps)
    assert run["steps"] == 2 and run["staleness"]["pipeline"] == "fully-async" and run["staleness"]["bound"] == 2
    report = (out / "report" / "report.md").read_text()
    assert "verl's fully-async trainer bounded at k" in report and "except:" not in report
    assert main(["run", "--fully-async", "--engine", "in-process", "--out", str(out)]) == 2
