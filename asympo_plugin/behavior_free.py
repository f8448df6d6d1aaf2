"""Behavior-free pipelines: verl without behavior-policy log-probs when the loss never reads them.

ASymPO and SPO (and verl's own ``gpg``) are *current-policy-only*: their loss reads ``log_prob`` and
``advantages`` but never ``old_log_prob``. verl 0.9.1 still produces ``old_log_probs`` for every
batch, either by recomputing them with an extra actor forward pass (``compute_log_prob``) or by
copying the rollout engine's log-probs (``algorithm.rollout_correction.bypass_mode=True``, which
makes the rollout compute and ship per-token log-probs, ``rollout.calculate_log_probs=True``), and
``verl.workers.utils.losses.ppo_loss`` refuses a batch without them. For a behavior-free loss all of
that is wasted work and a correctness hazard (rollout/learner log-prob mismatch, versioning).

Whether a loss is behavior-free is decided only by the registry flag
``asympo_plugin.needs_behavior_log_probs(loss_mode)``; never by a list of names. For any loss that
needs behavior log-probs (PPO-clip ``vanilla``, ``bypass_mode``, ...) every patched function runs
verl's original code unchanged.

What changes (each a version- and source-guarded :class:`~asympo_plugin.patching.Patch`, with the
same change as a reviewable diff in ``patches/<name>.diff``; ``patches/README.md`` lists them):

* ``skip_old_log_prob_separation``: the one-step-off trainer and the fully-async trainer share
  ``SeparateRayPPOTrainer._fit_compute_log_prob``; skip it (no forward pass, no bypass copy).
* ``skip_old_log_prob_v1``: the default (V1) trainer's ``PPOTrainer._compute_old_log_prob``; skip it.
* ``skip_old_log_prob_v1_separate_async``: V1 ``separate_async`` overrides that method to save and
  restore the actor weights around the recompute; skip that too (no weight shuffling).
* ``ppo_loss_without_old_log_probs``: ``ppo_loss`` accepts a batch without ``old_log_probs`` for a
  behavior-free loss (the loss gets ``old_log_prob=None``), and logs ``actor/entropy`` (which the
  skipped pass used to log) from the update's own forward.
* ``fully_async_rollout_without_log_probs``: the fully-async rollouter asserts
  ``calculate_log_probs=True``; a behavior-free loss runs with ``False``.

Not covered: verl's deprecated legacy synchronous trainer (``trainer.use_v1=False``, ``main_ppo_v0``),
which computes old log-probs inside its 300-line ``fit()``. It trains a behavior-free loss correctly
but pays the forward pass; ``asympo-train`` says so (:func:`legacy_trainer_warning`).

Everything else uses verl's own settings, applied by :func:`configure` on the driver:
``rollout.calculate_log_probs=False``, ``rollout_correction.bypass_mode=False``,
``actor.calculate_entropy=True`` (so the update forward returns the entropy for the metric).

Patches are installed in every process when the plugin loads (``verl.plugins`` entry point, i.e. on
``import verl``). A patched module that is not imported yet is patched right after its first import
(:class:`_PatchOnImport`), so a process imports nothing it would not import anyway, and a module
that does ``from verl.workers.utils.losses import ppo_loss`` gets the patched function. One catch:
``@ray.remote`` wraps every method of the class it decorates while verl's module body runs, i.e.
before a post-import patch; a method defined in such a class is therefore patched on the class Ray
instantiates (``<ActorClass>.__ray_metadata__.modified_class``). Inherited methods (the fully-async
trainer's stage) are wrapped after their base module was imported, and so patched, first.

Megatron and context parallelism (CP), read from verl 0.9.1: every Megatron forward path
(``gptmodel_forward_model_engine`` THD and BSHD, and the fused-kernel path) ends in
``postprocess_thd_engine``/``postprocess_bshd_engine`` (``verl/models/mcore/util.py``), which
all-gathers the per-token outputs (log-probs, entropy) across the CP group and rebuilds every
sequence from its zigzag (or contiguous) chunks; only the local chunk keeps its autograd edge.
``no_padding_2_padding`` therefore slices complete responses, and every CP rank computes ASymPO's
per-response mean NLL ``s_i`` over the whole response: identical on all CP ranks, no extra
reduction needed. Because ``s_i`` is stop-gradient, the loss is per-token in its gradient exactly
like ``vanilla``/``gpg``, so CP>1 trains ASymPO as correctly as verl trains its built-in losses.
The same holds for dynamic CP (the gather uses the micro-batch's own CP group). How Megatron then
scales the CP ranks' partial gradients is verl's choice and identical for every loss.
``tests/test_behavior_free_on_cpu.py`` runs verl's own CP split/gather functions with an emulated
2-rank CP group on CPU and checks that each rank's loss equals CP=1's and that the ranks' gradients
sum to CP=1's. CP>1 is therefore allowed (``configure`` does not refuse it).
"""

