"""verl glue: the ``asympo`` and ``spo`` policy losses in verl's registry, and what each loss needs.

verl 0.9.1 calls every registered policy loss from one place (``verl.workers.utils.losses.ppo_loss``,
shared by the FSDP and Megatron engines) as
``fn(old_log_prob=, log_prob=, advantages=, response_mask=, loss_agg_mode=, config=, rollout_is_weights=)``
and expects ``(scalar_loss, metrics)``. Our two functions below are that adapter: guard the inputs,
build the loss matrix (``losses.py``), apply verl's rollout weights, aggregate with verl's own
``agg_loss`` and the global batch info (so the result does not depend on the micro-batch split or
the data-parallel size), and report the scale diagnostics (``diagnostics.py``).

Every loss in the registry also carries ``needs_behavior_log_probs``: whether it reads
``old_log_prob``. Pipelines ask :func:`needs_behavior_log_probs` instead of keeping lists of names.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

from . import compat
from .config import ASYMPO_EPS_DEFAULT, SPO_NEG_SCALE_DEFAULT, check_agg_mode
from .diagnostics import response_stats, scale_metrics
from .losses import asympo_loss_mat, spo_loss_mat

logger = logging.getLogger(__name__)

PLUGIN_LOSSES = ("asympo", "spo")
# verl's own losses that never read old_log_prob (the only place built-ins are named).
BEHAVIOR_FREE_BUILTINS = frozenset({"gpg"})
SCALE_PREFIX = "actor/scale"


def _guard_inputs(log_prob, advantages, response_mask, rollout_is_weights):
    """Cast to float32 and find the valid tokens: in the mask and with a finite current log-prob.

    Non-finite current log-probs (a diverged forward, a masked vocabulary entry) are left out of
    the loss and counted in ``actor/scale/nonfinite_frac``; non-finite advantages or rollout weights
    on valid tokens are a data bug upstream and raise. The all-finite case costs one check each.
    """
    mask = response_mask.bool()
    log_prob = log_prob.float()
    advantages = advantages.float()
    if not torch.isfinite(advantages).all() and not torch.isfinite(advantages[mask]).all():
        raise ValueError(
            "asympo-plugin: advantages are NaN/inf on valid response tokens; check the reward function and "
            "algorithm.adv_estimator (a reward of NaN/inf propagates into every advantage of its group)."
        )
    if rollout_is_weights is not None and not torch.isfinite(rollout_is_weights[mask]).all():
        raise ValueError("asympo-plugin: rollout_is_weights are NaN/inf on valid tokens; check rollout correction.")
    if torch.isfinite(log_prob).all():
        return log_prob, advantages, mask, mask, 0.0
    valid = mask & torch.isfinite(log_prob)
    n_bad = int((mask & ~valid).sum())
    if n_bad:
        logger.warning("asympo-plugin: %d non-finite current log-probs left out of the policy loss", n_bad)
    return log_prob, advantages, mask, valid, n_bad / max(int(mask.sum()), 1)


def _finish(loss_mat, mask, loss_agg_mode, config, rollout_is_weights, metrics):
    from verl.trainer.ppo.core_algos import agg_loss

    if rollout_is_weights is not None:
        loss_mat = loss_mat * rollout_is_weights.float()
    if not mask.any():  # nothing to learn from; verl's agg_loss would divide 0 by 0 here
        return (loss_mat * 0.0).sum(), metrics
    loss = agg_loss(
        loss_mat=loss_mat, loss_mask=mask, loss_agg_mode=loss_agg_mode, **getattr(config, "global_batch_info", {})
    )
    return loss, metrics


def _policy_loss_setting(config, name: str, default):
    policy_loss = config.policy_loss if config is not None else None
    return policy_loss.get(name, default) if policy_loss is not None else default


def compute_policy_loss_asympo(
    old_log_prob: torch.Tensor | None,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "seq-mean-token-mean",
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """ASymPO (arXiv 2606.03070): ``L[i,t] = A[i,t] * n[i,t] / sg(max(mean_t n[i,t], eps))``, ``n = -log_prob``.

    Behavior-free: ``old_log_prob`` is ignored (it may be None).
    """
    eps = _policy_loss_setting(config, "asympo_eps", ASYMPO_EPS_DEFAULT)
    check_agg_mode("asympo", loss_agg_mode, _policy_loss_setting(config, "asympo_allow_unbalanced_agg", False))
    log_prob, advantages, mask, valid, nonfinite_frac = _guard_inputs(
        log_prob, advantages, response_mask, rollout_is_weights
    )
    loss_mat, scale, floored = asympo_loss_mat(log_prob, advantages, valid, eps)
    mean_nll, adv, lengths = response_stats(log_prob, advantages, valid)
    metrics = scale_metrics(mean_nll, adv, lengths, SCALE_PREFIX, loss_agg_mode, 1.0 / scale)
    present = lengths > 0
    metrics["actor/asympo/floored_frac"] = float(floored[present].float().mean()) if present.any() else 0.0
    metrics[f"{SCALE_PREFIX}/nonfinite_frac"] = nonfinite_frac
    return _finish(loss_mat, mask, loss_agg_mode, config, rollout_is_weights, metrics)


def compute_policy_loss_spo(
    old_log_prob: torch.Tensor | None,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "seq-mean-token-mean",
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """SPO, fixed negative scaling: ``L[i,t] = w_i * A[i,t] * n[i,t]``, ``w_i = c`` if ``A_i < 0`` else 1.

    Behavior-free: ``old_log_prob`` is ignored (it may be None).
    """
    neg_scale = _policy_loss_setting(config, "spo_neg_scale", SPO_NEG_SCALE_DEFAULT)
    log_prob, advantages, mask, valid, nonfinite_frac = _guard_inputs(
        log_prob, advantages, response_mask, rollout_is_weights
    )
    loss_mat, weight = spo_loss_mat(log_prob, advantages, valid, neg_scale)
    metrics = scale_metrics(*response_stats(log_prob, advantages, valid), SCALE_PREFIX, loss_agg_mode, weight)
    metrics[f"{SCALE_PREFIX}/nonfinite_frac"] = nonfinite_frac
    return _finish(loss_mat, mask, loss_agg_mode, config, rollout_is_weights, metrics)


compute_policy_loss_asympo.needs_behavior_log_probs = False
compute_policy_loss_spo.needs_behavior_log_probs = False


def _with_scale_metrics(fn):
    """Wrap one of verl's own losses so its runs log the same scale diagnostics (loss value unchanged)."""

    @functools.wraps(fn)
    def wrapper(**kwargs):
        loss, metrics = fn(**kwargs)
        try:
            log_prob, mask = kwargs["log_prob"], kwargs["response_mask"].bool()
            finite = torch.isfinite(log_prob)
            stats = response_stats(log_prob, kwargs["advantages"], mask if finite.all() else mask & finite)
            metrics = {**metrics, **scale_metrics(*stats, SCALE_PREFIX)}
        except Exception:  # noqa: BLE001 - diagnostics must never break a built-in loss
            logger.exception("asympo-plugin: scale diagnostics failed; loss unaffected")
        return loss, metrics

    wrapper.asympo_diagnostics = True
    return wrapper


