"""The CPU backend's changes to verl (``asympo_plugin/verl/cpu/patches.py``, ``staleness.py``): each diff in
``patches/`` still applies to the installed verl, each patch still matches verl's source, and the
replay-buffer poll patch does what it says - in a subprocess, so this test process's verl stays stock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from patch_diffs import assert_diff_applies
import verl

from asympo_plugin.verl.cpu.patches import CPU_PATCHES
from asympo_plugin.verl.cpu.staleness import FULLY_ASYNC_RECORDER_PATCH, STALENESS_PATCH

REPO = Path(__file__).resolve().parents[1]
ALL = (*CPU_PATCHES, STALENESS_PATCH, FULLY_ASYNC_RECORDER_PATCH)


@pytest.mark.parametrize("patch", ALL, ids=lambda p: p.name)
def test_cpu_patch_diff_applies_to_the_pinned_verl(patch, tmp_path):
    diff = REPO / "patches" / f"{patch.name}.diff"
    assert diff.exists(), f"patches/{patch.name}.diff is missing"
    site = Path(verl.__file__).parents[1]
    assert_diff_applies(diff, site, tmp_path)


@pytest.mark.parametrize("patch", ALL, ids=lambda p: p.name)
def test_cpu_patch_still_matches_verls_source(patch):
    patch.check()  # PatchError names what changed when verl's source is not what the patch was written for


def test_replay_buffer_polls_fast_on_cpu_only():
    code = (
        "import inspect\n"
        "from verl.trainer.ppo.v1 import replay_buffer as rb\n"
        "captured = {}\n"
        "def spy(self, mode, config, threshold, strategy, sampler_kwargs, poll_interval=2.0, **k): captured['poll'] = poll_interval\n"
        "import asympo_plugin.verl.cpu.patches as p\n"
        "fast = p._fast_poll(spy)\n"
        "fast(None, 'sync', {}, None, 'drop', {})\n"
        "assert captured['poll'] == p.CPU_POLL_INTERVAL_S, captured\n"
        "fast(None, 'sync', {}, None, 'drop', {}, poll_interval=3.0)\n"
        "assert captured['poll'] == 3.0, captured\n"
        "captured.clear(); fast(None, 'sync', {}, None, 'drop', {}, 4.0)\n"
        "assert captured['poll'] == 4.0, captured  # given positionally: kept\n"
        "from asympo_plugin import patching\n"
        "stock = rb.ReplayBuffer.__init__\n"
        "patching.install([p.REPLAY_BUFFER_POLL_PATCH])\n"
        "assert rb.ReplayBuffer.__init__ is not stock and patching.is_patched(rb.ReplayBuffer.__init__, [p.REPLAY_BUFFER_POLL_PATCH])\n"
        "patching.install([p.REPLAY_BUFFER_POLL_PATCH])\n"
        "assert rb.ReplayBuffer.__init__.__wrapped__ is stock  # idempotent: applied once\n"
        "assert patching.applied([p.REPLAY_BUFFER_POLL_PATCH]) == {'cpu_replay_buffer_poll': True}\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=REPO)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_stock_verl_run_keeps_the_2s_poll():
    """Without ``ASYMPO_CPU=1`` the plugin's entry point installs no CPU patch."""
    code = (
        "import verl.trainer.ppo.v1.replay_buffer as rb, inspect\n"
        "import asympo_plugin.verl.plugin\n"
        "from asympo_plugin import patching\n"
        "from asympo_plugin.verl.cpu.patches import REPLAY_BUFFER_POLL_PATCH as P\n"
        "assert not patching.is_patched(rb.ReplayBuffer.__init__, [P])\n"
        "assert inspect.signature(rb.ReplayBuffer.__init__).parameters['poll_interval'].default == 2.0\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "ASYMPO_CPU"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=REPO, env=env)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