from __future__ import annotations

import functools
import importlib.abc
import inspect
import linecache
import logging
import sys
import textwrap
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from .config import LossConfigError
from .patching import MARK, Patch, PatchError
from .registry import needs_behavior_log_probs

logger = logging.getLogger(__name__)

POLICY_LOSS = "actor_rollout_ref.actor.policy_loss"
# Logged (value 1.0) by every trainer step whose old-log-prob stage was skipped.
SKIPPED_METRIC = "behavior_free/old_log_prob_skipped"
# verl advantage estimators that read old_log_probs (verl/trainer/ppo/ray_trainer.py::compute_advantage).
ADV_ESTIMATORS_READING_OLD_LOG_PROBS = ("optimal_token_baseline", "tir_optimal_token_baseline")


class BehaviorFreeConfigError(LossConfigError):
    """A setting that needs behavior log-probs, combined with a loss that has none; the message says what to do."""


def loss_mode_of(config: Any) -> str:
    """The policy loss a trainer config selects (a DictConfig or verl's dataclasses)."""
    if isinstance(config, DictConfig):
        return OmegaConf.select(config, f"{POLICY_LOSS}.loss_mode", default="vanilla")
    return config.actor_rollout_ref.actor.policy_loss.loss_mode


def uses_behavior_log_probs(config: Any) -> bool:
    """Whether this trainer config's loss reads behavior log-probs (registry flag; unknown losses: True)."""
    return needs_behavior_log_probs(loss_mode_of(config))


# --------------------------------------------------------------------------------------------------
# The replacements. Each one runs verl's original unless the selected loss is behavior-free.
# --------------------------------------------------------------------------------------------------


def _skip_fit_compute_log_prob(original):
    """``SeparateRayPPOTrainer._fit_compute_log_prob`` (one-step-off and fully-async trainers)."""

    @functools.wraps(original)
    def _fit_compute_log_prob(self, batch):
        if uses_behavior_log_probs(self.config):
            return original(self, batch)
        # Neither the recompute forward pass nor the bypass copy: the loss never reads old_log_probs.
        self.metrics[SKIPPED_METRIC] = 1.0
        return batch

    return _fit_compute_log_prob


def _skip_compute_old_log_prob(original):
    """V1 ``PPOTrainer._compute_old_log_prob`` and its ``separate_async`` override (same signature)."""

    @functools.wraps(original)
    def _compute_old_log_prob(self, batch, metrics):
        if uses_behavior_log_probs(self.config):
            return original(self, batch, metrics)
        metrics[SKIPPED_METRIC] = 1.0
        return batch

    return _compute_old_log_prob


def _rollouter_validate_config(original):
    """``FullyAsyncRollouter._validate_config``: verl's checks, less ``calculate_log_probs`` for behavior-free."""

    @functools.wraps(original)
    def _validate_config(self):
        if uses_behavior_log_probs(self.config):
            return original(self)
        if not hasattr(self.config, "async_training"):
            raise ValueError("[FullyAsyncRollouter] Missing async_training configuration")

    return _validate_config


def edit_source(func, edits: list[tuple[str, str]], patch_name: str):
    """Recompile ``func`` from verl's own source with ``edits`` (``(old, new)`` text replacements).

    Used where the change sits in the middle of a verl function, so that what runs is verl's code
    plus exactly the reviewed diff (``patches/<patch_name>.diff``), not a hand-kept copy. The
    ``Patch`` has already checked the source hash, so every ``old`` is known to occur; it still
    must occur exactly once. The edited source is registered with ``linecache`` so tracebacks show it.
    """
    source = textwrap.dedent(inspect.getsource(func))
    for old, new in edits:
        if source.count(old) != 1:
            raise PatchError(f"asympo-plugin patch '{patch_name}': expected exactly one '{old.strip()[:60]}...'")
        source = source.replace(old, new)
    filename = f"<asympo-plugin patch {patch_name}: {func.__module__}.{func.__qualname__}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), func.__globals__, namespace)  # noqa: S102 - verl's source + our diff
    edited = namespace[func.__name__]
    edited.__qualname__ = func.__qualname__
    return edited


