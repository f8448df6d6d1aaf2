"""verl's real call site: verl.workers.utils.losses.ppo_loss, as the FSDP and Megatron engines call it.

The batch is laid out the way verl's engines hand it to the loss: a TensorDict with prompts,
responses and attention mask, the model's flat per-token log-probs, and the global batch info
(dp_size, batch_num_tokens, global_batch_size) that forward_backward_batch assigns.
"""

from __future__ import annotations

import pytest
import torch
from conftest import actor_config, make_batch
from tensordict import TensorDict

from asympo_plugin.verl.losses import compute_policy_loss_asympo

AGG_MODES = ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
PROMPT_LEN = 3


def engine_inputs(log_prob, adv, mask, rows, *, dp_size, batch_num_tokens, global_batch_size):
    """The (data, model_output) pair verl's engine passes to ppo_loss for the given rows."""
    from verl.utils import tensordict_utils as tu

    lp, a, m = log_prob[rows], adv[rows], mask[rows]
    bs, resp_len = m.shape
    prompt_mask = torch.ones(bs, PROMPT_LEN, dtype=torch.long)
    attention_mask = torch.cat([prompt_mask, m.long()], dim=1)
    # The model's flat (total_nnz,) log-probs: token k's log-prob sits at position k-1.
    flat = []
    for i in range(bs):
        T = int(m[i].sum())
        seq = torch.cat([torch.zeros(PROMPT_LEN - 1), lp[i, :T], torch.zeros(1)])
        flat.append(seq)
    data = TensorDict(
        {
            "prompts": torch.ones(bs, PROMPT_LEN, dtype=torch.long),
            "responses": torch.ones(bs, resp_len, dtype=torch.long),
            "attention_mask": attention_mask,
            "response_mask": m.long(),
            "old_log_probs": lp.detach().clamp(min=-50),
            "advantages": a,
        },
        batch_size=bs,
    )
    tu.assign_non_tensor(data, dp_size=dp_size, batch_num_tokens=batch_num_tokens, global_batch_size=global_batch_size)
    return data, {"log_probs": torch.cat(flat)}


def total_loss(cfg, log_prob, adv, mask, n_micro, dp):
    """Sum over micro-batches, mean over simulated data-parallel ranks: what the optimizer sees."""
    from verl.workers.utils.losses import ppo_loss

    bs = mask.shape[0]
    info = dict(dp_size=dp, batch_num_tokens=int(mask.sum()), global_batch_size=bs)
    total, metrics = 0.0, []
    for rank_rows in torch.arange(bs).chunk(dp):
        rank_total = 0.0
        for rows in rank_rows.chunk(n_micro):
            data, out = engine_inputs(log_prob, adv, mask, rows, **info)
            loss, m = ppo_loss(cfg, out, data)
            rank_total = rank_total + loss
            metrics.append(m)
        total = total + rank_total / dp  # DDP/FSDP average gradients over ranks
    return total, metrics


def test_ppo_loss_selects_asympo_and_returns_its_metrics():
    cfg = actor_config("asympo")
    log_prob, adv, mask = make_batch(pad_value=-1.0)
    loss, metrics = total_loss(cfg, log_prob, adv, mask, n_micro=1, dp=1)
    expected, _ = compute_policy_loss_asympo(
        old_log_prob=None,
        log_prob=log_prob,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode="seq-mean-token-mean",
        config=cfg,
    )
    torch.testing.assert_close(loss, expected)
    names = set(metrics[0])
    for key in (
        "actor/pg_loss",
        "actor/scale/pos_nll",
        "actor/scale/neg_nll",
        "actor/scale/nll_ratio",
        "actor/scale/balance_residual_naive",
        "actor/scale/balance_residual",
        "actor/asympo/floored_frac",
    ):
        assert key in names, key
    # Whole GRPO groups in one micro-batch: ASymPO's residual is 0, the naive objective's is not.
    assert metrics[0]["actor/scale/balance_residual"].aggregate() < 1e-6
    assert metrics[0]["actor/scale/balance_residual_naive"].aggregate() > 1e-3


def test_builtin_losses_log_the_scale_diagnostics_and_keep_their_value():
    """With ASYMPO_BUILTIN_DIAGNOSTICS=1 (the study's baselines) verl's losses get the diagnostics, same value."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    from asympo_plugin.verl.losses import with_scale_metrics

    cfg = actor_config("vanilla")
    log_prob, adv, mask = make_batch(pad_value=-1.0)
    kwargs = dict(
        old_log_prob=log_prob.detach(),
        log_prob=log_prob,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode="token-mean",
        config=cfg,
        rollout_is_weights=None,
    )
    assert not hasattr(get_policy_loss_fn("vanilla"), "asympo_diagnostics")  # off by default: verl's own
    wrapped = with_scale_metrics(get_policy_loss_fn("vanilla"))
    loss, metrics = wrapped(**kwargs)
    stock_loss, stock_metrics = wrapped.__wrapped__(**kwargs)
    torch.testing.assert_close(loss, stock_loss)
    assert stock_metrics.items() <= metrics.items()
    assert "actor/scale/nll_ratio" in metrics


@pytest.mark.parametrize("loss_name", ["asympo", "spo"])
@pytest.mark.parametrize("agg", AGG_MODES)
def test_total_is_invariant_to_micro_batch_split_and_dp_size(loss_name, agg):
    overrides = [f"actor_rollout_ref.actor.loss_agg_mode={agg}"]
    if loss_name == "asympo" and agg != "seq-mean-token-mean":
        overrides.append("actor_rollout_ref.actor.policy_loss.asympo_allow_unbalanced_agg=true")
    cfg = actor_config(loss_name, *overrides)
    log_prob, adv, mask = make_batch(groups=4, group_size=4, pad_value=-1.0)
    ref, _ = total_loss(cfg, log_prob, adv, mask, n_micro=1, dp=1)
    (ref_grad,) = torch.autograd.grad(ref, log_prob)
    for n_micro, dp in [(2, 1), (4, 1), (1, 2), (2, 2), (2, 4)]:
        got, _ = total_loss(cfg, log_prob, adv, mask, n_micro=n_micro, dp=dp)
        (got_grad,) = torch.autograd.grad(got, log_prob)
        torch.testing.assert_close(got, ref, msg=f"{n_micro} micro-batches x dp {dp}")
        torch.testing.assert_close(got_grad, ref_grad, msg=f"grad, {n_micro} micro-batches x dp {dp}")


def test_asympo_refuses_unbalanced_aggregation_inside_the_worker_too():
    """A run that bypasses asympo-train (plain verl with loss_mode=asympo) still gets the error."""
    cfg = actor_config("asympo", "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean")
    log_prob, adv, mask = make_batch(pad_value=-1.0)
    with pytest.raises(ValueError, match="asympo_allow_unbalanced_agg"):
        compute_policy_loss_asympo(
            old_log_prob=None,
            log_prob=log_prob,
            advantages=adv,
            response_mask=mask,
            loss_agg_mode="token-mean",
            config=cfg,
        )


def test_rollout_is_weights_are_multiplied_in():
    cfg = actor_config("spo")
    log_prob, adv, mask = make_batch(pad_value=-1.0)
    w = torch.full_like(adv, 0.5)
    kw = dict(
        old_log_prob=None, log_prob=log_prob, advantages=adv, response_mask=mask, loss_agg_mode="token-mean", config=cfg
    )
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    spo = get_policy_loss_fn("spo")
    full, _ = spo(**kw, rollout_is_weights=None)
    half, _ = spo(**kw, rollout_is_weights=w)
    torch.testing.assert_close(half, 0.5 * full)
