"""Every change the adapter makes to OpenRLHF has a reviewable ``patches/<name>.diff`` that still applies to the
installed openrlhf 0.11.2 source; where the patch recompiles OpenRLHF's own source with text edits
(``patching.edit_source``), the diff is exactly those edits (regenerated here from the installed file)."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from pathlib import Path

import openrlhf
import pytest

from asympo_plugin.openrlhf import behavior_free, launcher
from asympo_plugin.openrlhf.cpu import probe, shims
from asympo_plugin.openrlhf.wiring import PATCHES

REPO = Path(__file__).resolve().parents[2]
SITE = Path(openrlhf.__file__).parents[1]
OPENRLHF_PATCHES = [
    p
    for p in (*PATCHES, *shims.PATCHES, *probe.PATCHES, launcher._cli_patch(lambda args: args))
    if p.distribution == "openrlhf"
]


def _indent(text: str) -> str:
    return "".join(("    " + line) if line.strip() else line for line in text.splitlines(keepends=True))


# Patches recompiled from OpenRLHF's source with edits: (file, edits at the file's indentation).
SOURCE_EDITS = {
    "openrlhf_skip_old_log_prob": (
        "openrlhf/trainer/ppo_utils/experience_maker.py",
        [(_indent(o), _indent(n)) for o, n in behavior_free.MAKE_EXPERIENCE_EDITS],
    ),
    "openrlhf_cpu_setup_distributed": (
        "openrlhf/utils/deepspeed/deepspeed.py",
        [(_indent(o), _indent(n)) for o, n in shims.SETUP_DISTRIBUTED_EDITS],
    ),
    "openrlhf_cpu_torch_adam": (
        "openrlhf/utils/deepspeed/deepspeed.py",
        [(_indent(o), _indent(n)) for o, n in shims.TORCH_ADAM_EDITS],
    ),
    "openrlhf_cpu_vllm_worker": ("openrlhf/trainer/ray/vllm_engine.py", shims.VLLM_WORKER_EDITS),
}


def _diff(patch) -> Path:
    return REPO / "patches" / f"{patch.name}.diff"


def test_every_openrlhf_patch_is_named_and_listed():
    names = [p.name for p in OPENRLHF_PATCHES]
    assert len(names) == len(set(names)) >= 10
    readme = (REPO / "patches" / "README.md").read_text()
    for name in names:
        assert name.startswith("openrlhf_"), name
        assert f"`{name}`" in readme, f"patches/README.md has no row for {name}"


@pytest.mark.parametrize("patch", OPENRLHF_PATCHES, ids=lambda p: p.name)
def test_diff_applies_to_the_installed_openrlhf(patch, tmp_path):
    diff = _diff(patch)
    assert diff.exists(), f"patches/{patch.name}.diff is missing"
    targets = [line[6:].strip() for line in diff.read_text().splitlines() if line.startswith("+++ b/")]
    assert targets and all(t.startswith("openrlhf/") for t in targets)
    module_file = patch.module.replace(".", "/") + ".py"
    assert module_file in targets or patch.name == "openrlhf_cli_plugin_loss", (module_file, targets)
    for target in targets:
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SITE / target, tmp_path / target)
    git = shutil.which("git")
    if git is None:
        pytest.skip("git not installed")
    result = subprocess.run([git, "apply", "--check", "-p1", str(diff)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(SOURCE_EDITS))
def test_recompiled_patches_run_exactly_their_diff(name):
    rel, edits = SOURCE_EDITS[name]
    source = (SITE / rel).read_text()
    edited = source
    for old, new in edits:
        assert edited.count(old) == 1, old
        edited = edited.replace(old, new)
    body = "".join(
        difflib.unified_diff(
            source.splitlines(keepends=True), edited.splitlines(keepends=True), f"a/{rel}", f"b/{rel}", n=3
        )
    )
    committed = (REPO / "patches" / f"{name}.diff").read_text()
    assert committed.split("\n", 1)[1] == body
