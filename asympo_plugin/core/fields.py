"""The loss settings of ASymPO and SPO: names, defaults and the one check of each. Framework-free.

Both adapters use these checks; ``where`` is how the user spells the setting in that framework
(``actor_rollout_ref.actor.policy_loss.asympo_eps`` in verl, ``--actor.asympo_eps`` in OpenRLHF), so
the error names the fix in the user's own terms.

* ``asympo_eps`` (default 0.01): floor on ASymPO's per-response mean token NLL ``s_i``. 0.01 nats/token
  is an average token probability of 0.99: only near-deterministic responses are floored, and the floor
  caps ASymPO's per-token gradient at 100x the naive loss's. A finite number > 0.
* ``spo_neg_scale`` (default 0.5): SPO's fixed scale ``c`` of negative-advantage terms, in (0, 1].
  One step stale, negatives typically sit at about twice the positives' mean NLL (watch
  ``actor/scale/nll_ratio``); 0.5 offsets that. ``c = 1`` is the naive loss.
* ``asympo_allow_unbalanced_agg`` (default False): ASymPO's zero-sum balance needs every response
  weighted equally (``seq-mean-token-mean``); any other aggregation is refused unless this is true.
"""

from __future__ import annotations

import math

ASYMPO_EPS_DEFAULT = 0.01
SPO_NEG_SCALE_DEFAULT = 0.5
ASYMPO_AGG_MODE = "seq-mean-token-mean"
# Aggregation modes in which every response weighs the same; all others weigh a response by T_i.
RESPONSE_BALANCED_AGG_MODES = frozenset({ASYMPO_AGG_MODE})
# name -> default, in the order the docs list them.
LOSS_FIELDS = {
    "asympo_eps": ASYMPO_EPS_DEFAULT,
    "spo_neg_scale": SPO_NEG_SCALE_DEFAULT,
    "asympo_allow_unbalanced_agg": False,
}


class LossConfigError(ValueError):
    """A loss setting that would train wrongly; the message names the fix."""


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def check_asympo_eps(value, where: str = "asympo_eps") -> float:
    eps = _number(value)
    if eps is None or not math.isfinite(eps) or not eps > 0:
        raise LossConfigError(
            f"{where}={value!r} is invalid: it floors ASymPO's per-response mean NLL and must be a finite number "
            f"> 0. Set {where}={ASYMPO_EPS_DEFAULT} (the default) or another small positive value."
        )
    return eps


def check_spo_neg_scale(value, where: str = "spo_neg_scale") -> float:
    c = _number(value)
    if c is None or not 0 < c <= 1:  # NaN fails both comparisons
        raise LossConfigError(
            f"{where}={value!r} is invalid: SPO scales negative-advantage terms by c in (0, 1] (1 is the naive "
            f"loss). Set {where}={SPO_NEG_SCALE_DEFAULT} (the default) or another value in (0, 1]."
        )
    return c


def check_agg_mode(
    loss_mode: str,
    loss_agg_mode: str,
    allow_unbalanced: bool,
    where_agg: str = "loss_agg_mode",
    where_allow: str = "asympo_allow_unbalanced_agg",
) -> None:
    """Refuse an aggregation mode that breaks ASymPO's response-level balance unless asked for."""
    if loss_mode != "asympo" or loss_agg_mode in RESPONSE_BALANCED_AGG_MODES or allow_unbalanced:
        return
    raise LossConfigError(
        f"{where_agg}={loss_agg_mode} weighs each response by its token count, which breaks ASymPO's zero-sum "
        f"balance across a group. Set {where_agg}={ASYMPO_AGG_MODE} (or leave it unset: the plugin's launchers "
        f"then use it), or keep it on purpose with {where_allow}=true."
    )
