"""Loading: the entry point registers the losses in every process, and failures are loud."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from asympo_plugin.verl import compat
from asympo_plugin.verl import losses as registry


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
        "import asympo_plugin.verl.plugin\n"
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
    registry.register()
    assert POLICY_LOSS_REGISTRY == before
    registry.register(builtin_diagnostics=True)
    wrapped = dict(POLICY_LOSS_REGISTRY)
    try:
        registry.register(builtin_diagnostics=True)
        assert POLICY_LOSS_REGISTRY == wrapped  # built-ins are not wrapped twice
    finally:
        POLICY_LOSS_REGISTRY.update(before)


def _run(code: str, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ | env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_importing_the_core_and_the_package_loads_no_framework_and_installs_nothing():
    code = (
        "import sys\n"
        "hooks = list(sys.meta_path)\n"
        "import asympo_plugin, asympo_plugin.core, asympo_plugin.core.losses, asympo_plugin.core.diagnostics\n"
        "import asympo_plugin.core.fields, asympo_plugin.core.policy_loss, asympo_plugin.core.metrics\n"
        "import asympo_plugin.patching, asympo_plugin.verl, asympo_plugin.openrlhf\n"
        "frameworks = sorted({m.split('.')[0] for m in sys.modules} & {'verl', 'openrlhf', 'vllm', 'ray', 'deepspeed'})\n"
        "assert not frameworks, frameworks\n"
        "assert sys.meta_path == hooks, 'an import hook was installed'\n"
    )
    _run(code)


BUILTINS_CODE = (
    "import json, sys\n"
    "from verl.trainer.ppo import core_algos as ca\n"
    "print(json.dumps({n: [f.__module__, f.__qualname__, getattr(sys.modules[f.__module__], f.__name__, None) is f,"
    " getattr(f, 'asympo_diagnostics', False)]"
    " for n, f in ca.POLICY_LOSS_REGISTRY.items()}))\n"
)


def test_stock_losses_stay_verls_own_functions_unless_diagnostics_are_switched_on():
    """The registry with the plugin loaded equals a process where it is disabled, but for asympo and spo."""
    import json

    disabled = json.loads(_run(BUILTINS_CODE, VERL_USE_EXTERNAL_PLUGINS="none").stdout.splitlines()[-1])
    loaded = json.loads(_run(BUILTINS_CODE).stdout.splitlines()[-1])
    assert "asympo" not in disabled and {"asympo", "spo"} <= set(loaded)
    assert {n: v for n, v in loaded.items() if n not in ("asympo", "spo")} == disabled
    assert all(is_module_function and not diag for _, _, is_module_function, diag in disabled.values())
    switched = json.loads(_run(BUILTINS_CODE, ASYMPO_BUILTIN_DIAGNOSTICS="1").stdout.splitlines()[-1])
    assert switched["vanilla"][2:] == [False, True]  # the documented switch wraps them


UNSUPPORTED_CODE = (
    "import importlib.metadata as md, warnings\n"
    "real = md.version\n"
    "md.version = lambda name: '0.10.0' if name == 'verl' else real(name)  # an untested verl, same loss API\n"
    "warnings.simplefilter('ignore')\n"
    "import torch, verl\n"
    "from verl.workers.utils.losses import ppo_loss\n"
    "from verl.trainer.ppo import core_algos as ca\n"
    "from asympo_plugin.verl import behavior_free as bf\n"
    "assert not bf.is_patched(ppo_loss), 'patched an unsupported verl'\n"
    "assert ca.get_policy_loss_fn('vanilla') is ca.compute_policy_loss_vanilla\n"
    "from asympo_plugin.verl.launcher import main\n"
    "rc = main(['--dry-run', 'algorithm.loss=vanilla', 'algorithm.adv_estimator=grpo', 'actor_rollout_ref.rollout.n=2',"
    " 'actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2', 'actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2',"
    " 'actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=2', 'actor_rollout_ref.model.path=/nonexistent/model'])\n"
    "assert rc == 0, rc\n"
    "rc = main(['--dry-run', 'algorithm.loss=asympo', 'algorithm.adv_estimator=grpo', 'actor_rollout_ref.rollout.n=2'])\n"
    "assert rc == 2, rc\n"
)


def test_an_unsupported_verl_leaves_stock_runs_working_and_refuses_plugin_losses_before_ray():
    proc = _run(UNSUPPORTED_CODE)
    assert "needs verl ==0.9.1 (found 0.10.0)" in proc.stderr
    assert "pip install 'verl[verl-core]==0.9.1'" in proc.stderr


def test_the_verl_config_class_declares_the_cores_fields_and_defaults():
    from asympo_plugin.core import fields
    from asympo_plugin.verl.config import LOSS_FIELDS

    assert LOSS_FIELDS == fields.LOSS_FIELDS


@pytest.mark.parametrize("eps", [0, -1e-3, float("nan"), float("inf"), True, "0.01"])
def test_one_rule_for_asympo_eps_everywhere(eps):
    """The math, the verl config class and the launcher share the one check (inf was once accepted by the math)."""
    import torch

    from asympo_plugin.core import fields
    from asympo_plugin.core.losses import asympo_loss_mat
    from asympo_plugin.verl.config import AsympoPolicyLossConfig

    with pytest.raises(fields.LossConfigError, match="finite number > 0"):
        asympo_loss_mat(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), eps)
    with pytest.raises(fields.LossConfigError, match="policy_loss.asympo_eps"):
        AsympoPolicyLossConfig(loss_mode="asympo", asympo_eps=eps)
