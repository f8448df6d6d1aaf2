"""verl glue: the ``asympo`` and ``spo`` policy losses in verl's registry, and what each loss needs.

verl 0.9.1 calls every registered policy loss from one place (``verl.workers.utils.losses.ppo_loss``,
shared by the FSDP and Megatron engines) as
``fn(old_log_prob=, log_prob=, advantages=, response_mask=, loss_agg_mode=, config=, rollout_is_weights=)``
and expects ``(scalar_loss, metrics)``. The two functions below are that adapter around the core
(``asympo_plugin.core.policy_loss``): read the settings from verl's config, build the loss matrix and the
diagnostics, and aggregate with verl's own ``agg_loss`` and the global batch info (so the result does not
depend on the micro-batch split or the data-parallel size).

Every loss carries ``needs_behavior_log_probs``: whether it reads ``old_log_prob``. Pipelines (and the
patched ``ppo_loss``) read that flag, never a list of names. verl's own losses declare nothing, so
:func:`register` declares it on the one verl loss that reads no behavior log-probs
(:data:`VERL_BEHAVIOR_FREE_BUILTINS`); the function stays verl's own object, unchanged otherwise.

verl's own losses stay verl's functions (same object, same cost) unless the user switches the scale
diagnostics on for them: ``ASYMPO_BUILTIN_DIAGNOSTICS=1`` (the study does, for its baselines).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from typing import Any

import torch

from ..core import fields
from ..core.policy_loss import PLUGIN_LOSSES, builtin_scale_metrics, plugin_loss

logger = logging.getLogger(__name__)

# verl 0.9.1's registered losses that never read old_log_prob (its registry has no such flag).
VERL_BEHAVIOR_FREE_BUILTINS = frozenset({"gpg"})
# The one switch that adds the scale diagnostics to verl's own losses (off: verl's functions untouched).
BUILTIN_DIAGNOSTICS_ENV = "ASYMPO_BUILTIN_DIAGNOSTICS"


def _setting(config, name: str):
    policy_loss = config.policy_loss if config is not None else None
    default = fields.LOSS_FIELDS[name]
    return policy_loss.get(name, default) if policy_loss is not None else default


def _verl_loss(loss_mode, log_prob, advantages, response_mask, loss_agg_mode, config, rollout_is_weights):
    from verl.trainer.ppo.core_algos import agg_loss

    loss_mat, mask, metrics = plugin_loss(
        loss_mode,
        log_prob,
        advantages,
        response_mask,
        loss_agg_mode=loss_agg_mode,
        asympo_eps=_setting(config, "asympo_eps"),
        spo_neg_scale=_setting(config, "spo_neg_scale"),
        asympo_allow_unbalanced_agg=bool(_setting(config, "asympo_allow_unbalanced_agg")),
        rollout_is_weights=rollout_is_weights,
    )
    if not mask.any():  # nothing to learn from; verl's agg_loss would divide 0 by 0 here
        return (loss_mat * 0.0).sum(), metrics
    global_batch_info = getattr(config, "global_batch_info", {}) if config is not None else {}
    return agg_loss(loss_mat=loss_mat, loss_mask=mask, loss_agg_mode=loss_agg_mode, **global_batch_info), metrics


def compute_policy_loss_asympo(
    old_log_prob: torch.Tensor | None,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = fields.ASYMPO_AGG_MODE,
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """ASymPO (arXiv 2606.03070): ``L[i,t] = A[i,t] * n[i,t] / sg(max(mean_t n[i,t], eps))``, ``n = -log_prob``.

    Behavior-free: ``old_log_prob`` is ignored (it may be None).
    """
    return _verl_loss("asympo", log_prob, advantages, response_mask, loss_agg_mode, config, rollout_is_weights)


def compute_policy_loss_spo(
    old_log_prob: torch.Tensor | None,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = fields.ASYMPO_AGG_MODE,
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """SPO, fixed negative scaling: ``L[i,t] = w_i * A[i,t] * n[i,t]``, ``w_i = c`` if ``A_i < 0`` else 1.

    Behavior-free: ``old_log_prob`` is ignored (it may be None).
    """
    return _verl_loss("spo", log_prob, advantages, response_mask, loss_agg_mode, config, rollout_is_weights)


compute_policy_loss_asympo.needs_behavior_log_probs = False
compute_policy_loss_spo.needs_behavior_log_probs = False


def with_scale_metrics(fn):
    """One of verl's own losses, plus the scale diagnostics (loss value unchanged). Only when switched on."""

    @functools.wraps(fn)
    def wrapper(**kwargs):
        loss, metrics = fn(**kwargs)
        try:
            metrics = {
                **metrics,
                **builtin_scale_metrics(kwargs["log_prob"], kwargs["advantages"], kwargs["response_mask"]),
            }
        except Exception:  # noqa: BLE001 - diagnostics must never break a built-in loss
            logger.exception("asympo-plugin: scale diagnostics failed; loss unaffected")
        return loss, metrics

    wrapper.asympo_diagnostics = True
    if hasattr(fn, "needs_behavior_log_probs"):
        wrapper.needs_behavior_log_probs = fn.needs_behavior_log_probs
    return wrapper


