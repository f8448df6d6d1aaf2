"""Run verl 0.9.1's real trainers on a CPU-only machine (``trainer.device=cpu``).

One switch: ``asympo-train ... trainer.device=cpu``. The launcher then calls :func:`configure`
on the composed config, which

* applies every CPU setting (listed in :func:`configure`), and
* sets ``ASYMPO_CPU=1`` for the driver and, through Ray's runtime env, for every Ray worker.

``asympo_plugin/__init__.py`` imports this package only when ``ASYMPO_CPU=1``; importing it then
calls :func:`activate` (once per process), which registers the CPU pieces in verl:

* ``platform.py``: the ``cpu`` platform (``PlatformRegistry``; ``VERL_PLATFORM=cpu`` selects it);
* ``rollout.py``: the ``hf`` rollout backend (``RolloutReplicaRegistry`` and the rollout registry);
* ``checkpoint_engine.py``: the ``cpu`` weight-sync engine (``CheckpointEngineRegistry``);
* ``staleness.py``: policy versions and the measured ``asympo/staleness/*`` metric (one-step-off);
* ``patches.py``: the one unavoidable fix to verl's code (plain ``gloo`` process groups).

Nothing here is imported, registered or patched in a run without ``ASYMPO_CPU=1``, so GPU runs
are untouched; and the CPU platform is never auto-detected.
"""

from __future__ import annotations

import functools
import os

ENV_FLAG = "ASYMPO_CPU"

# Environment of every process of a CPU run (driver and Ray workers).
CPU_ENV = {
    ENV_FLAG: "1",
    "VERL_PLATFORM": "cpu",
    # verl's documented override of engine selection: its FSDP engine is plain torch and runs on
    # CPU, but is registered for devices cuda/npu only.
    "VERL_ENGINE_DEVICE": "cuda",
    "VERL_ENGINE_VENDOR": "nvidia",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_AUTH_MODE": "disabled",
}

# Logical CPUs Ray may schedule: verl reserves one per helper actor (the one-step-off task runner
# alone asks for 10), far more than the cores of a laptop; the work itself is light.
RAY_NUM_CPUS = 32
CHECKPOINT_ENGINE_MODULE = "asympo_plugin.cpu.checkpoint_engine"
CHECKPOINT_MANAGER_CLASS = "asympo_plugin.cpu.staleness.VersionedCheckpointEngineManager"
VERL_DEFAULT_GPUS_PER_NODE = 8


@functools.cache
def activate() -> None:
    """Register the CPU platform, the ``hf`` rollout, the ``cpu`` checkpoint engine; apply patches."""
    # The platform first: importing verl's trainer modules below already asks for it.
    from . import platform  # noqa: F401  (registers "cpu" in PlatformRegistry)
    from . import checkpoint_engine, rollout
    from .patches import GLOO_PROCESS_GROUP_PATCH
    from .staleness import STALENESS_PATCH

    rollout.register()
    checkpoint_engine.register()
    GLOO_PROCESS_GROUP_PATCH.apply()
    STALENESS_PATCH.apply()


def _set(cfg, path: str, value) -> None:
    from omegaconf import OmegaConf

    OmegaConf.update(cfg, path, value, merge=False, force_add=True)


