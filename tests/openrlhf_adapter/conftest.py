"""OpenRLHF tests: run in .venv-openrlhf (scripts/setup_openrlhf_env.sh), skipped cleanly where OpenRLHF is absent."""

from __future__ import annotations

import importlib.metadata
import os

import pytest

try:
    importlib.metadata.version("openrlhf")
    _HAS_OPENRLHF = True
except importlib.metadata.PackageNotFoundError:
    _HAS_OPENRLHF = False

if not _HAS_OPENRLHF:
    collect_ignore_glob = ["test_*.py"]  # the verl environment: nothing here can run
else:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["ASYMPO_OPENRLHF_CPU"] = "1"
    from asympo_plugin.openrlhf import worker

    worker.setup()  # what every Ray worker of a CPU run does: CPU shims, then the adapter's patches


@pytest.fixture
def batch():
    import torch

    g = torch.Generator().manual_seed(0)
    groups, size, max_len = 4, 4, 12
    bs = groups * size
    lengths = torch.randint(1, max_len + 1, (bs,), generator=g)
    mask = torch.arange(max_len)[None, :] < lengths[:, None]
    log_prob = torch.where(mask, -torch.rand(bs, max_len, generator=g) * 3 - 0.05, torch.zeros(bs, max_len))
    rewards = torch.randint(0, 2, (groups, size), generator=g).float()
    rewards[0] = torch.tensor([1.0, 0.0] * (size // 2))
    adv = (rewards - rewards.mean(dim=1, keepdim=True)).reshape(bs)
    return log_prob, adv[:, None].expand(bs, max_len).clone(), mask
