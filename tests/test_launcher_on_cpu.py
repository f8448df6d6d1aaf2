"""asympo-train: algorithm.loss on the command line and in YAML, --dry-run, refusals before Ray."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from conftest import VALID_OVERRIDES

from asympo_plugin.verl.config import CONFIG_TARGET
from asympo_plugin.verl.launcher import main


def dry_run(capsys, *args: str) -> tuple[int, dict | None, str]:
    rc = main(["--dry-run", *args])
    out, err = capsys.readouterr()
    return rc, (yaml.safe_load(out) if rc == 0 else None), err


def actor(cfg: dict) -> dict:
    return cfg["actor_rollout_ref"]["actor"]


def test_dry_run_resolves_asympo_loss_config_class_and_aggregation(capsys):
    rc, cfg, _ = dry_run(capsys, "algorithm.loss=asympo", *VALID_OVERRIDES)
    assert rc == 0
    policy_loss = actor(cfg)["policy_loss"]
    assert policy_loss["loss_mode"] == "asympo"
    assert policy_loss["_target_"] == CONFIG_TARGET
    assert policy_loss["asympo_eps"] == 0.01 and policy_loss["spo_neg_scale"] == 0.5
    assert actor(cfg)["loss_agg_mode"] == "seq-mean-token-mean"
    assert "loss" not in cfg["algorithm"]  # verl's AlgoConfig has no such field


def test_plugin_fields_are_plain_overrides(capsys):
    rc, cfg, _ = dry_run(
        capsys,
        "algorithm.loss=spo",
        "actor_rollout_ref.actor.policy_loss.spo_neg_scale=0.3",
        "actor_rollout_ref.actor.policy_loss.asympo_eps=0.05",
        *VALID_OVERRIDES,
    )
    assert rc == 0
    assert actor(cfg)["policy_loss"]["spo_neg_scale"] == 0.3
    assert actor(cfg)["policy_loss"]["asympo_eps"] == 0.05
    assert actor(cfg)["loss_agg_mode"] == "token-mean"  # SPO keeps verl's default


@pytest.mark.parametrize("loss", ["vanilla", "gpg", "cispo"])
def test_any_registered_verl_loss_is_selectable(capsys, loss):
    rc, cfg, _ = dry_run(capsys, f"algorithm.loss={loss}", *VALID_OVERRIDES)
    assert rc == 0 and actor(cfg)["policy_loss"]["loss_mode"] == loss


def test_unknown_loss_is_refused_with_the_registered_list(capsys):
    rc, _, err = dry_run(capsys, "algorithm.loss=asympoo", *VALID_OVERRIDES)
    assert rc == 2
    assert "unknown algorithm.loss='asympoo'" in err
    for name in ("asympo", "spo", "vanilla", "gpg"):
        assert name in err


@pytest.mark.parametrize(
    "override, message",
    [
        ("actor_rollout_ref.actor.policy_loss.asympo_eps=0", "asympo_eps=0 is invalid"),
        ("actor_rollout_ref.actor.policy_loss.asympo_eps=-0.1", "asympo_eps=-0.1 is invalid"),
        ("actor_rollout_ref.actor.policy_loss.spo_neg_scale=0", "spo_neg_scale=0 is invalid"),
        ("actor_rollout_ref.actor.policy_loss.spo_neg_scale=1.5", "spo_neg_scale=1.5 is invalid"),
        ("actor_rollout_ref.actor.loss_agg_mode=token-mean", "asympo_allow_unbalanced_agg=true"),
        ("actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum", "breaks ASymPO's zero-sum balance"),
    ],
)
def test_bad_values_are_refused_before_ray_starts(capsys, override, message):
    import ray

    rc, _, err = dry_run(capsys, "algorithm.loss=asympo", override, *VALID_OVERRIDES)
    assert rc == 2 and message in err
    assert not ray.is_initialized()
    rc, _, err = dry_run(capsys, "algorithm.loss=asympo", override, *VALID_OVERRIDES)  # not only in dry-run:
    assert main(["algorithm.loss=asympo", override, *VALID_OVERRIDES]) == 2
    assert not ray.is_initialized()


def test_unbalanced_aggregation_is_allowed_when_asked_for(capsys):
    rc, cfg, _ = dry_run(
        capsys,
        "algorithm.loss=asympo",
        "actor_rollout_ref.actor.loss_agg_mode=token-mean",
        "actor_rollout_ref.actor.policy_loss.asympo_allow_unbalanced_agg=true",
        *VALID_OVERRIDES,
    )
    assert rc == 0 and actor(cfg)["loss_agg_mode"] == "token-mean"


def test_verl_validation_errors_come_back_as_one_clear_line(capsys):
    rc, _, err = dry_run(
        capsys, "algorithm.loss=asympo", "algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=2"
    )
    assert rc == 2
    assert "verl rejected the config" in err and "ppo_micro_batch_size" in err


RECIPE = """
defaults:
  - {base}
  - _self_
