"""Every OpenRLHF patch of the adapter applies to the installed 0.11.2 and refuses changed code or another version."""

from __future__ import annotations

import inspect

import pytest

from asympo_plugin import patching
from asympo_plugin.openrlhf import launcher
from asympo_plugin.openrlhf.cpu import shims
from asympo_plugin.openrlhf.wiring import PATCHES
from asympo_plugin.patching import PatchError

ALL = (*PATCHES, *shims.PATCHES)


def _owner(patch):
    return patching._resolve(patch.module, patch.attr)


@pytest.mark.parametrize("patch", ALL, ids=lambda p: p.name)
def test_applied_in_a_cpu_worker(patch):
    import importlib

    importlib.import_module(patch.module)
    assert patch.is_applied()
    patch.apply()  # idempotent
    assert patch.is_applied()


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name)
def test_refuses_changed_source(patch, monkeypatch):
    owner, name = _owner(patch)
    monkeypatch.setattr(owner, name, lambda *a, **k: None)
    with pytest.raises(PatchError, match="not the code it was written for"):
        patch.apply()


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name)
def test_refuses_another_openrlhf(patch, monkeypatch):
    owner, name = _owner(patch)
    monkeypatch.setattr(owner, name, inspect.getattr_static(owner, name).__wrapped__)
    monkeypatch.setattr(patching, "installed_version", lambda dist: "0.11.3")
    with pytest.raises(PatchError, match="openrlhf ==0.11.2"):
        patch.apply()


def test_make_experience_is_openrlhf_source_plus_the_edits():
    import linecache
    import textwrap

    from asympo_plugin.openrlhf import behavior_free as bf
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    running = RemoteExperienceMaker.make_experience
    original = inspect.unwrap(running.__wrapped__)
    expected = textwrap.dedent(inspect.getsource(original))
    for old, new in bf.MAKE_EXPERIENCE_EDITS:
        expected = expected.replace(old, new)
    compiled = [name for name in linecache.cache if name.startswith("<asympo-plugin patch openrlhf_skip_old_log_prob:")]
    assert compiled and "".join(linecache.getlines(compiled[0])) == expected


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--actor.policy_loss_type", "foo"], "unknown"),
        (["--actor.policy_loss_type", "ppo", "--actor.asympo_eps", "0.1"], "setting of asympo"),
        (["--actor.policy_loss_type", "asympo", "--actor.asympo_eps", "-1", "--algo.kl.init_coef", "0"], "asympo_eps"),
        (
            ["--actor.policy_loss_type", "spo", "--actor.spo_neg_scale", "2", "--algo.kl.init_coef", "0"],
            "spo_neg_scale",
        ),
        (["--actor.policy_loss_type", "asympo"], "algo.kl.use_loss"),
        (
            ["--actor.policy_loss_type", "asympo", "--algo.kl.use_loss", "--algo.kl.unbiased_gradient"],
            "unbiased_gradient",
        ),
        (
            [
                "--actor.policy_loss_type",
                "spo",
                "--algo.kl.init_coef",
                "0",
                "--algo.advantage.is_correction_level",
                "token",
            ],
            "is_correction_level",
        ),
        (
            ["--actor.policy_loss_type", "asympo", "--algo.kl.init_coef", "0", "--actor.loss_agg_mode", "token-mean"],
            "asympo_allow_unbalanced_agg",
        ),
    ],
)
def test_launcher_refuses_before_ray(argv, match, capsys):
    import ray

    assert launcher.main(["--asympo.cpu", "--actor.model_name_or_path", "x", *argv]) == 2
    assert match in capsys.readouterr().err
    assert not ray.is_initialized()


def test_launcher_defaults_asympo_to_balanced_aggregation():
    args = launcher.parse_args(
        ["--actor.policy_loss_type", "asympo", "--algo.kl.init_coef", "0", "--actor.model_name_or_path", "x"]
    )
    assert (args.actor.policy_loss_type, args.actor.loss_agg_mode, args.actor.asympo_eps) == (
        "asympo",
        "seq-mean-token-mean",
        0.01,
    )


def test_launcher_refuses_another_openrlhf(monkeypatch, capsys):
    from asympo_plugin.openrlhf import compat

    monkeypatch.setattr(compat, "installed_version", lambda dist: "0.12.0")
    assert launcher.main(["--actor.policy_loss_type", "asympo"]) == 2
    assert "openrlhf==0.11.2" in capsys.readouterr().err
