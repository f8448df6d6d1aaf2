"""``asympo-compare compare`` on a recorded verl JSONL log and on a TensorBoard event file.

``tests/data/verl_run_asympo_staleness2/`` is a real 5-step run (asympo, one-step-off with the
``cpu_delayed`` weight sync at delay 1, built-in CPU task): verl's JSONL ``file`` logger output and
the config keys the study reads. The TensorBoard file is written here with tensorboard's own
``SummaryWriter``, the writer verl's ``tensorboard`` logger uses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asympo_plugin.study.analysis import load_run, summarize
from asympo_plugin.study.cli import main

RECORDED = Path(__file__).parent / "data" / "verl_run_asympo_staleness2"


def _write_tensorboard(folder: Path, *, collapse: bool, rollout_log_probs: bool) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True)
    writer = SummaryWriter(str(folder))
    for step in range(1, 21):
        reward = (0.6 if step <= 8 else 0.05) if collapse else 0.3 + 0.01 * step
        writer.add_scalar("critic/score/mean", reward, step)
        writer.add_scalar("timing_s/step", 0.5, step)
        writer.add_scalar("timing_s/update_actor", 0.2, step)
        writer.add_scalar("actor/pg_loss", 0.1, step)
        writer.add_scalar("actor/scale/pos_nll", 0.3, step)
        writer.add_scalar("actor/scale/neg_nll", 0.3 + 0.05 * step, step)
        writer.add_scalar("actor/scale/balance_residual_naive", 0.02 * step, step)
        writer.add_scalar("actor/scale/balance_residual", 0.01, step)
        writer.add_scalar("training/off_policy/trajectory_staleness/mean", 1.0, step)
        if rollout_log_probs:
            writer.add_scalar("rollout_corr/kl", 0.01, step)
    writer.close()
    return folder


def test_recorded_jsonl_run_reads_as_recorded():
    run = load_run(RECORDED)
    assert run.train_steps() == [1, 2, 3, 4, 5]
    assert run.method == "asympo" and run.label == "asympo (grpo adv.)"
    s = summarize(run)
    assert s["staleness"]["key"] == "asympo/staleness/mean"
    assert s["staleness"]["steady"] == 2.0 and s["staleness"]["max"] == 2.0
    assert s["behavior_bytes_per_token"] == 0 and s["behavior_bytes_source"] == "config"
    assert s["old_log_prob_skipped"] is True and s["old_log_prob_s_per_step"] == 0.0
    assert s["collapsed"] is False


def test_compare_jsonl_and_tensorboard(tmp_path, capsys):
    jsonl_copy = tmp_path / "mine" / "asympo_seed1"
    shutil.copytree(RECORDED, jsonl_copy)
    tb_good = _write_tensorboard(tmp_path / "tb" / "ppo_seed1", collapse=False, rollout_log_probs=True)
    tb_bad = _write_tensorboard(tmp_path / "tb" / "naive_seed1", collapse=True, rollout_log_probs=False)
    out = tmp_path / "report"

    assert main(["compare", str(jsonl_copy), str(tb_good), str(tb_bad), "--out", str(out)]) == 0

    report = (out / "report.md").read_text()
    assert "## Staleness 2" in report and "## Staleness 1" in report
    assert "asympo (grpo adv.)" in report
    for png in ("rewards.png", "scale_staleness1.png", "scale_staleness2.png"):
        assert (out / png).stat().st_size > 5000, png
    table = report.split("## Staleness 1")[1].split("##")[0]
    rows = {
        line.split("|")[1].strip(): line
        for line in table.splitlines()
        if line.startswith("| ") and "method" not in line
    }
    assert set(rows) == {"ppo", "naive"}
    assert "yes (1/1)" in rows["naive"] and "no (0/1)" in rows["ppo"]
    assert "4 (from metrics)" in rows["ppo"]  # rollout log-prob metrics seen, no config
    assert "? (no config" in rows["naive"]  # neither: the table says it does not know
    assert "report:" in capsys.readouterr().out


def test_compare_refuses_what_is_not_a_verl_log(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["compare", str(tmp_path / "notes.txt")]) == 2
    assert "not a verl JSONL log" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("name", ["metrics.jsonl"])
def test_compare_accepts_the_jsonl_file_itself(tmp_path, name):
    run = load_run(RECORDED / name)
    assert run.name == "verl_run_asympo_staleness2" and run.config is not None
