"""The OpenRLHF spelling of the loss settings, and the checks a run gets before Ray starts (no OpenRLHF import).

The checks are the core's (``asympo_plugin.core.fields``: same defaults and limits as the verl adapter);
``FLAG`` is how an OpenRLHF user writes each setting, so every error names the fix in those terms.
"""

from __future__ import annotations

from ..core import fields

# How the user spells each setting on the command line (the errors name the fix in these terms).
FLAG = {
    "policy_loss_type": "--actor.policy_loss_type",
    "loss_agg_mode": "--actor.loss_agg_mode",
    "asympo_eps": "--actor.asympo_eps",
    "spo_neg_scale": "--actor.spo_neg_scale",
    "asympo_allow_unbalanced_agg": "--actor.asympo_allow_unbalanced_agg",
    "is_correction_level": "--algo.advantage.is_correction_level",
}


def check_loss_settings(
    policy_loss_type: str,
    loss_agg_mode: str,
    asympo_eps,
    spo_neg_scale,
    asympo_allow_unbalanced_agg: bool,
    is_correction_level: str = "off",
) -> None:
    """The loss's own checks (the core's, in OpenRLHF's flag names); :class:`fields.LossConfigError` names the fix."""
    if policy_loss_type == "asympo":
        fields.check_asympo_eps(asympo_eps, FLAG["asympo_eps"])
    if policy_loss_type == "spo":
        fields.check_spo_neg_scale(spo_neg_scale, FLAG["spo_neg_scale"])
    fields.check_agg_mode(
        policy_loss_type,
        loss_agg_mode,
        bool(asympo_allow_unbalanced_agg),
        FLAG["loss_agg_mode"],
        FLAG["asympo_allow_unbalanced_agg"],
    )
    if is_correction_level != "off":
        raise fields.LossConfigError(
            f"{FLAG['is_correction_level']}={is_correction_level} reweights the loss by pi_train/pi_rollout, which "
            f"needs the behavior (old and rollout) log-probs; {policy_loss_type} is behavior-free and never computes "
            f"them. Drop {FLAG['is_correction_level']} (keep it 'off') or use {FLAG['policy_loss_type']} ppo."
        )
