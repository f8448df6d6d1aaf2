"""The loss config: verl's ``PolicyLossConfig`` plus the fields of ASymPO and SPO, and their checks.

verl's ``PolicyLossConfig`` is a strict dataclass, so the extra fields live on a subclass that is
selected with ``actor_rollout_ref.actor.policy_loss._target_`` (``asympo-train`` sets it for you).
Instantiating it inside a Ray worker also imports this package there, which registers the losses.

Fields (``actor_rollout_ref.actor.policy_loss.<field>``):

* ``asympo_eps`` (float, default 0.01): floor on ASymPO's per-response mean token NLL ``s_i``.
  0.01 nats/token is an average token probability of 0.99: only near-deterministic responses are
  floored, and the floor caps ASymPO's per-token gradient at 100x the naive loss's. Must be > 0.
* ``spo_neg_scale`` (float, default 0.5): SPO's fixed scale ``c`` of negative-advantage terms, in (0, 1].
  One step stale, negatives typically sit at roughly twice the positives' mean NLL (watch
  ``actor/scale/nll_ratio``); 0.5 offsets that. ``c = 1`` is the naive loss.
* ``asympo_allow_unbalanced_agg`` (bool, default False): ASymPO's zero-sum balance needs every
  response weighted equally (``loss_agg_mode=seq-mean-token-mean``). Any other mode is refused
  unless this is true; ``actor/scale/balance_residual`` then shows the imbalance it costs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from verl.workers.config import PolicyLossConfig

from .diagnostics import RESPONSE_BALANCED_AGG_MODES

ASYMPO_EPS_DEFAULT = 0.01
SPO_NEG_SCALE_DEFAULT = 0.5
ASYMPO_AGG_MODE = "seq-mean-token-mean"
CONFIG_PATH = "actor_rollout_ref.actor.policy_loss"


class LossConfigError(ValueError):
    """A loss setting that would train wrongly; the message names the fix."""


def check_asympo_eps(eps) -> None:
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0 or eps != eps or eps == float("inf"):
        raise LossConfigError(
            f"{CONFIG_PATH}.asympo_eps={eps!r} is invalid: it floors the per-response mean NLL and must be a "
            f"finite number > 0. Set {CONFIG_PATH}.asympo_eps={ASYMPO_EPS_DEFAULT} (the default) or another "
            "small positive value."
        )


def check_spo_neg_scale(c) -> None:
    if isinstance(c, bool) or not isinstance(c, int | float) or not 0 < c <= 1:
        raise LossConfigError(
            f"{CONFIG_PATH}.spo_neg_scale={c!r} is invalid: SPO scales negative-advantage terms by c in (0, 1] "
            f"(1 is the naive loss). Set {CONFIG_PATH}.spo_neg_scale={SPO_NEG_SCALE_DEFAULT} (the default) or "
            "another value in (0, 1]."
        )


def check_agg_mode(loss_mode: str, loss_agg_mode: str, allow_unbalanced: bool) -> None:
    """Refuse an aggregation mode that breaks ASymPO's response-level balance unless asked for."""
    if loss_mode != "asympo" or loss_agg_mode in RESPONSE_BALANCED_AGG_MODES or allow_unbalanced:
        return
    raise LossConfigError(
        f"actor_rollout_ref.actor.loss_agg_mode={loss_agg_mode} weighs each response by its token count, which "
        "breaks ASymPO's zero-sum balance across a group. Remove the setting (asympo-train then uses "
        f"{ASYMPO_AGG_MODE}), set actor_rollout_ref.actor.loss_agg_mode={ASYMPO_AGG_MODE}, or keep it on "
        f"purpose with {CONFIG_PATH}.asympo_allow_unbalanced_agg=true."
    )


@dataclass
class AsympoPolicyLossConfig(PolicyLossConfig):
    """verl's PolicyLossConfig with the ASymPO/SPO fields (see the module docstring)."""

    asympo_eps: float = ASYMPO_EPS_DEFAULT
    spo_neg_scale: float = SPO_NEG_SCALE_DEFAULT
    asympo_allow_unbalanced_agg: bool = False

    def __post_init__(self):
        parent_post_init = getattr(super(), "__post_init__", None)
        if parent_post_init is not None:
            parent_post_init()
        check_asympo_eps(self.asympo_eps)
        check_spo_neg_scale(self.spo_neg_scale)


CONFIG_TARGET = f"{AsympoPolicyLossConfig.__module__}.{AsympoPolicyLossConfig.__qualname__}"
# The fields this subclass adds to verl's PolicyLossConfig, with their defaults.
LOSS_FIELDS = {
    f.name: f.default
    for f in fields(AsympoPolicyLossConfig)
    if f.name not in {g.name for g in fields(PolicyLossConfig)}
}
