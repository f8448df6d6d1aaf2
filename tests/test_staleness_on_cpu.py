"""Policy versions for the staleness metric from any rollout server's ``global_steps`` stamp
(``asympo_plugin/verl/cpu/staleness.py``): vLLM stamps only that; the ``hf`` server also its own version."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import verl
from verl import DataProto

from asympo_plugin.verl.cpu.staleness import STALENESS_PATCH, stamp_policy_versions, staleness_metrics

REPO = Path(__file__).resolve().parents[1]


def _batch(global_steps, policy_version=None) -> DataProto:
    non_tensor = {"global_steps": np.array(global_steps, dtype=object)}
    if policy_version is not None:
        non_tensor["policy_version"] = np.array(policy_version, dtype=object)
    return DataProto.from_dict(non_tensors=non_tensor)


def test_versions_from_the_sync_stamp_one_step_off():
    # One-step-off: the sync before training (global_steps 0) and the one at step 1 both push version 0,
    # the sync at step k pushes version k - 1; step 3 trains (learner version 2) on samples of the step-2 sync.
    versions = {0: 0, 1: 0, 2: 1, 3: 2}
    batch = _batch([2, 2, 2, 2])
    stamp_policy_versions(batch, versions)
    assert list(batch.non_tensor_batch["policy_version"]) == [1, 1, 1, 1]
    assert staleness_metrics(batch, learner_version=2)["asympo/staleness/mean"] == 1


def test_a_mixed_batch_gives_per_trajectory_staleness():
    batch = _batch([1, 2, 3, 2])
    stamp_policy_versions(batch, {0: 0, 1: 0, 2: 1, 3: 2})
    m = staleness_metrics(batch, learner_version=3)
    assert (m["asympo/staleness/min"], m["asympo/staleness/max"], m["asympo/staleness/mean"]) == (1, 3, 2)


def test_a_servers_own_version_wins_and_unknown_stays_unmeasured():
    batch = _batch([2, 2], policy_version=[5, None])
    stamp_policy_versions(batch, {2: 1})
    assert list(batch.non_tensor_batch["policy_version"]) == [5, 1]
    unknown = _batch([None, 2])
    stamp_policy_versions(unknown, {2: 1})
    assert staleness_metrics(unknown, learner_version=2) == {}, "a trajectory without a version must not be guessed"


def test_staleness_diff_applies_to_the_pinned_verl(tmp_path):
    diff = REPO / "patches" / f"{STALENESS_PATCH.name}.diff"
    site = Path(verl.__file__).parents[1]
    target = [line[6:].strip() for line in diff.read_text().splitlines() if line.startswith("+++ b/")][0]
    (tmp_path / target).parent.mkdir(parents=True)
    shutil.copy(site / target, tmp_path / target)
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    result = subprocess.run(["git", "apply", "--check", "-p1", str(diff)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
