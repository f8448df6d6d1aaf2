"""asympo-train is a drop-in for verl's entry points: verl's own example scripts run with the module swapped.

The scripts in tests/data/verl_examples/ are verl's (see the README there for the few lines verl 0.9.1
itself rejects). Each runs as ``bash script`` with only ``python3 -m <verl entry>`` replaced by
``asympo-train [--pipeline X] algorithm.loss=asympo --dry-run``: options after overrides, Hydra's
``--config-path=config`` (relative to verl's entry module) and ``--config-name='x.yaml'`` all work.
The in-process tests cover the Hydra flags one by one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import VALID_OVERRIDES

from asympo_plugin.verl.launcher import main

EXAMPLES = Path(__file__).parent / "data" / "verl_examples"
SWAP = {
    "verl.trainer.main_ppo": "asympo-train",
    "verl.experimental.one_step_off_policy.main_ppo": "asympo-train --pipeline one-step-off",
    "verl.experimental.fully_async_policy.fully_async_main": "asympo-train --pipeline fully-async",
}


def swapped(script: Path, tmp_path: Path, *, edit=None) -> Path:
    """The script with only its ``python3 -m <verl entry>`` replaced (and ``algorithm.loss=asympo --dry-run``)."""
    text = script.read_text()
    text, n = re.subn(
        r"python3? -m (verl\.[a-z_.]+)", lambda m: f"{SWAP[m.group(1)]} algorithm.loss=asympo --dry-run", text
    )
    assert n == 1
    text = edit(text) if edit else text
    out = tmp_path / script.name
    out.write_text(text)
    return out


def script_argv(path: Path, tmp_path: Path) -> list[str]:
    """The exact argument list bash hands to ``asympo-train`` when it runs the script (a function records it)."""
    record = tmp_path / "argv"
    prelude = f"asympo-train() {{ printf '%s\\0' \"$@\" > {record}; }}\n"
    runner = tmp_path / ("run-" + path.name)
    runner.write_text(prelude + path.read_text())
    env = {**os.environ, "HOME": str(tmp_path)}  # the scripts' default data/model paths live under $HOME
    subprocess.run(["bash", str(runner)], check=True, capture_output=True, env=env, cwd=tmp_path, timeout=60)
    return record.read_bytes().decode().split("\0")[:-1]


def run_script(path: Path, tmp_path: Path, capsys):
    """Run the script's asympo-train command line through the launcher's ``main`` (in process: one verl import)."""
    rc = main(script_argv(path, tmp_path))
    out, err = capsys.readouterr()
    return rc, out, err


def config_of(stdout: str) -> dict:
    return yaml.safe_load(stdout)


def test_verl_example_runs_through_the_installed_console_script(tmp_path):
    """Once for real: ``bash script`` with ``asympo-train`` the installed console script, in a subprocess."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "RAY_AUTH_MODE": "disabled",
    }
    path = swapped(EXAMPLES / "run_qwen2-7b.sh", tmp_path)
    proc = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert config_of(proc.stdout)["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "asympo"


@pytest.mark.parametrize(
    "script, strategy, key, value",
    [
        ("run_qwen2-7b.sh", "fsdp", "data.train_batch_size", 1024),
        ("grpo_0.6b_gsm8k_fsdp2_2_6.sh", "fsdp2", "rollout.n_gpus_per_node", 2),
    ],
)
def test_verl_example_runs_with_the_module_swapped(tmp_path, capsys, script, strategy, key, value):
    argv = script_argv(swapped(EXAMPLES / script, tmp_path), tmp_path)
    assert argv.index("algorithm.loss=asympo") < argv.index("--dry-run")  # options after overrides
    rc, out, err = run_script(swapped(EXAMPLES / script, tmp_path), tmp_path, capsys)
    assert rc == 0, err[-3000:]
    cfg = config_of(out)
    actor = cfg["actor_rollout_ref"]["actor"]
    assert actor["policy_loss"]["loss_mode"] == "asympo"
    assert actor["loss_agg_mode"] == "seq-mean-token-mean"
    assert actor["strategy"] == strategy
    node = cfg
    for part in key.split("."):
        node = node[part]
    assert node == value  # the script's own overrides reached the config


TOKEN_MEAN_FIX = (
    ('loss_agg_mode="token-mean"', 'loss_agg_mode="seq-mean-token-mean"'),
    "Set actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean",
)
# verl's fully-async example ships the rollout's log-probs (its PPO needs them); with asympo verl's rollout-correction
# stage would then read old log-probs that are never computed (KeyError at step 1): refused, fix named.
ROLLOUT_LOG_PROBS_FIX = (
    ("actor_rollout_ref.rollout.calculate_log_probs=True", "actor_rollout_ref.rollout.calculate_log_probs=False"),
    "actor_rollout_ref.rollout.calculate_log_probs=true ships the rollout's log-probs",
)


@pytest.mark.parametrize(
    "script, entry, strategy, fixes",
    [
        # --config-path=config --config-name='ppo_megatron_trainer.yaml': relative to verl/trainer/.
        ("dapo_7b_math_megatron_colocate.sh", "verl.trainer.main_ppo", "megatron", (TOKEN_MEAN_FIX,)),
        (
            "dapo_7b_math_fsdp2_4_4.sh",
            "verl.experimental.fully_async_policy.fully_async_main",
            "fsdp2",
            (TOKEN_MEAN_FIX, ROLLOUT_LOG_PROBS_FIX),
        ),
    ],
)
def test_verl_dapo_example_token_mean_is_refused_then_runs_with_the_named_fix(
    tmp_path, capsys, script, entry, strategy, fixes
):
    applied = []
    for (old, new), message in fixes:  # each refusal names its fix; applying them in turn, the script runs
        rc, _, err = run_script(swapped(EXAMPLES / script, tmp_path, edit=_edits(applied)), tmp_path, capsys)
        assert rc == 2 and message in err, err[-3000:]
        applied.append((old, new))
    rc, out, err = run_script(swapped(EXAMPLES / script, tmp_path, edit=_edits(applied)), tmp_path, capsys)
    assert rc == 0, err[-3000:]
    assert f"pipeline={entry}" in err
    actor = config_of(out)["actor_rollout_ref"]["actor"]
    assert actor["policy_loss"]["loss_mode"] == "asympo" and actor["strategy"] == strategy
    assert actor["clip_ratio_high"] == 0.28  # one of the script's own values


def _edits(pairs):
    def edit(text):
        for old, new in pairs:
            assert old in text, old
            text = text.replace(old, new)
        return text

    return edit


# ---- Hydra's flags, in process ----------------------------------------------------------------


def _run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_options_and_overrides_in_any_order(capsys):
    rc, out, err = _run(
        capsys, "algorithm.loss=spo", *VALID_OVERRIDES[:3], "--dry-run", *VALID_OVERRIDES[3:], "--pipeline", "sync"
    )
    assert rc == 0, err
    assert yaml.safe_load(out)["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "spo"


@pytest.mark.parametrize("name", ["ppo_megatron_trainer", "ppo_megatron_trainer.yaml"])
@pytest.mark.parametrize("path_flag", ["--config-path=config", "-cp=config", "--config-path=pkg://verl.trainer.config"])
def test_config_path_and_name_resolve_as_hydra_does_for_verls_entry(capsys, name, path_flag):
    rc, out, err = _run(
        capsys, path_flag, f"--config-name={name}", "algorithm.loss=asympo", "--cfg", "job", *VALID_OVERRIDES
    )
    assert rc == 0, err
    assert yaml.safe_load(out)["actor_rollout_ref"]["actor"]["strategy"] == "megatron"


def test_relative_config_path_of_the_async_entry(capsys):
    rc, out, err = _run(
        capsys,
        "--pipeline=fully-async",
        "--config-path=config",
        "--config-name=fully_async_ppo_trainer.yaml",
        "algorithm.loss=asympo",
        "--cfg=job",
        *VALID_OVERRIDES,
    )
    assert rc == 0, err
    assert "async_training" in yaml.safe_load(out)


def test_cfg_job_with_package_prints_one_node_translated(capsys):
    rc, out, err = _run(
        capsys, "--cfg", "job", "-p", "actor_rollout_ref.actor.policy_loss", "algorithm.loss=asympo", *VALID_OVERRIDES
    )
    assert rc == 0, err
    node = yaml.safe_load(out)
    assert node["loss_mode"] == "asympo" and node["asympo_eps"] == 0.01


def test_hydra_overrides_are_composed_and_shown_by_cfg_hydra(capsys, tmp_path):
    rc, out, err = _run(
        capsys,
        "--cfg",
        "hydra",
        f"hydra.run.dir={tmp_path}/run",
        "hydra.job.chdir=true",
        "algorithm.loss=asympo",
        *VALID_OVERRIDES,
    )
    assert rc == 0, err
    hydra = yaml.safe_load(out)["hydra"]
    assert hydra["run"]["dir"] == f"{tmp_path}/run" and hydra["job"]["chdir"] is True


def test_unknown_hydra_key_is_refused(capsys):
    rc, _, err = _run(capsys, "--dry-run", "hydra.no_such=1", "algorithm.loss=asympo", *VALID_OVERRIDES)
    assert rc == 2 and "hydra.no_such" in err
