"""Loading: the entry point registers the losses in every process, and failures are loud."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from asympo_plugin import compat, registry


def test_ray_worker_registers_the_losses_through_the_entry_point_alone():
    """A fresh Ray worker that only imports verl has the losses; with verl's plugin loading off it does not."""
    import ray

    def registered_in_worker():  # defined here so Ray ships it by value: the worker imports only verl
        import sys

        from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

        return "asympo" in POLICY_LOSS_REGISTRY, "spo" in POLICY_LOSS_REGISTRY, "asympo_plugin" in sys.modules

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {}})
    try:
        probe = ray.remote(registered_in_worker)
        assert ray.get(probe.remote()) == (True, True, True)
        off = probe.options(runtime_env={"env_vars": {"VERL_USE_EXTERNAL_PLUGINS": "none"}})
        assert ray.get(off.remote()) == (False, False, False)
    finally:
        ray.shutdown()


def test_failed_load_is_printed_not_swallowed():
    """verl hides plugin load errors; our entry point module prints them to stderr first."""
    code = (
        "import os; os.environ['VERL_USE_EXTERNAL_PLUGINS'] = 'none'\n"
        "import verl.trainer.ppo.core_algos as ca\n"
        "ca.compute_policy_loss_vanilla = lambda old_log_prob, log_prob: None  # a verl with another loss API\n"
        "import asympo_plugin\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ | {})
    assert proc.returncode != 0
    assert "asympo-plugin: FAILED to register" in proc.stderr
    assert "This plugin supports verl" in proc.stderr


def test_assert_registered_names_the_fix(monkeypatch):
    from verl.trainer.ppo import core_algos

    monkeypatch.delitem(core_algos.POLICY_LOSS_REGISTRY, "asympo")
    with pytest.raises(RuntimeError, match="entry point did not load"):
        registry.assert_registered()


def test_refuses_a_verl_whose_loss_signature_differs(monkeypatch):
    from verl.trainer.ppo import core_algos

    def other_api(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config):
        raise AssertionError("never called")

    monkeypatch.setattr(core_algos, "compute_policy_loss_vanilla", other_api)
    with pytest.raises(compat.VerlIncompatibleError, match="policy losses take"):
        compat.check_verl()


def test_refuses_a_verl_whose_agg_loss_lacks_global_batch_info(monkeypatch):
    from verl.trainer.ppo import core_algos

    monkeypatch.setattr(core_algos, "agg_loss", lambda loss_mat, loss_mask, loss_agg_mode, dp_size=1: None)
    with pytest.raises(compat.VerlIncompatibleError, match="agg_loss lacks"):
        compat.check_verl()


def test_untested_verl_version_with_the_same_api_warns(monkeypatch):
    import verl

    monkeypatch.setattr(verl, "__version__", "0.10.0")
    with pytest.warns(UserWarning, match="tested with verl"):
        compat.check_verl()
    monkeypatch.setattr(verl, "__version__", "0.9.1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compat.check_verl() == "0.9.1"


def test_behavior_log_prob_needs_are_a_property_of_each_loss():
    assert registry.needs_behavior_log_probs("asympo") is False
    assert registry.needs_behavior_log_probs("spo") is False
    assert registry.needs_behavior_log_probs("gpg") is False
    assert registry.needs_behavior_log_probs("vanilla") is True
    assert registry.needs_behavior_log_probs("cispo") is True


def test_registration_is_idempotent():
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    before = dict(POLICY_LOSS_REGISTRY)
    registry.register.cache_clear()
    registry.register()
    assert POLICY_LOSS_REGISTRY == before  # built-ins are not wrapped twice