def builtin_diagnostics_enabled() -> bool:
    return os.environ.get(BUILTIN_DIAGNOSTICS_ENV, "0") == "1"


def needs_behavior_log_probs(loss_mode: str) -> bool:
    """Whether the registered loss ``loss_mode`` reads behavior-policy log-probs (``old_log_prob``)."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    return bool(getattr(get_policy_loss_fn(loss_mode), "needs_behavior_log_probs", True))


def registered_losses() -> list[str]:
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    return sorted(POLICY_LOSS_REGISTRY)


def register(builtin_diagnostics: bool | None = None) -> None:
    """Register ``asympo`` and ``spo`` into verl's registry (idempotent).

    With ``builtin_diagnostics`` (default: the ``ASYMPO_BUILTIN_DIAGNOSTICS`` switch) verl's own losses
    get the scale diagnostics too; otherwise they stay verl's functions.
    """
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, register_policy_loss

    for name in VERL_BEHAVIOR_FREE_BUILTINS & set(POLICY_LOSS_REGISTRY):
        POLICY_LOSS_REGISTRY[name].needs_behavior_log_probs = False
    if builtin_diagnostics_enabled() if builtin_diagnostics is None else builtin_diagnostics:
        for name, fn in list(POLICY_LOSS_REGISTRY.items()):
            if name not in PLUGIN_LOSSES and not getattr(fn, "asympo_diagnostics", False):
                POLICY_LOSS_REGISTRY[name] = with_scale_metrics(fn)
    for name, fn in (("asympo", compute_policy_loss_asympo), ("spo", compute_policy_loss_spo)):
        if POLICY_LOSS_REGISTRY.get(name) is not fn:
            register_policy_loss(name)(fn)


@contextlib.contextmanager
def builtin_diagnostics_within():
    """verl's own losses log the scale diagnostics inside this block only (the in-process study engine).

    The registry entries wrapped here are verl's functions again on exit, so a process that runs the
    engine and then anything else (a test session, a notebook) sees verl's losses unchanged.
    """
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    before = dict(POLICY_LOSS_REGISTRY)
    register(builtin_diagnostics=True)
    try:
        yield
    finally:
        for name, fn in before.items():
            if getattr(POLICY_LOSS_REGISTRY.get(name), "__wrapped__", None) is fn:
                POLICY_LOSS_REGISTRY[name] = fn


def assert_registered() -> None:
    """Fail loudly unless this process's verl registry holds our losses (verl swallows plugin load errors)."""
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    missing = [n for n in PLUGIN_LOSSES if n not in POLICY_LOSS_REGISTRY]
    if missing:
        raise RuntimeError(
            f"asympo-plugin: losses {missing} are not registered in verl. The 'verl.plugins' entry point did not load "
            "(verl hides the error); run `python -c 'import asympo_plugin.verl.plugin'` to see it, and check that "
            "asympo-plugin is installed in this environment (pip install -e .)."
        )
