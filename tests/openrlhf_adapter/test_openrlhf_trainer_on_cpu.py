"""OpenRLHF 0.11.2's real learner side on CPU: ``BasePPOTrainer.train_step`` -> ``RemoteExperienceMaker`` ->
a real ``PolicyModelActor`` (Ray actor, DeepSpeed CPU accelerator) -> ``ActorPPOTrainer.ppo_train`` /
``training_step``, on a tiny random-init Qwen2 built locally (``asympo_plugin/openrlhf/cpu/learner.py``).

For asympo and spo: one step raises the positive-advantage responses' log-probs and lowers the negative
ones, the loss is finite, the scale diagnostics reach the returned status under the verl adapter's names,
and experience making dispatched no forward to the actor (counted on the real dispatch path). PPO: the
actor forward runs, OpenRLHF's own metrics are there, none of the plugin's.
"""

from __future__ import annotations

import math

import pytest

from asympo_plugin.core import metrics as names
from asympo_plugin.openrlhf.cpu import learner as L

N_PROMPTS, N_SAMPLES, PROMPT_LEN, RESPONSE_LEN = 4, 4, 8, 12
OLD_LOG_PROB_FORWARD = ("PolicyModelActor", "forward")

PLUGIN_METRICS = [
    names.scale_key(names.POS_NLL),
    names.scale_key(names.NEG_NLL),
    names.scale_key(names.NLL_RATIO),
    names.scale_key(names.BALANCE_RESIDUAL_NAIVE),
    names.scale_key(names.BALANCE_RESIDUAL),
    names.scale_key(names.NONFINITE_FRAC),
    names.OLD_LOG_PROB_SKIPPED,
]
ASYMPO_ONLY = [names.floored_key(), *(names.asympo_scale_key(q) for q in names.SCALE_QUANTILES)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return L.save_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="module")
def ray_session():
    import ray

    L.init_ray()
    yield
    ray.shutdown()


def _one_step(loss, model_dir):
    argv = L.openrlhf_argv(loss, model_dir, n_prompts=N_PROMPTS, n_samples=N_SAMPLES, lr=1e-3)
    learner = L.Learner(argv)
    try:
        samples = L.rollout_samples(
            learner.tokenizer,
            n_prompts=N_PROMPTS,
            n_samples=N_SAMPLES,
            prompt_len=PROMPT_LEN,
            response_len=RESPONSE_LEN,
        )
        before = learner.response_log_probs(samples)
        counter = L.DispatchCounter()
        status, seconds = learner.train_step(samples, counter)
        after = learner.response_log_probs(samples)
    finally:
        learner.close()
    rewards = [float(s.rewards) for s in samples]
    return status, counter.calls, after - before, rewards, seconds


@pytest.mark.parametrize("loss", ["asympo", "spo"])
def test_behavior_free_step_in_openrlhfs_real_trainer(loss, model_dir, ray_session):
    status, calls, delta, rewards, seconds = _one_step(loss, model_dir)
    assert calls[OLD_LOG_PROB_FORWARD] == 0, calls  # experience making ran no actor forward
    assert calls[("PolicyModelActor", "append")] == 1, calls  # ...but did hand the batch to the real actor
    assert math.isfinite(status["policy_loss"]), status
    pos = [d for d, r in zip(delta.tolist(), rewards) if r > 0]
    neg = [d for d, r in zip(delta.tolist(), rewards) if r == 0]
    assert sum(pos) / len(pos) > 0 and sum(neg) / len(neg) < 0, (pos, neg)
    assert sum(d > 0 for d in pos) >= 0.75 * len(pos) and sum(d < 0 for d in neg) >= 0.75 * len(neg), (pos, neg)
    expected = PLUGIN_METRICS + (ASYMPO_ONLY if loss == "asympo" else [])
    missing = [k for k in expected if k not in status]
    assert not missing, sorted(status)
    assert status[names.OLD_LOG_PROB_SKIPPED] == 1.0
    assert all(math.isfinite(status[k]) for k in expected)
    assert "ppo_clip_ratio" not in status and "ppo_kl" not in status
    print(f"{loss}: train_step {seconds:.2f} s, pos {sum(pos) / len(pos):+.3f}, neg {sum(neg) / len(neg):+.3f}")


def test_ppo_is_stock_openrlhf(model_dir, ray_session, tmp_path, monkeypatch):
    from asympo_plugin import patching
    from asympo_plugin.openrlhf.cpu import PROBE_ENV, probe

    # The CLI end-to-end test counts old-log-prob forwards with this probe: here it must see PPO's one.
    monkeypatch.setenv(PROBE_ENV, str(tmp_path))
    patching.install(probe.PATCHES)
    status, calls, delta, rewards, seconds = _one_step("ppo", model_dir)
    assert calls[OLD_LOG_PROB_FORWARD] == 1, calls  # PPO's old-log-prob forward runs as in stock OpenRLHF
    probed = [r["actor"] for r in probe.read(tmp_path, "dispatch")]
    assert probed == ["PolicyModelActor"], probed
    assert math.isfinite(status["policy_loss"])
    assert "ppo_clip_ratio" in status and "ppo_kl" in status
    assert not [k for k in status if k.startswith("actor/scale/") or k == names.OLD_LOG_PROB_SKIPPED], sorted(status)
    pos = [d for d, r in zip(delta.tolist(), rewards) if r > 0]
    neg = [d for d, r in zip(delta.tolist(), rewards) if r == 0]
    assert sum(pos) / len(pos) > 0 and sum(neg) / len(neg) < 0, (pos, neg)
    print(f"ppo: train_step {seconds:.2f} s")
