"""CPU/test support for the OpenRLHF adapter: OpenRLHF 0.11.2's real trainer and CLI on a machine without a GPU.

Nothing here is part of a GPU run. It is loaded only when ``ASYMPO_OPENRLHF_CPU=1`` (``asympo-openrlhf
--asympo.cpu`` sets it for the driver and, through Ray's runtime env, for every worker; the tests set it),
and :func:`activate` refuses to load where CUDA is available. What it does (measured facts:
``docs/OPENRLHF.md``, the CPU section):

* ``stubs/flash_attn``: every ``openrlhf.models`` import needs flash-attn (a CUDA build); the stub defines
  the five names OpenRLHF imports, each raising if called (they serve packing and ring attention only);
  it goes on ``sys.path`` (and ``PYTHONPATH``, for vLLM's engine process, which is not a Ray worker).
* ``shims.py``: guarded patches for OpenRLHF's hard-coded CUDA calls, DeepSpeed's CPU ops (no JIT compile:
  torch's AdamW, no shared-memory all-reduce) and the CPU weight sync to vLLM (bytes through
  ``update_weight`` into ``cpu/vllm_worker.py``; the gloo sync group cannot coexist with DeepSpeed's).
* ``probe.py``: what the end-to-end test measures (which model groups experience making dispatched a
  forward to; a fingerprint of the weights sent and of the weights vLLM loaded), only with
  ``ASYMPO_OPENRLHF_PROBE_DIR`` set.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

ENV_FLAG = "ASYMPO_OPENRLHF_CPU"
PROBE_ENV = "ASYMPO_OPENRLHF_PROBE_DIR"
STUBS = str(Path(__file__).parent / "stubs")

# The environment of every process of a CPU run (driver, Ray workers, vLLM's engine process).
CPU_ENV = {
    ENV_FLAG: "1",
    "DS_ACCELERATOR": "cpu",
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "RAY_AUTH_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
    # DeepSpeed reads its rank from here; without it, it tries MPI (mpi4py).
    "LOCAL_RANK": "0",
}
# Placeholder GPUs for Ray: RayActorGroup and RolloutRayActor ask for num_gpus=1 each.
RAY_NUM_GPUS = 4
RAY_NUM_CPUS = 16


def enabled() -> bool:
    return os.environ.get(ENV_FLAG) == "1"


def env() -> dict[str, str]:
    """``CPU_ENV`` plus ``PYTHONPATH`` with the stubs first (for processes Ray does not start with a hook)."""
    paths = [STUBS, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != STUBS]]
    return {**CPU_ENV, "PYTHONPATH": os.pathsep.join(paths)}


def install_import_stubs() -> None:
    """Put the flash-attn stub on ``sys.path`` (CPU only)."""
    _refuse_on_gpu()
    if STUBS not in sys.path:
        sys.path.insert(0, STUBS)


def _refuse_on_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        raise RuntimeError(
            f"{ENV_FLAG}=1 selects the CPU test shims of asympo-plugin's OpenRLHF adapter, but CUDA is available. "
            f"Unset {ENV_FLAG} (and drop --asympo.cpu) on a GPU machine."
        )


@functools.cache
def activate() -> None:
    """Make this process CPU-ready: environment, flash-attn stub, the CPU patches (idempotent)."""
    _refuse_on_gpu()
    for key, value in env().items():
        if key == "PYTHONPATH":
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    install_import_stubs()
    from ... import patching
    from . import probe, shims

    patching.install(shims.PATCHES)
    if os.environ.get(PROBE_ENV):
        patching.install(probe.PATCHES)
