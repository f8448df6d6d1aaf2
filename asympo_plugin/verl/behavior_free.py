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
  behavior-free loss (the loss gets ``old_log_prob=None``), and logs the entropy of the update's own
  forward as ``actor/entropy_update_forward`` (verl's ``actor/entropy`` is measured in the skipped pass,
  over the batch before the update: a different measurement, so a different name).
* ``fully_async_rollout_without_log_probs``: the fully-async rollouter asserts
  ``calculate_log_probs=True``; a behavior-free loss runs with ``False``.

Not covered: verl's deprecated legacy synchronous trainer (``trainer.use_v1=False``, ``main_ppo_v0``),
which computes old log-probs inside its 300-line ``fit()``; ``asympo-train`` refuses a behavior-free
loss on it before Ray starts (``settings.refuse_legacy_trainer``) and names the fix (``trainer.use_v1=True``).

Extension points considered first: verl's engine workers have ``set_loss_fn``, but each worker calls it
itself at init with ``partial(ppo_loss, config=...)``; using it would need a driver-side call after
every trainer's worker init and a copy of ``ppo_loss`` (~100 lines of verl) for a 5-line change, so
``ppo_loss`` is patched instead (the reviewed diff, recompiled from verl's source). The old-log-prob
stages are plain methods of the trainers with no hook; verl has no flag that skips them.

Everything else uses verl's own settings, applied on the driver by ``asympo_plugin.verl.settings``:
``rollout.calculate_log_probs=False``, ``rollout_correction.bypass_mode=False``,
``actor.calculate_entropy=True`` (so the update forward returns the entropy for ``actor/entropy_update_forward``).

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
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .. import patching
from ..core import metrics as names
from ..patching import Patch, edit_source
from .losses import needs_behavior_log_probs

POLICY_LOSS = "actor_rollout_ref.actor.policy_loss"
SKIPPED_METRIC = names.OLD_LOG_PROB_SKIPPED
# verl advantage estimators that read old_log_probs (verl/trainer/ppo/ray_trainer.py::compute_advantage).
ADV_ESTIMATORS_READING_OLD_LOG_PROBS = ("optimal_token_baseline", "tir_optimal_token_baseline")


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
            "            # verl logs actor/entropy in the skipped old-log-prob pass (over the batch, before the update).\n"
            "            # This is another measurement (per micro-batch, the update's own forward): its own name.\n"
            '            metrics["actor/entropy_update_forward"] = Metric(\n'
            "                value=entropy_loss.detach(), aggregation=metric_aggregation\n"
            "            )\n"
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
        "a behavior-free loss must train on a batch without them. Also logs the update forward's entropy as "
        "actor/entropy_update_forward, since the pass that logs actor/entropy is skipped.",
        module="verl.workers.utils.losses",
        attr="ppo_loss",
        source_sha256="d7c0f8772b444f55a59975a1fae154c43a2dab4724a88c89d95237e0a128c561",
        make_replacement=_ppo_loss_without_old_log_probs,
        also_bound_in=("verl.workers.engine_workers", "verl.trainer.distillation.losses"),
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


def apply() -> None:
    """Install every behavior-free patch in this process (``asympo_plugin.patching.install``; idempotent)."""
    patching.install(PATCHES)


def applied() -> dict[str, bool]:
    """Which patches are in effect in this process (a module not imported yet counts as not applied)."""
    return patching.applied(PATCHES)


def is_patched(obj) -> bool:
    """Whether ``obj`` is one of this module's replacements (for tests and self-checks)."""
    return patching.is_patched(obj, PATCHES)