algorithm:
  adv_estimator: grpo
  loss: {loss}
actor_rollout_ref:
  model:
    path: /nonexistent/model
  actor:
    ppo_micro_batch_size_per_gpu: 2
  rollout:
    n: 2
    log_prob_micro_batch_size_per_gpu: 2
  ref:
    log_prob_micro_batch_size_per_gpu: 2
"""


@pytest.mark.parametrize(
    "base, pipeline",
    [("ppo_trainer", "main_ppo"), ("one_step_off_ppo_trainer", "one_step_off_policy.main_ppo")],
)
def test_algorithm_loss_inside_a_recipe_yaml(capsys, tmp_path, base, pipeline):
    (tmp_path / "recipe.yaml").write_text(RECIPE.format(base=base, loss="spo"))
    args = ["--config-path", str(tmp_path), "--config-name", "recipe", "actor_rollout_ref.hybrid_engine=false"]
    rc, cfg, err = dry_run(capsys, *args)
    assert rc == 0, err
    assert actor(cfg)["policy_loss"]["loss_mode"] == "spo"
    assert f"pipeline=verl.{'experimental.' if 'one_step' in base else 'trainer.'}{pipeline}" in err
    rc, cfg, _ = dry_run(capsys, *args, "algorithm.loss=asympo")  # the command line wins over the YAML
    assert rc == 0 and actor(cfg)["policy_loss"]["loss_mode"] == "asympo"
    assert actor(cfg)["loss_agg_mode"] == "seq-mean-token-mean"


def test_asympo_train_console_script(tmp_path):
    script = f"{sys.prefix}/bin/asympo-train"
    proc = subprocess.run(
        [script, "--dry-run", "algorithm.loss=asympo", *VALID_OVERRIDES], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "asympo"


def test_fully_async_with_streamed_prompts_validates(capsys):
    """verl's fully-async pipeline takes prompts one at a time (train_batch_size=0); validation must accept it."""
    rc, cfg, err = dry_run(
        capsys,
        "--pipeline",
        "fully-async",
        "algorithm.loss=asympo",
        "data.train_batch_size=0",
        "data.gen_batch_size=1",
        "actor_rollout_ref.hybrid_engine=false",
        "actor_rollout_ref.actor.ppo_mini_batch_size=8",  # one trainer step: 8 prompts (8 GPUs)
        *VALID_OVERRIDES,
    )
    assert rc == 0, err
    assert cfg["data"]["train_batch_size"] == 0  # validated a copy; the run keeps verl's setting


@pytest.mark.parametrize(
    "loss, use_v1, refused",
    [
        ("asympo", False, True),
        ("spo", False, True),
        ("gpg", False, True),
        ("asympo", True, False),
        ("vanilla", False, False),
    ],
)
def test_behavior_free_loss_on_the_legacy_trainer_is_refused(capsys, loss, use_v1, refused):
    """The legacy trainer computes old log-probs inline: a behavior-free loss would pay for nothing."""
    rc, _, err = dry_run(capsys, f"algorithm.loss={loss}", f"trainer.use_v1={use_v1}", *VALID_OVERRIDES)
    assert (rc == 2) is refused, err
    if refused:
        assert "legacy trainer, which always runs the old-log-prob forward pass" in err and "trainer.use_v1=True" in err
