"""Shared builders for CPU tests: realistic GRPO-style batches and real verl actor configs."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# Overrides that make verl's own validate_config accept a config without a real model.
VALID_OVERRIDES = [
    "algorithm.adv_estimator=grpo",
    "actor_rollout_ref.rollout.n=2",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2",
    "actor_rollout_ref.model.path=/nonexistent/model",
]


def make_batch(groups=4, group_size=4, max_len=12, seed=0, dtype=torch.float32, pad_value=float("-inf")):
    """A batch of ``groups * group_size`` responses with GRPO advantages (zero-sum per group).

    Returns ``(log_prob, advantages, mask)``; lengths vary from 1 to ``max_len``; log-prob is a leaf
    tensor requiring grad; masked positions hold ``pad_value`` (garbage, -inf by default) to prove they
    are never read.
    """
    g = torch.Generator().manual_seed(seed)
    bs = groups * group_size
    lengths = torch.randint(1, max_len + 1, (bs,), generator=g)
    mask = torch.arange(max_len)[None, :] < lengths[:, None]
    log_prob = -torch.rand(bs, max_len, generator=g) * 3 - 0.05
    log_prob = torch.where(mask, log_prob, torch.full_like(log_prob, pad_value))
    rewards = torch.randint(0, 2, (groups, group_size), generator=g).float()
    rewards[0] = torch.tensor([1.0, 0.0] * (group_size // 2))  # at least one mixed group
    adv = (rewards - rewards.mean(dim=1, keepdim=True)).reshape(bs)
    advantages = adv[:, None].expand(bs, max_len).clone()
    return log_prob.to(dtype).requires_grad_(True), advantages.to(dtype), mask


@pytest.fixture
def batch():
    return make_batch()


def actor_config(loss: str, *overrides: str):
    """A real verl actor config (verl's dataclass, instantiated by hydra) as asympo-train builds it."""
    from verl.utils.config import omega_conf_to_dataclass

    from asympo_plugin.verl.launcher import build_config

    cfg, _, _ = build_config(["--dry-run", f"algorithm.loss={loss}", *VALID_OVERRIDES, *overrides])
    return omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


# Hypothesis profiles: "ci" (make test: fast) and "fuzz" (make fuzz: >= 10,000 examples per test and loss).
# Select with --hypothesis-profile=fuzz or ASYMPO_HYPOTHESIS_PROFILE=fuzz.
try:  # both venvs install hypothesis (setup.cfg's test extra; requirements-openrlhf.txt)
    from hypothesis import settings as _hypothesis_settings
except ImportError:
    _hypothesis_settings = None
if _hypothesis_settings is not None:
    _hypothesis_settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True)
    _hypothesis_settings.register_profile("fuzz", max_examples=10_000, deadline=None, database=None)
    _hypothesis_settings.load_profile(os.environ.get("ASYMPO_HYPOTHESIS_PROFILE", "ci"))


# tests/openrlhf_adapter runs in OpenRLHF's own venv (`make test` calls it there). In verl's venv pytest must not
# collect it: its conftest would also be imported as the module `conftest` and shadow this one.
collect_ignore = [] if __import__("importlib.util").util.find_spec("openrlhf") else ["openrlhf_adapter"]
