"""Scale-imbalance diagnostics, logged as metrics by the plugin's losses (and, when switched on, by the built-ins).

The failure the paper describes is visible in these numbers: evaluated under the current policy,
stale negative responses sit at a higher mean NLL than positive ones, so the naive objective's
zero-sum group advantages no longer give balanced contributions.

Per micro-batch, with ``m_i`` the current mean token NLL of response ``i`` and ``A_i`` its advantage:

* ``pos_nll`` / ``neg_nll``: mean ``m_i`` over responses with ``A_i > 0`` / ``A_i < 0``;
  a micro-batch without such responses reports the micro-batch's mean ``m_i`` (neutral, so that
  verl's mean over micro-batches and data-parallel ranks stays finite and every rank logs the same keys).
* ``nll_ratio`` = ``neg_nll / pos_nll`` (1 when balanced; > 1 when negatives dominate; capped at
  :data:`NLL_RATIO_CAP`, reached only when the positives are near-deterministic, ``pos_nll`` ~ 0).
* ``balance_residual_naive`` = ``|sum_i A_i m_i| / sum_i |A_i| m_i``: how far the naive objective's
  per-response contributions are from summing to zero (0 = balanced, 1 = one-sided).
* ``balance_residual`` = the same for the loss in use, with its real per-response forward
  contribution ``c_i = A_i * k_i * m_i * W_i`` (``k_i``: the loss's response scale, ``W_i``: the weight
  the aggregation mode gives the response, ``T_i`` for token-level modes, 1 for seq-mean-token-mean).
  Only for losses whose per-response scale is known (the plugin's own).
"""

from __future__ import annotations

import torch

from . import metrics as names
from .fields import RESPONSE_BALANCED_AGG_MODES
from .losses import response_advantage, response_mean


NLL_RATIO_CAP = 1e6
# The diagnostics are computed in float64 on the per-response vectors (cheap): float32 overflows for
# extreme but finite NLLs (a ratio to a denormal pos_nll, sums of ~1e30 NLLs times large advantages).


def _residual(contrib: torch.Tensor) -> float:
    denom = contrib.abs().sum()
    return float(contrib.sum().abs() / denom) if denom > 0 else 0.0


def response_stats(log_prob: torch.Tensor, advantages: torch.Tensor, valid: torch.Tensor):
    """``(m_i, A_i, T_i)`` per response over its ``valid`` tokens (detached, float32)."""
    with torch.no_grad():
        return (
            response_mean(-log_prob.float(), valid),
            response_advantage(advantages.float(), valid),
            valid.sum(dim=-1),
        )


def scale_metrics(
    mean_nll: torch.Tensor,
    adv: torch.Tensor,
    lengths: torch.Tensor,
    prefix: str = names.ACTOR,
    loss_agg_mode: str | None = None,
    response_scale: torch.Tensor | None = None,
) -> dict[str, float]:
    """Diagnostics for one micro-batch as ``{f"{prefix}/scale/<name>": float}``, from :func:`response_stats`.

    ``response_scale`` is the loss's per-response multiplier ``k_i`` (``1/s_i`` for ASymPO, ``w_i``
    for SPO); when given together with ``loss_agg_mode``, ``balance_residual`` is reported too.
    Responses without valid tokens (``lengths == 0``) are left out.
    """
    with torch.no_grad():
        mean_nll, adv = mean_nll.double(), adv.double()
        present = lengths > 0
        pos, neg = present & (adv > 0), present & (adv < 0)
        overall = mean_nll[present].mean() if present.any() else mean_nll.new_zeros(())
        pos_nll = mean_nll[pos].mean() if pos.any() else overall
        neg_nll = mean_nll[neg].mean() if neg.any() else overall
        key = lambda name: names.scale_key(name, prefix)  # noqa: E731
        metrics = {
            key(names.POS_NLL): float(pos_nll),
            key(names.NEG_NLL): float(neg_nll),
            key(names.NLL_RATIO): min(float(neg_nll / pos_nll), NLL_RATIO_CAP) if pos_nll > 0 else 1.0,
            key(names.BALANCE_RESIDUAL_NAIVE): _residual(adv[present] * mean_nll[present]),
        }
        if response_scale is not None and loss_agg_mode is not None:
            agg_weight = 1.0 if loss_agg_mode in RESPONSE_BALANCED_AGG_MODES else lengths.to(mean_nll.dtype)
            contrib = adv * response_scale.double() * mean_nll * agg_weight
            metrics[key(names.BALANCE_RESIDUAL)] = _residual(contrib[present])
        return metrics
