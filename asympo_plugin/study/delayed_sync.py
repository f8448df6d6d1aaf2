"""Checkpoint engine ``cpu_delayed``: CPU weight sync that delivers weights ``delay`` versions late.

Why: the head-to-head study needs responses that are 2 and 4 policy versions stale, measured, on a
CPU. verl's one-step-off pipeline is stale by exactly one version (it samples batch ``k + 1`` with
the weights synced before update ``k``); its fully-async pipeline reaches higher staleness only by
timing, not by construction. This engine keeps verl's one-step-off loop unchanged and only makes the
rollout receive an older copy of the actor: at every sync the actor publishes its weights as usual,
and the rollout gets the weights published ``delay`` syncs earlier (the first ones while fewer
exist). Staleness is then ``1 + delay`` once ``delay + 1`` steps have passed (less before).

Two pieces, both selected by config (see :func:`configure`), nothing patched:

* :class:`DelayedCpuCheckpointEngine`: the CPU backend's ``cpu`` engine (``asympo_plugin.verl.cpu``) with a
  store that keeps the last ``delay + 1`` published state dicts instead of one; registered in
  verl's ``CheckpointEngineRegistry`` as ``cpu_delayed``; ``delay`` comes from
  ``checkpoint_engine.engine_kwargs.cpu_delayed.delay``, which verl passes to both sides.
* :class:`DelayedVersionedCheckpointEngineManager`: the CPU backend's versioned manager, but it stamps
  the rollout servers with the version of the weights they actually receive, so the measured
  ``asympo/staleness/*`` metric (``asympo_plugin.verl.cpu.staleness``, per trajectory) reports the staleness achieved, not the
  one intended. It also logs ``study/sync_delay`` and ``study/true_policy_version``.
"""

from __future__ import annotations

import asyncio

import ray

from verl.checkpoint_engine.base import CheckpointEngineManager, CheckpointEngineRegistry
from verl.utils.ray_utils import auto_await

from ..verl.cpu.checkpoint_engine import CpuCheckpointEngine
from ..verl.cpu.staleness import PREFIX as STALENESS_PREFIX
from ..verl.cpu.staleness import VersionedCheckpointEngineManager

BACKEND = "cpu_delayed"
STORE_NAME = "asympo_study_delayed_weight_store"
MODULE = __name__
MANAGER_CLASS = f"{__name__}.DelayedVersionedCheckpointEngineManager"


def delivered_index(published: int, delay: int) -> int:
    """Index (0-based, in publication order) of the weights delivered at the ``published``-th sync."""
    return max(0, published - delay)


class _DelayedWeightStore:
    """The last ``delay + 1`` publications ``[(global_steps, [ObjectRef])]``; readers get the oldest kept."""

    def __init__(self, delay: int):
        self.delay = delay
        self.published: list[tuple[int, list]] = []
        self.changed = asyncio.Condition()

    async def put(self, global_steps, refs) -> None:
        async with self.changed:
            self.published.append((global_steps, refs))
            del self.published[: -(self.delay + 1)]  # older ones can never be delivered again
            self.changed.notify_all()

    async def get(self, global_steps, timeout_s: float = 600.0):
        def ready():
            return any(g == global_steps for g, _ in self.published)

        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(ready), timeout_s)
            index = next(i for i, (g, _) in enumerate(self.published) if g == global_steps)
            return self.published[delivered_index(index, self.delay)][1]


_STORE_CLASS = ray.remote(_DelayedWeightStore)


class DelayedCpuCheckpointEngine(CpuCheckpointEngine):
    """The ``cpu`` engine whose rollout side receives the weights published ``delay`` syncs earlier."""

    def __init__(self, bucket_size: int = 0, is_master: bool = False, delay: int = 0, **kwargs) -> None:
        super().__init__(bucket_size=bucket_size, is_master=is_master, **kwargs)
        if int(delay) < 0:
            raise ValueError(f"{BACKEND}: engine_kwargs.{BACKEND}.delay must be >= 0, got {delay}")
        self.delay = int(delay)
        self._delayed_store = None

    def _store(self):
        # Sender and receivers hold a handle for the whole run, so the named store lives as long.
        if self._delayed_store is None:
            self._delayed_store = _STORE_CLASS.options(name=STORE_NAME, get_if_exists=True, num_cpus=0).remote(
                self.delay
            )
        return self._delayed_store


class DelayedVersionedCheckpointEngineManager(VersionedCheckpointEngineManager):
    """Stamps the rollout servers with the policy version they really receive (``delay`` syncs late).

    The true version of each sync follows the rule of ``asympo_plugin.verl.cpu.staleness`` (the first sync carries the loaded
    weights, version ``global_steps``; sync ``k`` carries the actor before update ``k``, version
    ``k - 1``); the delivered one is the true version of sync ``max(0, j - delay)``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.delay = int((self.config.engine_kwargs or {}).get(BACKEND, {}).get("delay", 0))
        self._true_versions: list[int] = []

    @auto_await
    async def update_weights(self, global_steps: int = None):
        true_version = global_steps if not self._true_versions else global_steps - 1
        self._true_versions.append(true_version)
        delivered = self._true_versions[delivered_index(len(self._true_versions) - 1, self.delay)]
        await asyncio.gather(
            *[server.set_pending_policy_version.remote(delivered) for r in self.replicas for server in r.servers]
        )
        metrics = await CheckpointEngineManager.update_weights(self, global_steps)
        return {
            **(metrics or {}),
            f"{STALENESS_PREFIX}/pushed_policy_version": delivered,
            "study/true_policy_version": true_version,
            "study/sync_delay": self.delay,
        }


def configure(cfg, delay: int) -> None:
    """Select this engine and manager in a composed one-step-off CPU config (after ``cpu.configure``)."""
    from omegaconf import OmegaConf, open_dict

    if "rollout" not in cfg or cfg.actor_rollout_ref.get("hybrid_engine", True):
        raise ValueError("a delayed weight sync needs the one-step-off pipeline (standalone rollout)")
    engine = "actor_rollout_ref.rollout.checkpoint_engine"
    with open_dict(cfg):
        OmegaConf.update(cfg, f"{engine}.backend", BACKEND, force_add=True)
        OmegaConf.update(cfg, f"{engine}.custom_backend_module", MODULE, force_add=True)
        OmegaConf.update(cfg, f"{engine}.engine_kwargs.{BACKEND}", {"delay": int(delay)}, merge=False, force_add=True)
        OmegaConf.update(cfg, "actor_rollout_ref.rollout.checkpoint_manager_class", MANAGER_CLASS, force_add=True)


def register() -> None:
    """Register ``cpu_delayed`` in verl's checkpoint-engine registry (idempotent)."""
    CheckpointEngineRegistry.register(BACKEND)(DelayedCpuCheckpointEngine)


# Loaded in every worker through checkpoint_engine.custom_backend_module, which only imports it.
register()
