"""The loss math: per-token loss matrices of ASymPO, SPO and the naive current-policy loss.

Pure torch, no framework. Every function takes the current log-probs ``log_prob[i, t]`` (they carry the
gradient), the advantages ``A[i, t]`` and a boolean ``mask[i, t]`` of valid response tokens, and
returns the per-token loss matrix ``L[i, t]`` that verl's ``agg_loss`` aggregates. Masked entries of
``L`` are exactly 0 (and so is their gradient), whatever ``log_prob`` holds there.

Source: "ASymPO: Asymmetric-Scale Policy Optimization for Asynchronous LLM Post-Training Without
Behavior Information", arXiv 2606.03070. Notation: token NLL ``n = -log_prob``, response length
``T_i = sum_t mask[i, t]``, ``sg`` = stop-gradient.

    naive   L[i,t] = A[i,t] * n[i,t]                              (= verl's "gpg" loss)
    ASymPO  L[i,t] = A[i,t] * n[i,t] / s_i,   s_i = sg(max(mean_t n[i,t], eps))
    SPO     L[i,t] = w_i * A[i,t] * n[i,t],   w_i = c if A_i < 0 else 1

Under per-response token-mean aggregation (verl's ``seq-mean-token-mean``) an ASymPO response
contributes exactly ``A_i`` to the forward value (when not floored), so a zero-sum advantage group
sums to 0, and its gradient is ``A_i * grad log(mean_t n[i,t])``: stale, high-NLL responses are
damped by ``1/s_i`` and confident ones are not starved. Without the stop-gradient the value is
the constant ``A_i`` and the gradient is identically 0.
"""

from __future__ import annotations

import torch

from .fields import check_asympo_eps, check_spo_neg_scale

__all__ = [
    "response_mean",
    "response_advantage",
    "naive_loss_mat",
    "asympo_loss_mat",
    "spo_loss_mat",
]


def response_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x[i, t]`` over the valid tokens of each response, shape ``(bs,)``.

    A response with no valid token has mean 0 (its tokens are all masked, so nothing reads it).
    Entries of ``x`` outside the mask may hold anything, inf and NaN included.
    """
    total = torch.where(mask, x, torch.zeros_like(x)).sum(dim=-1)
    return total / mask.sum(dim=-1).clamp(min=1).to(total.dtype)


def response_advantage(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-response advantage ``A_i``: the token-mean of ``A[i, t]`` (outcome rewards make it constant)."""
    return response_mean(advantages, mask)


def naive_loss_mat(log_prob: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Naive current-policy loss ``A * n``; the ablation that collapses on stale data."""
    nll = torch.where(mask, -log_prob, torch.zeros_like(log_prob))
    return advantages * nll


def asympo_loss_mat(
    log_prob: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ASymPO loss matrix ``A * n / sg(max(mean_t n, eps))``.

    Returns ``(loss_mat, scale, floored)``: the loss matrix, the detached per-response scale
    ``s_i`` and a boolean per response that is True where the floor ``eps`` engaged
    (``mean_t n < eps``; responses without valid tokens count as floored).
    """
    eps = check_asympo_eps(eps)
    nll = torch.where(mask, -log_prob, torch.zeros_like(log_prob))
    mean_nll = response_mean(nll, mask).detach()
    floored = mean_nll < eps
    scale = mean_nll.clamp(min=eps)
    return advantages * nll / scale.unsqueeze(-1), scale, floored


def spo_loss_mat(
    log_prob: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, neg_scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """SPO loss matrix ``w_i * A * n`` with ``w_i = neg_scale`` for negative-advantage responses, else 1.

    Returns ``(loss_mat, weight)`` with the per-response weight ``w_i``.
    """
    neg_scale = check_spo_neg_scale(neg_scale)
    weight = torch.where(response_advantage(advantages, mask) < 0, neg_scale, 1.0).to(log_prob.dtype)
    return weight.unsqueeze(-1) * naive_loss_mat(log_prob, advantages, mask), weight
