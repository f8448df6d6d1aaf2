"""Behavior-free OpenRLHF: no old-log-prob forward for ``asympo``/``spo``, and nothing that would read it.

Where OpenRLHF 0.11.2 computes and reads behavior log-probs (``openrlhf`` paths):

* ``trainer/ppo_utils/experience_maker.py`` ``RemoteExperienceMaker.make_experience`` always dispatches the
  actor's no-grad forward over every sample (``PolicyModelActor.forward``): the old log-probs. No flag skips
  it. ``BasePPOTrainer`` owns the experience maker and the async ``TrainingActor`` inherits it, so the one
  patch ``openrlhf_skip_old_log_prob`` (``patches/openrlhf_skip_old_log_prob.diff``) covers the sync trainer
  and ``--train.async_enable``. For a behavior-free loss the forward is not dispatched,
  ``experience.action_log_probs`` stays None (a reader fails loudly instead of reading zeros), and each
  sample logs ``behavior_free/old_log_prob_skipped=1``. Every other loss runs OpenRLHF's code unchanged.
* Readers of those log-probs, all refused before Ray starts by :func:`check_args` (the fix is named):
  the reward KL (``compute_approx_kl(action_log_probs, base)`` when ``--algo.kl.init_coef > 0`` without
  ``--algo.kl.use_loss``), the KL loss's ``--algo.kl.unbiased_gradient`` (importance-weights by
  ``pi/pi_old``); and rollout correction (``--algo.advantage.is_correction_level``, which also makes vLLM
  return rollout log-probs; ``off`` keeps vLLM from computing them, ``samples_generator.py:206``), refused
  by the loss's own check (``loss.check_loss_settings``).
  The KL loss (``--algo.kl.use_loss``) reads current and reference log-probs only and is allowed.
* The policy loss itself reads none (``loss.py``).
"""

from __future__ import annotations

import inspect

from ..core.fields import LossConfigError
from ..core.policy_loss import is_behavior_free
from ..patching import Patch, edit_source
from .compat import DISTRIBUTION, INSTALL_HINT, VERSIONS
from .edits import method_edits

# (old, new) text edits of make_experience's own source: exactly the hunks of the diff in patches/
# (written at the file's indentation; method_edits strips the class level).
MAKE_EXPERIENCE_EDITS = method_edits(
    [
        (
            """        # Actor model (receives mm_train_inputs_list for VLM)
        action_log_probs_ref = self._dispatch_forward(
            self.actor_model_group,
            args.train.colocate_all or args.train.colocate_actor_ref,
            **vlm_forward_kwargs,
        )
""",
            """        # Actor model (receives mm_train_inputs_list for VLM)
        # asympo-plugin: a behavior-free policy loss reads no old log-probs; the actor's forward is skipped.
        from asympo_plugin.core.policy_loss import is_behavior_free

        behavior_free = is_behavior_free(args.actor.policy_loss_type)
        if behavior_free:
            logger.info(f"asympo-plugin: {args.actor.policy_loss_type} is behavior-free, old-log-prob forward skipped")
            action_log_probs_ref = dummy_ref
        else:
            action_log_probs_ref = self._dispatch_forward(
                self.actor_model_group,
                args.train.colocate_all or args.train.colocate_actor_ref,
                **vlm_forward_kwargs,
            )
""",
        ),
        (
            """            else:
                kl = torch.zeros_like(action_log_probs, dtype=action_log_probs.dtype, device=device)
                logprobs_diff = torch.zeros_like(action_log_probs, dtype=action_log_probs.dtype, device=device)
""",
            """            else:
                like = samples.action_mask.float() if behavior_free else action_log_probs
                kl = torch.zeros_like(like, dtype=like.dtype, device=device)
                logprobs_diff = torch.zeros_like(like, dtype=like.dtype, device=device)
""",
        ),
        (
            """            samples.info["logprobs_diff"] = logprobs_diff_mean
""",
            """            samples.info["logprobs_diff"] = logprobs_diff_mean
            if behavior_free:
                samples.info["behavior_free/old_log_prob_skipped"] = torch.ones(len(samples.sequences))
""",
        ),
    ]
)


def _make_experience_without_old_log_probs(original):
    # Unwrapped: the recompiled source carries make_experience's own @torch.no_grad() decorator.
    return edit_source(inspect.unwrap(original), MAKE_EXPERIENCE_EDITS, "openrlhf_skip_old_log_prob")


SKIP_OLD_LOG_PROB_PATCH = Patch(
    name="openrlhf_skip_old_log_prob",
    why=(
        "RemoteExperienceMaker.make_experience always runs the actor's no-grad forward to get old log-probs; no flag "
        "skips it. A behavior-free loss reads none, so for asympo/spo the forward is not dispatched and "
        "action_log_probs stays None (sync and async trainers share this method). Other losses: unchanged."
    ),
    module="openrlhf.trainer.ppo_utils.experience_maker",
    attr="RemoteExperienceMaker.make_experience",
    source_sha256="85db1fe426dec3e6e9bb740e663f4cee8f1bfdedd3fc0f5d61a4c68fee0b8f67",
    make_replacement=_make_experience_without_old_log_probs,
    distribution=DISTRIBUTION,
    versions=VERSIONS,
    install_hint=INSTALL_HINT,
)

PATCHES = (SKIP_OLD_LOG_PROB_PATCH,)


def check_args(args) -> None:
    """Refuse the settings that read behavior log-probs a behavior-free run does not compute (hierarchized args)."""
    loss = args.actor.policy_loss_type
    if not is_behavior_free(loss):
        return
    kl = args.algo.kl
    if kl.init_coef > 0 and not kl.use_loss:
        raise LossConfigError(
            f"--algo.kl.init_coef={kl.init_coef} without --algo.kl.use_loss puts KL(pi_old || pi_ref) into the reward, "
            f"computed from the old log-probs; {loss} is behavior-free and never computes them. Use the KL loss "
            "(--algo.kl.use_loss --algo.kl.estimator k3: current and reference log-probs only) or no KL "
            "(--algo.kl.init_coef 0; note OpenRLHF's default is 0.01)."
        )
    if kl.use_loss and kl.init_coef > 0 and kl.unbiased_gradient:
        raise LossConfigError(
            f"--algo.kl.unbiased_gradient importance-weights the KL loss by pi/pi_old, which needs the old log-probs; "
            f"{loss} is behavior-free and never computes them. Drop --algo.kl.unbiased_gradient."
        )
