"""recipes/: every launch script composes and passes asympo-train's checks; its effective settings.

Each script is run by bash with ``ASYMPO_TRAIN`` set to a printer, which captures the exact
``asympo-train`` command line it would run; that command line then goes through the launcher's
own ``build_config`` (what ``--dry-run`` runs). One script also runs end to end through the real
``asympo-train --dry-run`` console script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from asympo_plugin.verl.launcher import build_config

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
MODEL = "/models/test-model"
DATA_DIR = "/data/asympo_math"


def script_argv(script: str, *args: str, **env: str) -> list[str]:
    """The asympo-train arguments a recipe script passes (bash runs it; nothing is launched)."""
    full_env = {**os.environ, "ASYMPO_TRAIN": "printf %s\\n", "DATA_DIR": DATA_DIR, "MODEL_PATH": MODEL, **env}
    full_env.pop("DRY_RUN", None)
    out = subprocess.run(["bash", str(RECIPES / script), *args], env=full_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def compose(script: str, *args: str, **env: str):
    argv = script_argv(script, *args, **env)
    cfg, pipeline, _ = build_config(argv)
    OmegaConf.to_yaml(cfg, resolve=True)  # every interpolation resolves
    return cfg, pipeline


def assert_behavior_free(cfg, loss="asympo"):
    ref = cfg.actor_rollout_ref
    assert ref.actor.policy_loss.loss_mode == loss
    assert ref.rollout.calculate_log_probs is False  # the rollout neither computes nor ships log-probs
    assert cfg.algorithm.rollout_correction.bypass_mode is False  # no bypass copy; the stage is skipped
    assert ref.actor.calculate_entropy is True  # actor/entropy from the update forward
    assert ref.actor.loss_agg_mode == "seq-mean-token-mean"


def assert_common(cfg):
    assert cfg.actor_rollout_ref.model.path == MODEL
    assert cfg.data.train_files == f"{DATA_DIR}/train.parquet" and cfg.data.val_files == f"{DATA_DIR}/test.parquet"
    assert cfg.reward.custom_reward_function.path == "pkg://asympo_plugin.verl.math_reward"
    assert cfg.algorithm.adv_estimator in ("grpo", "gpg")


def gpus(cfg):
    return cfg.trainer.nnodes * cfg.trainer.n_gpus_per_node, cfg.rollout.nnodes * cfg.rollout.n_gpus_per_node


@pytest.mark.parametrize("model", ["qwen3-1.7b-base", "qwen3-4b-base", "llama3.2-3b-instruct"])
def test_one_step_off_fsdp2(model):
    cfg, pipeline = compose("run_one_step_off_fsdp2.sh", MODEL=model)
    assert pipeline.entry_module == "verl.experimental.one_step_off_policy.main_ppo"
    assert_behavior_free(cfg)
    assert_common(cfg)
    assert cfg.actor_rollout_ref.actor.strategy == "fsdp2" and cfg.model_engine == "dp"
    assert cfg.actor_rollout_ref.hybrid_engine is False
    assert gpus(cfg) == (4, 4)  # 1 node x 8 GPUs, as the script header says


def test_one_step_off_fsdp2_other_loss_and_extra_overrides():
    cfg, _ = compose("run_one_step_off_fsdp2.sh", "trainer.total_training_steps=7", LOSS="spo")
    assert_behavior_free(cfg, "spo")
    assert cfg.trainer.total_training_steps == 7


@pytest.mark.parametrize(
    ("size", "tp", "pp", "cp", "trainer_gpus", "rollout_gpus", "rollout_tp"),
    [("8b", 4, 1, 2, 8, 8, 2), ("32b", 4, 2, 2, 16, 16, 4)],
)
def test_one_step_off_megatron(size, tp, pp, cp, trainer_gpus, rollout_gpus, rollout_tp):
    cfg, pipeline = compose("run_one_step_off_megatron.sh", SIZE=size)
    assert pipeline.entry_module == "verl.experimental.one_step_off_policy.main_ppo"
    assert_behavior_free(cfg)
    assert_common(cfg)
    actor = cfg.actor_rollout_ref.actor
    assert cfg.model_engine == "megatron" and actor.strategy == "megatron"
    mc = actor.megatron
    assert (mc.tensor_model_parallel_size, mc.pipeline_model_parallel_size, mc.context_parallel_size) == (tp, pp, cp)
    assert gpus(cfg) == (trainer_gpus, rollout_gpus)
    assert trainer_gpus % (tp * pp * cp) == 0
    assert cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == rollout_tp
    assert rollout_gpus % rollout_tp == 0


@pytest.mark.parametrize("k", [1, 3])
def test_fully_async_with_staleness_bound(k):
    cfg, pipeline = compose("run_fully_async.sh", STALENESS_K=str(k))
    assert pipeline.entry_module == "verl.experimental.fully_async_policy.fully_async_main"
    assert_behavior_free(cfg)
    assert_common(cfg)
    assert cfg.async_training.staleness_threshold == k - 1
    assert cfg.actor_rollout_ref.actor.use_rollout_log_probs is False
    assert cfg.data.train_batch_size == 0 and cfg.data.gen_batch_size == 1  # what the pipeline requires


def test_fully_async_refuses_a_bad_staleness_bound():
    env = {**os.environ, "ASYMPO_TRAIN": "true", "STALENESS_K": "0"}
    out = subprocess.run(["bash", str(RECIPES / "run_fully_async.sh")], env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "STALENESS_K" in out.stderr


# ----------------------------------------------------------------------------------- head to head

VARIANTS = ["asympo", "spo", "naive", "gpg", "ppo_bypass", "ppo_recompute", "grpo_sync"]
LOSS_KEYS = {
    "actor_rollout_ref.actor.policy_loss.loss_mode",
    "algorithm.adv_estimator",
    "algorithm.rollout_correction.bypass_mode",
    "actor_rollout_ref.rollout.calculate_log_probs",
}
NAME_KEYS = {"trainer.experiment_name", "trainer.default_local_dir", "actor_rollout_ref.rollout.trace.experiment_name"}
# What differs between verl's one-step-off and synchronous trainers themselves.
PIPELINE_KEYS = {
    "actor_rollout_ref.hybrid_engine",
    "actor_rollout_ref.rollout.free_cache_engine",
    "actor_rollout_ref.rollout.checkpoint_engine.backend",
    "actor_rollout_ref.rollout.nnodes",
    "actor_rollout_ref.rollout.n_gpus_per_node",
    "rollout.nnodes",
    "rollout.n_gpus_per_node",
    "trainer.n_gpus_per_node",
}


def flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


@pytest.fixture(scope="module")
def matrix():
    resolved = {}
    for variant in VARIANTS:
        cfg, pipeline = compose("run_head_to_head.sh", variant)
        resolved[variant] = (flatten(OmegaConf.to_container(cfg, resolve=True)), pipeline.entry_module)
    return resolved


EXPECTED = {  # loss_mode, adv_estimator, bypass_mode, calculate_log_probs
    "asympo": ("asympo", "grpo", False, False),
    "spo": ("spo", "grpo", False, False),
    "naive": ("gpg", "grpo", False, False),
    "gpg": ("gpg", "gpg", False, False),
    "ppo_bypass": ("vanilla", "grpo", True, True),
    "ppo_recompute": ("vanilla", "grpo", False, False),
    "grpo_sync": ("vanilla", "grpo", False, False),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_head_to_head_variant_settings(matrix, variant):
    flat, entry = matrix[variant]
    got = tuple(
        flat[k]
        for k in (
            "actor_rollout_ref.actor.policy_loss.loss_mode",
            "algorithm.adv_estimator",
            "algorithm.rollout_correction.bypass_mode",
            "actor_rollout_ref.rollout.calculate_log_probs",
        )
    )
    assert got == EXPECTED[variant]
    sync = variant == "grpo_sync"
    assert entry == ("verl.trainer.main_ppo" if sync else "verl.experimental.one_step_off_policy.main_ppo")


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "asympo"])
def test_head_to_head_pairs_differ_only_in_loss_related_keys(matrix, variant):
    base, _ = matrix["asympo"]
    other, _ = matrix[variant]
    differing = {k for k in base.keys() | other.keys() if base.get(k, "<absent>") != other.get(k, "<absent>")}
    allowed = LOSS_KEYS | NAME_KEYS | (PIPELINE_KEYS if variant == "grpo_sync" else set())
    assert differing <= allowed, sorted(differing - allowed)


def test_head_to_head_ppo_recompute_and_sync_differ_only_in_the_pipeline(matrix):
    recompute, _ = matrix["ppo_recompute"]
    sync, _ = matrix["grpo_sync"]
    differing = {k for k in recompute.keys() | sync.keys() if recompute.get(k, "<absent>") != sync.get(k, "<absent>")}
    assert differing <= NAME_KEYS | PIPELINE_KEYS, sorted(differing - NAME_KEYS - PIPELINE_KEYS)


def test_head_to_head_unknown_variant_is_refused():
    env = {**os.environ, "ASYMPO_TRAIN": "true"}
    out = subprocess.run(["bash", str(RECIPES / "run_head_to_head.sh"), "ppo"], env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "unknown VARIANT=ppo" in out.stderr


# ------------------------------------------------------------------------------ end to end, data, reward


def test_a_recipe_through_the_real_asympo_train_dry_run():
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DRY_RUN": "1", "MODEL_PATH": MODEL}
    env.pop("ASYMPO_TRAIN", None)
    out = subprocess.run(
        ["bash", str(RECIPES / "run_head_to_head.sh"), "spo"], env=env, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cfg = yaml.safe_load(out.stdout)
    assert cfg["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "spo"
    assert cfg["actor_rollout_ref"]["rollout"]["calculate_log_probs"] is False


def test_every_script_is_valid_bash_and_states_its_gpus():
    scripts = sorted(RECIPES.glob("*.sh"))
    assert {p.name for p in scripts} >= {
        "run_one_step_off_fsdp2.sh",
        "run_one_step_off_megatron.sh",
        "run_fully_async.sh",
        "run_head_to_head.sh",
        "prepare_math_data.sh",
    }
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
        if script.name.startswith("run_"):
            assert "GPUs" in script.read_text(), f"{script.name} must state the GPUs it needs"


def test_data_prep_writes_verl_parquet(tmp_path):
    import pandas as pd

    from asympo_plugin.verl.data_prep import DataPrepError, prepare

    rows = [
        {"problem": "What is 1+1?", "solution": "We get \\boxed{2}."},
        {"problem": "Half of 1?", "answer": "\\frac{1}{2}"},
        {"problem": "Nested?", "solution": "so \\boxed{\\frac{\\sqrt{2}}{2}} done"},
        {"problem": "GSM style", "solution": "3 + 4 = 7\n#### 1,000"},
        {"problem": "no answer here", "solution": "none"},
    ]
    src = tmp_path / "math.jsonl"
    src.write_text("\n".join(__import__("json").dumps(r) for r in rows))
    counts = prepare(str(src), str(tmp_path / "out"), test_size=1, seed=0)
    assert counts == {"train": 3, "test": 1, "skipped": 1}
    frame = pd.concat([pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in ("train", "test")])
    assert set(frame.columns) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    answers = {r["ground_truth"] for r in frame["reward_model"]}
    assert answers <= {"2", "\\frac{1}{2}", "\\frac{\\sqrt{2}}{2}", "1000"} and len(answers) == 4 - ("none" in answers)
    prompt = frame["prompt"].iloc[0]
    assert prompt[0]["role"] == "user" and "\\boxed{}" in prompt[0]["content"]
    with pytest.raises(DataPrepError, match="question-key"):
        prepare(str(src), str(tmp_path / "bad"), question_key="question")


def test_math_reward_uses_math_verify(monkeypatch):
    pytest.importorskip("math_verify")
    from asympo_plugin.verl import math_reward

    # The verifier itself, in this (main) thread: equivalent forms agree, wrong answers do not.
    assert math_reward.verify_answer("0.5", "so x = \\boxed{\\frac12}") == 1.0
    assert math_reward.verify_answer("x^2+1", "... \\boxed{1+x^2}") == 1.0
    assert math_reward.verify_answer("3", "The answer is \\boxed{4}.") == 0.0
    assert math_reward.verify_answer("3", "I do not know") == 0.0
    # What verl calls, from a reward-manager thread: through the spawned pool (one worker keeps it quick).
    monkeypatch.setattr(math_reward, "POOL_WORKERS", 1)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as executor:
        result = executor.submit(math_reward.compute_score, "math", "\\boxed{3}", ["4", "3"]).result()
    assert result == {"score": 1.0, "acc": 1.0}
