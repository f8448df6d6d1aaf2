"""A CPU platform for verl's ``PlatformRegistry``: device ``cpu``, process groups over ``gloo``.

verl asks its platform for everything device-specific (device name, ``torch.<device>`` module,
collective backend, Ray resource). This platform answers for a machine without an accelerator,
selected with ``VERL_PLATFORM=cpu`` (``configure`` sets it for the driver and every Ray worker).

It keeps Ray's resource name ``GPU``: verl's resource pools always reserve ``GPU`` bundles, so the
CPU run starts Ray with fake GPUs (``ray_kwargs.ray_init.num_gpus``) instead of rewriting the
resource manager. A fake GPU is only a scheduling token here; nothing touches CUDA.
"""

from __future__ import annotations

import types
from contextlib import contextmanager

import torch

from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM_NAME = "cpu"


def _zero(*args, **kwargs):
    return 0


def _noop(*args, **kwargs):
    return None


class _CpuDeviceModule(types.ModuleType):
    """``torch.cpu`` plus the ``torch.cuda``-style calls verl makes (memory stats, caches, RNG).

    On CPU there is no device cache to empty and no separate device RNG, so these are no-ops (or
    the global CPU RNG); memory statistics read 0, which verl only logs.
    """

    empty_cache = staticmethod(_noop)
    ipc_collect = staticmethod(_noop)
    set_per_process_memory_fraction = staticmethod(_noop)
    reset_peak_memory_stats = staticmethod(_noop)
    memory_allocated = staticmethod(_zero)
    memory_reserved = staticmethod(_zero)
    max_memory_allocated = staticmethod(_zero)
    max_memory_reserved = staticmethod(_zero)
    manual_seed = staticmethod(torch.manual_seed)
    manual_seed_all = staticmethod(torch.manual_seed)
    get_rng_state = staticmethod(torch.get_rng_state)
    set_rng_state = staticmethod(torch.set_rng_state)

    @staticmethod
    def mem_get_info(*args, **kwargs):
        import psutil

        memory = psutil.virtual_memory()
        return memory.available, memory.total

    @staticmethod
    def get_device_name(*args, **kwargs):
        return "cpu"

    @staticmethod
    def current_device():
        return "cpu"

    def __getattr__(self, name):
        return getattr(torch.cpu, name)


CPU_DEVICE_MODULE = _CpuDeviceModule("asympo_plugin.verl.cpu.device_module")


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """verl platform for CPU-only machines (gloo collectives, fake ``GPU`` Ray resources)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return CPU_DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check=False) -> bool:
        # Never auto-detected: only VERL_PLATFORM=cpu selects it, so a GPU run is never affected.
        return False

    def current_device(self) -> str:
        # verl moves tensors with .to(get_device_id()); an int would mean an accelerator index.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index=None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0):
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets it for the fake GPUs; the CPU build of torch ignores it.
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self):
        return None