def needs_behavior_log_probs(loss_mode: str) -> bool:
    """Whether the registered loss ``loss_mode`` reads behavior-policy log-probs (``old_log_prob``)."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    return getattr(get_policy_loss_fn(loss_mode), "needs_behavior_log_probs", True)


def registered_losses() -> list[str]:
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    return sorted(POLICY_LOSS_REGISTRY)


@functools.cache
def register() -> str:
    """Register ``asympo`` and ``spo`` into verl (once per process); return verl's version.

    Also marks every loss with ``needs_behavior_log_probs`` and adds the scale diagnostics to
    verl's built-in losses. Raises ``compat.VerlIncompatibleError`` on an unsupported verl.
    """
    version = compat.check_verl()
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, register_policy_loss

    for name, fn in list(POLICY_LOSS_REGISTRY.items()):
        if name in PLUGIN_LOSSES or getattr(fn, "asympo_diagnostics", False):
            continue
        wrapped = _with_scale_metrics(fn)
        wrapped.needs_behavior_log_probs = name not in BEHAVIOR_FREE_BUILTINS
        register_policy_loss(name)(wrapped)
    register_policy_loss("asympo")(compute_policy_loss_asympo)
    register_policy_loss("spo")(compute_policy_loss_spo)
    return version


def assert_registered() -> None:
    """Fail loudly unless this process's verl registry holds our losses (verl swallows plugin load errors)."""
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    missing = [n for n in PLUGIN_LOSSES if n not in POLICY_LOSS_REGISTRY]
    if missing:
        raise RuntimeError(
            f"asympo-plugin: losses {missing} are not registered in verl. The 'verl.plugins' entry point did not load "
            "(verl hides the error); run `python -c 'import asympo_plugin'` to see it, and check that asympo-plugin "
            "is installed in this environment (pip install -e .)."
        )
