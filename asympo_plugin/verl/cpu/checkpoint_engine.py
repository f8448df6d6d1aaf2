"""Checkpoint engine ``cpu``: actor-to-rollout weight sync through Ray's object store.

verl's asynchronous pipelines (one-step-off, fully async, V1 separate_async) move weights from the
training workers to the rollout servers with a checkpoint engine; verl 0.9.1 ships NCCL, NIXL,
HCCL and Mooncake engines and none that runs on a CPU. This one is registered in verl's
``CheckpointEngineRegistry`` (``actor_rollout_ref.rollout.checkpoint_engine.backend=cpu``):

* every actor rank drains its weight stream (gathering full tensors from FSDP shards is a
  collective, so all ranks must take part); rank 0 (``is_master``) puts the full CPU state dict
  into Ray's object store and publishes it in a small named store actor under ``global_steps``;
* every rollout-side worker waits for that version and yields the tensors to its server adapter.

The store keeps only the latest version, so memory stays at one copy of the weights.
"""

from __future__ import annotations

import asyncio

import ray
import torch

from verl.checkpoint_engine.base import CheckpointEngine, CheckpointEngineRegistry
from verl.workers.rollout.utils import ensure_async_iterator

from . import recorder

BACKEND = "cpu"
STORE_NAME = "asympo_cpu_weight_store"


class _WeightStore:
    """Latest published weights: ``{global_steps: [ObjectRef]}``; readers wait for their version."""

    def __init__(self):
        self.version = None
        self.refs = None
        self.changed = asyncio.Condition()

    async def put(self, version, refs) -> None:
        async with self.changed:
            self.version, self.refs = version, refs
            self.changed.notify_all()

    async def get(self, version, timeout_s: float = 600.0):
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.version == version), timeout_s)
            return self.refs


_STORE_CLASS = ray.remote(_WeightStore)


class CpuCheckpointEngine(CheckpointEngine):
    """See the module docstring. ``bucket_size`` is accepted for interface compatibility and unused."""

    def __init__(self, bucket_size: int = 0, is_master: bool = False, **kwargs) -> None:
        self.is_master = is_master
        self._store_handle = None

    def _store(self):
        # Every engine keeps its handle: a named actor dies with its last handle, and the sender and
        # the receivers live for the whole run, so the store does too (and starts only once).
        if self._store_handle is None:
            self._store_handle = _STORE_CLASS.options(name=STORE_NAME, get_if_exists=True, num_cpus=0).remote()
        return self._store_handle

    def prepare(self) -> dict:
        return {}

    @classmethod
    def build_topology(cls, actor_wg_world_size: int, rollout_world_size: int, metadata: list[dict]):
        return {}, {}

    def init_process_group(self, **kwargs):
        return None

    def finalize(self):
        return None

    @torch.no_grad()
    async def send_weights(self, weights, global_steps: int | None = None):
        state_dict = {}
        async for name, tensor in ensure_async_iterator(weights):
            if self.is_master:
                state_dict[name] = tensor.detach().to("cpu", copy=True)
        if self.is_master:
            if recorder.directory() is not None:
                recorder.published(state_dict, global_steps)
            # A list keeps the ObjectRef a reference (Ray would resolve a top-level one).
            await self._store().put.remote(global_steps, [ray.put(state_dict)])
        return {}

    async def receive_weights(self, global_steps: int | None = None):
        refs = await self._store().get.remote(global_steps)
        state_dict = await refs[0]
        for name, tensor in state_dict.items():
            yield name, tensor


def register() -> None:
    """Register the ``cpu`` backend in verl's checkpoint-engine registry (idempotent)."""
    CheckpointEngineRegistry.register(BACKEND)(CpuCheckpointEngine)


# Also loaded through checkpoint_engine.custom_backend_module, which only imports the module.
register()