# ppo_loss: the same three hunks as patches/ppo_loss_without_old_log_probs.diff.
PPO_LOSS_EDITS = [
    (
        '    fields = ["response_mask", "old_log_probs", "advantages"]\n',
        (
            '    fields = ["response_mask", "old_log_probs", "advantages"]\n'
            "    # A loss registered with needs_behavior_log_probs=False never reads old_log_probs: the trainer\n"
            "    # neither recomputes nor ships them, and the loss gets old_log_prob=None.\n"
            '    policy_loss_fn = get_policy_loss_fn(config.policy_loss.get("loss_mode", "vanilla"))\n'
            '    if "old_log_probs" not in data and not getattr(policy_loss_fn, "needs_behavior_log_probs", True):\n'
            '        fields.remove("old_log_probs")\n'
        ),
    ),
    (
        '    old_log_prob = data["old_log_probs"]\n',
        '    old_log_prob = data.get("old_log_probs", None)\n',
    ),
    (
        '        metrics["actor/entropy_loss"] = Metric(value=entropy_loss, aggregation=metric_aggregation)\n',
        (
            '        metrics["actor/entropy_loss"] = Metric(value=entropy_loss, aggregation=metric_aggregation)\n'
            "        if old_log_prob is None:\n"
            "            # The skipped old-log-prob pass used to log actor/entropy; log it from this forward.\n"
            '            metrics["actor/entropy"] = Metric(value=entropy_loss.detach(), aggregation=metric_aggregation)\n'  # noqa: E501
        ),
    ),
]


def _ppo_loss_without_old_log_probs(original):
    return edit_source(original, PPO_LOSS_EDITS, "ppo_loss_without_old_log_probs")


PATCHES: tuple[Patch, ...] = (
    Patch(
        name="skip_old_log_prob_separation",
        why="The one-step-off and fully-async trainers always produce old_log_probs (an actor forward pass, "
        "or a copy of rollout log-probs in bypass mode); a behavior-free loss never reads them.",
        module="verl.experimental.separation.ray_trainer",
        attr="SeparateRayPPOTrainer._fit_compute_log_prob",
        source_sha256="2cc876c939ef75f2343d9c85d9d0126fd5a34b8e0b8c1f0cd56a476dbede23cc",
        make_replacement=_skip_fit_compute_log_prob,
    ),
    Patch(
        name="skip_old_log_prob_v1",
        why="The default (V1) trainer always produces old_log_probs (actor forward pass or bypass copy); "
        "a behavior-free loss never reads them.",
        module="verl.trainer.ppo.v1.trainer_base",
        attr="PPOTrainer._compute_old_log_prob",
        source_sha256="b2630e6178ed99f7b55b8e342911e746d7d48e148e87a3da090b0be8d5b8f70f",
        make_replacement=_skip_compute_old_log_prob,
    ),
    Patch(
        name="skip_old_log_prob_v1_separate_async",
        why="V1 separate_async saves, restores and clears actor weights around the old-log-prob recompute; "
        "with a behavior-free loss there is no recompute, so no weight shuffling either.",
        module="verl.trainer.ppo.v1.trainer_separate_async",
        attr="PPOTrainerSeparateAsync._compute_old_log_prob",
        source_sha256="eff91c009b2767d2609ecc1b7121489d9ea4ec9482de71c9f3431f1afa4f6c4c",
        make_replacement=_skip_compute_old_log_prob,
    ),
    Patch(
        name="ppo_loss_without_old_log_probs",
        why="verl's ppo_loss (shared by the FSDP and Megatron engines) selects old_log_probs from every batch; "
        "a behavior-free loss must train on a batch without them. Also logs actor/entropy from the update "
        "forward, since the pass that logged it is skipped.",
        module="verl.workers.utils.losses",
        attr="ppo_loss",
        source_sha256="d7c0f8772b444f55a59975a1fae154c43a2dab4724a88c89d95237e0a128c561",
        make_replacement=_ppo_loss_without_old_log_probs,
    ),
    Patch(
        name="fully_async_rollout_without_log_probs",
        why="The fully-async rollouter asserts rollout.calculate_log_probs=True; a behavior-free loss needs no "
        "per-token log-probs from the rollout engine.",
        module="verl.experimental.fully_async_policy.fully_async_rollouter",
        # The class Ray instantiates: @ray.remote wraps every method at decoration time (tracing), so a
        # patch on verl's class body would come too late for the wrapper's captured original.
        attr="FullyAsyncRollouter.__ray_metadata__.modified_class._validate_config",
        source_sha256="3150bba58ca3f3f2490bcbd11c291e06cbd25d9be75cbadff2173f22e48f4866",
        make_replacement=_rollouter_validate_config,
    ),
)

