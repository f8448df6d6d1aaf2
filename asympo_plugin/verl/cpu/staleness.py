"""Policy versions and a measured staleness metric for verl's one-step-off pipeline.

verl's one-step-off trainer logs no staleness, and the ``global_steps`` stamp a rollout server
reports is the trainer step of the weight sync, not the policy that was sampled: in this loop
the sync at step ``k`` carries the actor *before* step ``k``'s update. So we stamp the number of
optimizer updates the weights had seen (the *policy version*) and measure staleness per trajectory:

* :class:`VersionedCheckpointEngineManager` (``rollout.checkpoint_manager_class``) knows the version of
  every push. One-step-off syncs once before training (the weights as loaded: version ``global_steps``,
  i.e. 0, or ``N`` when resuming from a step-``N`` checkpoint) and then once per step ``k``, before that
  step's actor update (version ``k - 1``). Every rollout server of verl (vLLM, SGLang, the plugin's
  ``hf``) stamps ``extra_fields["global_steps"]`` of its last sync on each response it samples, so
  that stamp travels with the trajectory into the training batch; the manager's table turns it into
  the trajectory's ``policy_version`` (written into the batch). Servers that take the version
  themselves (``set_pending_policy_version``, the ``hf`` server) are told it too and stamp it directly.
* :data:`STALENESS_PATCH` adds, at each step ``k``, ``asympo/staleness/{mean,min,max}`` =
  learner version (``k - 1`` updates applied when step ``k`` trains) minus each trajectory's
  ``policy_version``. One-step-off gives 0 at the first step (nothing to be stale against) and 1
  at every later one; a value of 0 later would mean the pipeline trained on-policy.
"""

from __future__ import annotations

import asyncio

import numpy as np

from verl.checkpoint_engine.base import CheckpointEngineManager
from verl.utils.ray_utils import auto_await

from ...patching import Patch
from . import recorder

from ...core.metrics import STALENESS_PREFIX as PREFIX  # noqa: E402


class VersionedCheckpointEngineManager(CheckpointEngineManager):
    """verl's checkpoint manager that records (and tells servers that take it) each pushed policy version."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.versions: dict[int, int] = {}  # global_steps of a sync -> policy version it pushed

    @auto_await
    async def update_weights(self, global_steps: int = None):
        version = global_steps if not self.versions else global_steps - 1
        self.versions[global_steps] = version
        servers = [server for r in self.replicas for server in r.servers]
        await asyncio.gather(*[s.set_pending_policy_version.remote(version) for s in servers if _takes_version(s)])
        metrics = await super().update_weights(global_steps)
        return {**(metrics or {}), f"{PREFIX}/pushed_policy_version": version}


def _takes_version(server) -> bool:
    try:
        return getattr(server, "set_pending_policy_version", None) is not None
    except AttributeError:  # a Ray actor handle without that method
        return False


def stamp_policy_versions(batch, versions: dict[int, int]) -> None:
    """Fill ``policy_version`` of each trajectory from its server's ``global_steps`` stamp (where missing)."""
    stamped = batch.non_tensor_batch.get("policy_version")
    synced = batch.non_tensor_batch.get("global_steps")
    if synced is None:
        return
    filled = np.empty(len(synced), dtype=object)
    for i, step in enumerate(synced):
        own = None if stamped is None else stamped[i]
        filled[i] = own if own is not None else (None if step is None else versions.get(int(step)))
    batch.non_tensor_batch["policy_version"] = filled


def staleness_metrics(batch, learner_version: int) -> dict[str, float]:
    """``learner_version - policy_version`` over the batch's trajectories (empty if not stamped)."""
    versions = batch.non_tensor_batch.get("policy_version")
    if versions is None or any(v is None for v in versions):
        return {}
    staleness = learner_version - np.asarray(versions, dtype=np.float64)
    return {
        f"{PREFIX}/mean": float(staleness.mean()),
        f"{PREFIX}/min": float(staleness.min()),
        f"{PREFIX}/max": float(staleness.max()),
        f"{PREFIX}/learner_policy_version": float(learner_version),
    }


def _collect_metrics_with_staleness(original):
    def _fit_collect_metrics(self, batch):
        original(self, batch)
        manager = getattr(self, "checkpoint_manager", None)
        if isinstance(manager, VersionedCheckpointEngineManager):
            stamp_policy_versions(batch, manager.versions)
        # Step k trains the actor after k - 1 updates (also after resuming: a step-N checkpoint holds N).
        self.metrics.update(staleness_metrics(batch, learner_version=self.global_steps - 1))
        if recorder.directory() is not None:
            recorder.trained(batch, learner_version=self.global_steps - 1)

    return _fit_collect_metrics


STALENESS_PATCH = Patch(
    name="cpu_one_step_off_staleness_metric",
    why=(
        "verl's one-step-off trainer logs no staleness metric; this adds asympo/staleness/* measured from the "
        "policy_version each rollout server stamps on its responses, at the point where the batch is trained."
    ),
    module="verl.experimental.one_step_off_policy.ray_trainer",
    attr="OneStepOffRayTrainer._fit_collect_metrics",
    source_sha256="4180c12b81b804d14efc6e1df3074f59134e896b1ad457beef5085c1eddad218",
    make_replacement=_collect_metrics_with_staleness,
)


# -- verl's fully-async trainer: the evidence recorder only ------------------------------------------------
# verl logs its own staleness there (``fully_async/count/stale_trajectory_processed``: trajectories whose
# ``max_global_steps`` is behind ``current_param_version`` when the trainer takes them), so no metric is added.
# ``fit_step`` trains (``_fit_update_actor``) with ``current_param_version`` = the number of weight syncs after the
# initial one, then increments it (``_fit_update_local_step``) and syncs with ``global_steps=current_param_version``
# (``_fit_update_weights``); the rollout servers stamp that as ``global_steps``, and every trajectory carries the
# first and last stamp it was generated under (``min_global_steps``/``max_global_steps``). With
# ``trigger_parameter_sync_step=1`` and one optimizer step per trainer step, a param version is the number of
# optimizer updates: the recorder's learner and policy versions. With more local steps per sync the actor trains
# on weights no rollout ever served, so the recorder refuses that setting rather than mislabel it.


def _record_fully_async_batch(original):
    def _fit_update_actor(self, batch):
        if recorder.directory() is not None:
            if self.trigger_parameter_sync_step != 1:
                raise RuntimeError(
                    "the evidence recorder (ASYMPO_RECORD_DIR) needs async_training.trigger_parameter_sync_step=1 "
                    "(a param version is then the number of optimizer updates)"
                )
            nt = batch.non_tensor_batch
            recorder.trained(
                batch,
                learner_version=self.current_param_version,
                policy_versions=nt["max_global_steps"],
                first_policy_versions=nt["min_global_steps"],
            )
        return original(self, batch)

    return _fit_update_actor


FULLY_ASYNC_RECORDER_PATCH = Patch(
    name="cpu_fully_async_trained_batch_recorder",
    why=(
        "test evidence only (ASYMPO_RECORD_DIR): records each batch verl's fully-async trainer trains on, with "
        "the param version it trains at and each trajectory's min/max_global_steps, right before the actor update."
    ),
    module="verl.experimental.fully_async_policy.fully_async_trainer",
    # The class Ray instantiates (its tracing wrapper of the inherited method; see behavior_free.py).
    attr="FullyAsyncTrainer.__ray_metadata__.modified_class._fit_update_actor",
    source_sha256="0454b46d69d8f3140feb53f1fa71729f1617ba0878f27429b4e066c1923c0365",
    make_replacement=_record_fully_async_batch,
)
