"""OpenRLHF glue for the losses: ``AsympoPolicyLoss``, a ``PolicyLoss`` for ``asympo`` and ``spo``.

OpenRLHF 0.11.2 builds its policy loss once, in ``ActorPPOTrainer.__init__``
(``trainer/ray/ppo_actor.py:76-86``), as ``PolicyLoss(..., policy_loss_type=args.actor.policy_loss_type)``,
and calls it from one place, ``ActorPPOTrainer.training_step`` (``:304-311``), as
``loss_fn(log_probs, old_log_probs, advantages, action_mask=, rollout_log_probs=, **loss_batch_info)``,
expecting ``(loss, clip_ratio, ppo_kl, vllm_kl, is_filter_ratio)``. ``wiring.py`` puts this class there
(OpenRLHF has no loss registry) and its ``last_metrics`` into the logged status.

The loss itself is the core's (``asympo_plugin.core.policy_loss.plugin_loss``: the same code as the verl
adapter), reduced with OpenRLHF's own ``aggregate_loss`` and the ``loss_batch_info`` the trainer passes
(``dp_size``, ``batch_num_tokens``, ``global_batch_size``: global over the optimizer step), so the
gradient does not depend on the micro-batch split, gradient accumulation or the DP size.
``--actor.loss_agg_mode token-mean`` is OpenRLHF's ``token_level_loss=True``; ``seq-mean-token-mean``
(ASymPO's balanced mode) is ``token_level_loss=False``.
"""

from __future__ import annotations

import torch
from openrlhf.models.loss import PolicyLoss, aggregate_loss

from ..core import fields
from ..core.policy_loss import PLUGIN_LOSSES, plugin_loss
from .settings import FLAG, check_loss_settings


class AsympoPolicyLoss(PolicyLoss):
    """``asympo`` or ``spo`` behind OpenRLHF's ``PolicyLoss`` interface (the same forward signature and 5-tuple).

    ``old_log_probs`` and ``rollout_log_probs`` are never read (they may be None). ``last_metrics``
    holds the diagnostics of the latest forward.
    """

    def __init__(
        self,
        policy_loss_type: str,
        *,
        loss_agg_mode: str = fields.ASYMPO_AGG_MODE,
        asympo_eps: float = fields.ASYMPO_EPS_DEFAULT,
        spo_neg_scale: float = fields.SPO_NEG_SCALE_DEFAULT,
        asympo_allow_unbalanced_agg: bool = False,
        is_correction_level: str = "off",
        **stock_kwargs,
    ) -> None:
        if policy_loss_type not in PLUGIN_LOSSES:
            raise fields.LossConfigError(
                f"{FLAG['policy_loss_type']}={policy_loss_type!r} is not a plugin loss ({', '.join(PLUGIN_LOSSES)}); "
                "OpenRLHF's own ppo/gspo use its stock PolicyLoss."
            )
        check_loss_settings(
            policy_loss_type, loss_agg_mode, asympo_eps, spo_neg_scale, asympo_allow_unbalanced_agg, is_correction_level
        )
        super().__init__(
            token_level_loss=loss_agg_mode == "token-mean",
            policy_loss_type="ppo",
            is_correction_level="off",
            **stock_kwargs,
        )
        self.policy_loss_type = policy_loss_type
        self.loss_agg_mode = loss_agg_mode
        self.asympo_eps = float(asympo_eps)
        self.spo_neg_scale = float(spo_neg_scale)
        self.asympo_allow_unbalanced_agg = bool(asympo_allow_unbalanced_agg)
        self.last_metrics: dict[str, float] = {}

    @classmethod
    def from_args(cls, args) -> AsympoPolicyLoss:
        """Built from OpenRLHF's hierarchized args, exactly where and as ``ActorPPOTrainer`` builds its loss."""
        actor = args.actor
        return cls(
            actor.policy_loss_type,
            loss_agg_mode=actor.loss_agg_mode,
            asympo_eps=getattr(actor, "asympo_eps", fields.ASYMPO_EPS_DEFAULT),
            spo_neg_scale=getattr(actor, "spo_neg_scale", fields.SPO_NEG_SCALE_DEFAULT),
            asympo_allow_unbalanced_agg=getattr(actor, "asympo_allow_unbalanced_agg", False),
            is_correction_level=args.algo.advantage.is_correction_level,
            clip_eps_low=actor.eps_clip_low_high[0],
            clip_eps_high=actor.eps_clip_low_high[1],
            dual_clip=actor.dual_clip,
        )

    def forward(
        self,
        log_probs: torch.Tensor,
        old_log_probs: torch.Tensor | None,
        advantages: torch.Tensor,
        action_mask: torch.Tensor | None = None,
        rollout_log_probs: torch.Tensor | None = None,
        dp_size: int = 1,
        batch_num_tokens: float | None = None,
        global_batch_size: float | None = None,
    ):
        if action_mask is None:
            action_mask = torch.ones_like(log_probs, dtype=torch.bool)
        loss_mat, mask, metrics = plugin_loss(
            self.policy_loss_type,
            log_probs,
            advantages,
            action_mask,
            loss_agg_mode=self.loss_agg_mode,
            asympo_eps=self.asympo_eps,
            spo_neg_scale=self.spo_neg_scale,
            asympo_allow_unbalanced_agg=self.asympo_allow_unbalanced_agg,
        )
        if not mask.any():
            # No response token in this micro-batch: it contributes nothing. OpenRLHF's masked_mean would return
            # 0/0 = NaN here (found by tests/openrlhf_adapter/test_openrlhf_fuzz_on_cpu.py).
            loss = (loss_mat * 0).sum()
        else:
            loss = aggregate_loss(
                loss_mat,
                mask,
                token_level_loss=self.token_level_loss,
                dp_size=dp_size,
                batch_num_tokens=batch_num_tokens,
                global_batch_size=global_batch_size,
            )
        self.last_metrics = metrics
        zero = loss.detach().new_zeros(())
        # clip_ratio and ppo_kl compare with the old log-probs; training_step stores them, the metrics
        # patch drops them from the status. No rollout correction: vllm_kl / is_filter_ratio are None.
        return loss, zero, zero, None, None
