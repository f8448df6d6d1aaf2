"""What both framework adapters call: one plugin loss on one micro-batch, before aggregation.

:func:`plugin_loss` guards the inputs, builds the loss matrix (``losses.py``), applies the rollout
importance weights when the framework passes them, and computes the scale diagnostics
(``diagnostics.py``). It returns the per-token loss matrix and the mask of tokens to aggregate;
the adapter reduces them with its framework's own reducer (verl: ``agg_loss(..., **global_batch_info)``;
OpenRLHF: ``aggregate_loss(..., **loss_batch_info)``), which is what makes the result independent of
the micro-batch split and the data-parallel size.

What bad input gets: non-finite current log-probs (a diverged forward, a masked vocabulary entry) are
left out of the loss (zero gradient) and counted in ``actor/scale/nonfinite_frac``; NaN/inf
advantages or rollout weights on valid tokens are a data bug upstream and raise ``ValueError``;
every dtype is computed in float32.
"""

from __future__ import annotations

import logging

import torch

from . import metrics as names
from .diagnostics import response_stats, scale_metrics
from .fields import check_agg_mode, check_asympo_eps, check_spo_neg_scale
from .losses import asympo_loss_mat, spo_loss_mat

logger = logging.getLogger(__name__)

PLUGIN_LOSSES = ("asympo", "spo")


def is_behavior_free(loss_mode: str) -> bool:
    """The plugin's own losses read no behavior log-probs (the adapters ask their registries for others)."""
    return loss_mode in PLUGIN_LOSSES


def guard_inputs(log_prob, advantages, response_mask, rollout_is_weights=None):
    """Cast to float32 and find the valid tokens: in the mask and with a finite current log-prob.

    Returns ``(log_prob, advantages, mask, valid, nonfinite_frac)``. The all-finite case costs one check each.
    """
    mask = response_mask.bool()
    log_prob = log_prob.float()
    advantages = advantages.float()
    if not torch.isfinite(advantages).all() and not torch.isfinite(advantages[mask]).all():
        raise ValueError(
            "asympo-plugin: advantages are NaN/inf on valid response tokens; check the reward function and the "
            "advantage estimator (a reward of NaN/inf propagates into every advantage of its group)."
        )
    if rollout_is_weights is not None and not torch.isfinite(rollout_is_weights[mask]).all():
        raise ValueError(
            "asympo-plugin: rollout importance weights are NaN/inf on valid tokens; check rollout correction."
        )
    if torch.isfinite(log_prob).all():
        return log_prob, advantages, mask, mask, 0.0
    valid = mask & torch.isfinite(log_prob)
    n_bad = int((mask & ~valid).sum())
    if n_bad:
        logger.warning("asympo-plugin: %d non-finite current log-probs left out of the policy loss", n_bad)
    return log_prob, advantages, mask, valid, n_bad / max(int(mask.sum()), 1)


def _quantiles(scale: torch.Tensor, present: torch.Tensor, prefix: str) -> dict[str, float]:
    values = scale[present].float()
    if values.numel() == 0:
        return {}
    return {
        names.asympo_scale_key(name, prefix): float(torch.quantile(values, q))
        for name, q in names.SCALE_QUANTILES.items()
    }


def plugin_loss(
    loss_mode: str,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    loss_agg_mode: str,
    asympo_eps: float,
    spo_neg_scale: float,
    asympo_allow_unbalanced_agg: bool = False,
    rollout_is_weights: torch.Tensor | None = None,
    prefix: str = names.ACTOR,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """``(loss_mat, mask, metrics)`` of ``asympo`` or ``spo`` on one micro-batch (see the module docstring)."""
    log_prob, advantages, mask, valid, nonfinite_frac = guard_inputs(
        log_prob, advantages, response_mask, rollout_is_weights
    )
    mean_nll, adv, lengths = response_stats(log_prob, advantages, valid)
    present = lengths > 0
    if loss_mode == "asympo":
        check_agg_mode(loss_mode, loss_agg_mode, asympo_allow_unbalanced_agg)
        check_asympo_eps(asympo_eps)  # the launchers check it too; a direct caller gets the same error
        loss_mat, scale, floored = asympo_loss_mat(log_prob, advantages, valid, asympo_eps)
        metrics = scale_metrics(mean_nll, adv, lengths, prefix, loss_agg_mode, 1.0 / scale)
        metrics[names.floored_key(prefix)] = float(floored[present].float().mean()) if present.any() else 0.0
        metrics.update(_quantiles(scale, present, prefix))
    elif loss_mode == "spo":
        check_spo_neg_scale(spo_neg_scale)
        loss_mat, weight = spo_loss_mat(log_prob, advantages, valid, spo_neg_scale)
        metrics = scale_metrics(mean_nll, adv, lengths, prefix, loss_agg_mode, weight)
    else:
        raise ValueError(f"asympo-plugin: unknown plugin loss {loss_mode!r}; plugin losses: {', '.join(PLUGIN_LOSSES)}")
    metrics[names.scale_key(names.NONFINITE_FRAC, prefix)] = nonfinite_frac
    if rollout_is_weights is not None:
        loss_mat = loss_mat * rollout_is_weights.float()
    return loss_mat, mask, metrics


def builtin_scale_metrics(log_prob, advantages, response_mask, prefix: str = names.ACTOR) -> dict[str, float]:
    """The same diagnostics for a framework's own loss (no response scale known, so no ``balance_residual``)."""
    mask = response_mask.bool()
    finite = torch.isfinite(log_prob)
    return scale_metrics(*response_stats(log_prob, advantages, mask if finite.all() else mask & finite), prefix)