def configure(cfg) -> None:
    """Apply the CPU settings to a composed verl config, in place. Call it when ``trainer.device == "cpu"``.

    Works for the standard trainer (``verl.trainer.main_ppo``, synchronous, hybrid engine) and for
    the one-step-off pipeline (config ``one_step_off_ppo_trainer``; recognised by its top-level
    ``rollout`` section). It sets:

    * Ray: ``num_cpus`` (logical), fake ``num_gpus`` = trainer ranks + standalone rollout ranks, and
      the CPU environment (``CPU_ENV``) in ``runtime_env.env_vars``; the same variables in ``os.environ``;
    * one rank per role unless set otherwise (verl's default of 8 GPUs per node becomes 1);
    * FSDP2 (FSDP1 needs an accelerator), fp32 parameters, SDPA attention, no padding removal
      (needs flash-attn), no torch.compile;
    * rollout ``hf`` (async, tensor parallel 1), one agent-loop worker, one reward worker, no
      dataloader worker processes, one TransferQueue storage unit;
    * checkpoint engine ``cpu`` wherever weights move between processes (one-step-off, fully async,
      V1 separate_async), and for one-step-off the versioned checkpoint manager (staleness metric).

    Exercised by the tests: one-step-off and the synchronous trainer. Fully async and V1
    separate_async get the same pieces but are not tested here.
    """
    from omegaconf import OmegaConf, open_dict

    if cfg.trainer.device != "cpu":
        raise ValueError(f"asympo_plugin.cpu.configure is for trainer.device=cpu, got {cfg.trainer.device!r}")
    # The async pipelines with their own rollout resources (one-step-off, fully async) have a top-level
    # ``rollout`` section; they and V1 separate_async move weights with a checkpoint engine.
    separate_rollout = "rollout" in cfg and not cfg.actor_rollout_ref.get("hybrid_engine", True)
    one_step_off = separate_rollout and "async_training" not in cfg
    v1_mode = OmegaConf.select(cfg, "trainer.v1.trainer_mode", default=None)
    needs_weight_sync = separate_rollout or v1_mode == "separate_async"

    with open_dict(cfg):
        # -- ranks and Ray resources ---------------------------------------------------------
        if cfg.trainer.n_gpus_per_node == VERL_DEFAULT_GPUS_PER_NODE:
            _set(cfg, "trainer.n_gpus_per_node", 1)
        n_gpus = cfg.trainer.n_gpus_per_node * cfg.trainer.nnodes
        if separate_rollout:
            if cfg.rollout.n_gpus_per_node == VERL_DEFAULT_GPUS_PER_NODE:
                _set(cfg, "rollout.n_gpus_per_node", 1)
            n_gpus += cfg.rollout.n_gpus_per_node * cfg.rollout.nnodes
        ray_init = "ray_kwargs.ray_init"
        if not cfg.ray_kwargs.ray_init.get("num_cpus"):
            _set(cfg, f"{ray_init}.num_cpus", RAY_NUM_CPUS)
        _set(cfg, f"{ray_init}.num_gpus", n_gpus)
        env_vars = dict(cfg.ray_kwargs.ray_init.runtime_env.get("env_vars") or {})
        _set(cfg, f"{ray_init}.runtime_env.env_vars", {**env_vars, **CPU_ENV})

        # -- model engine --------------------------------------------------------------------
        fp32 = {"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"}
        for role in ("actor", "ref"):
            _set(cfg, f"actor_rollout_ref.{role}.strategy", "fsdp2")
            _set(cfg, f"actor_rollout_ref.{role}.use_torch_compile", False)
            _set(cfg, f"actor_rollout_ref.{role}.fsdp_config.mixed_precision", fp32)
            _set(cfg, f"actor_rollout_ref.{role}.fsdp_config.dtype", "float32")
            _set(cfg, f"actor_rollout_ref.{role}.fsdp_config.use_torch_compile", False)
        _set(cfg, "critic.strategy", "fsdp2")
        _set(cfg, "actor_rollout_ref.model.use_remove_padding", False)
        _set(cfg, "actor_rollout_ref.model.override_config.attn_implementation", "sdpa")

        # -- rollout -----------------------------------------------------------------------------
        rollout = "actor_rollout_ref.rollout"
        _set(cfg, f"{rollout}.name", "hf")
        _set(cfg, f"{rollout}.mode", "async")
        _set(cfg, f"{rollout}.tensor_model_parallel_size", 1)
        _set(cfg, f"{rollout}.agent.num_workers", 1)
        _set(cfg, "reward.num_workers", 1)
        _set(cfg, "data.dataloader_num_workers", 0)
        if "transfer_queue" in cfg:
            _set(cfg, "transfer_queue.backend.SimpleStorage.num_data_storage_units", 1)
        if needs_weight_sync:
            _set(cfg, f"{rollout}.checkpoint_engine.backend", "cpu")
            _set(cfg, f"{rollout}.checkpoint_engine.custom_backend_module", CHECKPOINT_ENGINE_MODULE)
        if one_step_off:  # its policy-version rule is the one-step-off loop's (see staleness.py)
            _set(cfg, f"{rollout}.checkpoint_manager_class", CHECKPOINT_MANAGER_CLASS)

    for key, value in CPU_ENV.items():
        os.environ.setdefault(key, value)
    activate()


if os.environ.get(ENV_FLAG) == "1":
    activate()
