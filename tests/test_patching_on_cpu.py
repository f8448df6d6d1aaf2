"""The patch guard (asympo_plugin/patching.py) on a real verl function."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from asympo_plugin.patching import ModulePatch, Patch, PatchError, source_sha256


@pytest.fixture
def agg_loss_patch(monkeypatch):
    from verl.trainer.ppo import core_algos

    monkeypatch.setattr(core_algos, "agg_loss", core_algos.agg_loss)  # restored after the test
    calls = []

    def make(original):
        def agg_loss(*args, **kwargs):
            calls.append(1)
            return original(*args, **kwargs)

        return agg_loss

    patch = Patch(
        name="test_count_agg_loss",
        why="test",
        module="verl.trainer.ppo.core_algos",
        attr="agg_loss",
        source_sha256=source_sha256(core_algos.agg_loss),
        make_replacement=make,
    )
    return patch, calls


def test_patch_applies_to_the_pinned_verl_and_twice_is_a_no_op(agg_loss_patch):
    import torch
    from verl.trainer.ppo import core_algos

    patch, calls = agg_loss_patch
    original = core_algos.agg_loss
    assert not patch.is_applied()
    patch.apply()
    patched = core_algos.agg_loss
    assert patch.is_applied() and patched is not original and patched.__wrapped__ is original
    patch.apply()
    assert core_algos.agg_loss is patched
    core_algos.agg_loss(torch.ones(2, 2), torch.ones(2, 2), "token-mean")
    assert calls == [1]


def test_patch_refuses_when_verl_changed_underneath(agg_loss_patch):
    patch, _ = agg_loss_patch
    stale = Patch(**{**patch.__dict__, "source_sha256": "0" * 64})
    with pytest.raises(PatchError, match="not the code it was written for"):
        stale.apply()


def test_patch_refuses_another_verl_version(agg_loss_patch):
    patch, _ = agg_loss_patch
    other = Patch(**{**patch.__dict__, "versions": SpecifierSet("==0.8.0")})
    with pytest.raises(PatchError, match="written for verl ==0.8.0"):
        other.apply()
    assert not other.is_applied()


def test_module_patch_refuses_a_changed_file_and_a_module_imported_before_it():
    """A module-body patch (``ModulePatch``) checks the file's hash, and says so when it comes too late."""
    import verl  # noqa: F401  (imported, so its body ran unedited)

    from asympo_plugin import patching

    late = ModulePatch(name="test_module_patch_too_late", why="test", module="verl", file_sha256="0" * 64, edits=())
    with pytest.raises(PatchError, match="not the code it was written for"):
        late.check()
    patching.install([late])
    assert "imported before the patch was installed" in patching.failures()[late.name]
    assert not late.is_applied()