# Modules that bind a patched function by name at import (``from ... import ppo_loss``). They import
# the patched one when the plugin loads first (the normal case); if they were imported before the
# plugin, rebind them.
ALSO_BOUND_IN = {
    "ppo_loss_without_old_log_probs": ("verl.workers.engine_workers", "verl.trainer.distillation.losses"),
}


# --------------------------------------------------------------------------------------------------
# Installing the patches: now for imported modules, right after the first import for the others.
# --------------------------------------------------------------------------------------------------


class _PatchingLoader(importlib.abc.Loader):
    """Wraps a module's loader: runs the module, then the patches waiting for it."""

    def __init__(self, loader, after):
        self._loader, self._after = loader, after

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._after(module.__name__)

    def __getattr__(self, name):  # get_source, get_resource_reader, ...: the real loader's
        return getattr(self._loader, name)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that patches a verl module right after it is first imported.

    Patching at plugin load would mean importing every trainer in every Ray worker (slow, and from
    inside ``import verl``); patching later would miss modules that already bound the original.
    """

    def __init__(self):
        self.pending: dict[str, list[Patch]] = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, self._apply_pending)
        return spec

    def _apply_pending(self, fullname: str) -> None:
        for patch in self.pending.get(fullname, ()):
            _apply_one(patch)  # a PatchError fails this import, loudly, and again on a retry
        self.pending.pop(fullname, None)


_FINDER: _PatchOnImport | None = None


def _apply_one(patch: Patch) -> None:
    patch.apply()
    owner_module = sys.modules[patch.module]
    patched = getattr(owner_module, patch.attr) if "." not in patch.attr else None
    for module_name in ALSO_BOUND_IN.get(patch.name, ()):
        module = sys.modules.get(module_name)
        name = patch.attr
        if module is not None and patched is not None and getattr(module, name, None) is patched.__wrapped__:
            setattr(module, name, patched)


def apply() -> None:
    """Install every behavior-free patch in this process (idempotent; see the module docstring).

    Raises ``PatchError`` (now, or when the module is imported) if verl is not the version, or not the
    code, the patches were written for.
    """
    global _FINDER
    if _FINDER is None:
        _FINDER = _PatchOnImport()
        sys.meta_path.insert(0, _FINDER)
    for patch in PATCHES:
        module = sys.modules.get(patch.module)
        if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
            _apply_one(patch)
        elif patch not in _FINDER.pending.setdefault(patch.module, []):
            _FINDER.pending[patch.module].append(patch)


def applied() -> dict[str, bool]:
    """Which patches are in effect in this process (a module not imported yet counts as not applied)."""
    return {p.name: p.module in sys.modules and p.is_applied() for p in PATCHES}


# --------------------------------------------------------------------------------------------------
# Driver-side settings: asympo-train calls configure() after it has set the loss.
# --------------------------------------------------------------------------------------------------


def _select(cfg: DictConfig, key: str, default=None):
    return OmegaConf.select(cfg, key, default=default)


def _refuse_behavior_settings(cfg: DictConfig, loss: str) -> None:
    """Settings that read behavior log-probs somewhere else in verl; they cannot work without them."""
    why = (
        f"algorithm.loss={loss} is behavior-free: the pipeline computes no old_log_probs and ships no rollout log-probs"
    )
    if _select(cfg, "algorithm.use_kl_in_reward", False):
        raise BehaviorFreeConfigError(
            f"algorithm.use_kl_in_reward=true reads old_log_probs (verl's apply_kl_penalty), but {why}. Use a KL "
            "loss instead (actor_rollout_ref.actor.use_kl_loss=true) or set algorithm.use_kl_in_reward=false."
        )
    for key in ("rollout_is", "rollout_rs"):
        if _select(cfg, f"algorithm.rollout_correction.{key}") is not None:
            raise BehaviorFreeConfigError(
                f"algorithm.rollout_correction.{key} needs behavior (rollout) log-probs, but {why}. Set "
                f"algorithm.rollout_correction.{key}=null, or use a loss that reads behavior log-probs (e.g. vanilla)."
            )
    adv = _select(cfg, "algorithm.adv_estimator")
    if adv in ADV_ESTIMATORS_READING_OLD_LOG_PROBS:
        raise BehaviorFreeConfigError(
            f"algorithm.adv_estimator={adv} reads old_log_probs, but {why}. Use grpo, rloo, gpg, ... instead."
        )
    for engine in ("megatron", "veomni"):
        if _select(cfg, f"actor_rollout_ref.actor.{engine}.router_replay.mode") == "R2":
            raise BehaviorFreeConfigError(
                f"actor_rollout_ref.actor.{engine}.router_replay.mode=R2 records MoE routes in the old-log-prob "
                f"pass, which a behavior-free loss skips ({why}). Use router_replay.mode=R3 or disabled."
            )


def _set(cfg: DictConfig, key: str, value, reason: str) -> None:
    node, _, leaf = key.rpartition(".")
    parent = _select(cfg, node)
    if parent is None or leaf not in parent or parent[leaf] == value:
        return
    print(f"asympo-train: {key}: {parent[leaf]} -> {value} ({reason})", file=sys.stderr)
    with open_dict(parent):
        parent[leaf] = value


def configure(cfg: DictConfig) -> None:
    """Make a composed config behavior-free when its loss is; leave it as stock verl otherwise.

    Called by ``asympo-train`` on the driver after it set ``actor_rollout_ref.actor.policy_loss.loss_mode``.
    For a behavior-free loss (``needs_behavior_log_probs(loss_mode)`` is False):

    * refuses settings that read behavior log-probs elsewhere in verl (in-reward KL, rollout importance
      sampling/rejection sampling, the optimal-token-baseline estimators, MoE router replay R2), each
      with the fix in the message;
    * turns off what would produce behavior log-probs: ``rollout.calculate_log_probs`` (the async
      pipelines' configs set it to True) and ``rollout_correction.bypass_mode`` (their default), and
      ``actor.use_rollout_log_probs`` (fully async); each change is printed;
    * turns on ``actor.calculate_entropy`` so that ``actor/entropy`` is logged from the update's forward.

    Context parallelism (Megatron CP>1) is allowed: the loss sees complete responses (module docstring).
    """
    loss = OmegaConf.select(cfg, f"{POLICY_LOSS}.loss_mode")
    if loss is None or needs_behavior_log_probs(loss):
        return
    _refuse_behavior_settings(cfg, loss)
    reason = f"{loss} reads no behavior log-probs"
    _set(
        cfg,
        "actor_rollout_ref.rollout.calculate_log_probs",
        False,
        f"{reason}; the rollout neither computes nor ships them",
    )
    _set(cfg, "algorithm.rollout_correction.bypass_mode", False, f"{reason}; the old-log-prob stage is skipped")
    _set(cfg, "actor_rollout_ref.actor.use_rollout_log_probs", False, reason)
    _set(cfg, "actor_rollout_ref.actor.calculate_entropy", True, "logs actor/entropy from the update's forward")


def legacy_trainer_warning(cfg: DictConfig, pipeline: str) -> str | None:
    """A warning when a behavior-free loss runs on verl's legacy synchronous trainer, else ``None``.

    ``trainer.use_v1=False`` selects ``main_ppo_v0``'s ``RayPPOTrainer`` (deprecated in verl 0.9.1), whose
    ``fit()`` computes old log-probs inline. It is not patched (a 300-line loop, on its way out of verl):
    training is correct, the loss ignores those log-probs, but every step pays the extra forward pass.
    """
    loss = OmegaConf.select(cfg, f"{POLICY_LOSS}.loss_mode")
    if pipeline != "sync" or OmegaConf.select(cfg, "trainer.use_v1", default=True) or needs_behavior_log_probs(loss):
        return None
    return (
        f"trainer.use_v1=False selects verl's deprecated legacy trainer, which always runs the old-log-prob "
        f"forward pass; {loss} never reads its output, so each step pays for it. Use trainer.use_v1=True "
        f"(verl's default), where the pass is skipped."
    )


def is_patched(obj) -> bool:
    """Whether ``obj`` is one of this module's replacements (for tests and self-checks)."""
    return getattr(obj, MARK, None) in {p.name for p in PATCHES}
