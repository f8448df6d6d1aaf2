"""The plugin loss through OpenRLHF 0.11.2's real PolicyLoss call site and aggregate_loss."""

from __future__ import annotations

import pytest
import torch
from openrlhf.models.loss import PolicyLoss, aggregate_loss

from asympo_plugin.core.fields import LossConfigError
from asympo_plugin.core.policy_loss import plugin_loss
from asympo_plugin.openrlhf.loss import AsympoPolicyLoss

MODES = ["token-mean", "seq-mean-token-mean"]


def _loss(loss_type, agg, **kw):
    return AsympoPolicyLoss(loss_type, loss_agg_mode=agg, asympo_allow_unbalanced_agg=True, **kw)


def _grad(fn, log_prob):
    lp = log_prob.clone().requires_grad_(True)
    value = fn(lp)
    (g,) = torch.autograd.grad(value, lp)
    return value.detach(), g


def _core_reference(loss_type, agg, log_prob, adv, mask):
    """The core's loss matrix with the textbook reduction of each mode (over the whole batch)."""
    loss_mat, m, _ = plugin_loss(
        loss_type,
        log_prob,
        adv,
        mask,
        loss_agg_mode=agg,
        asympo_eps=0.01,
        spo_neg_scale=0.5,
        asympo_allow_unbalanced_agg=True,
    )
    m = m.float()
    if agg == "token-mean":
        return (loss_mat * m).sum() / m.sum()
    return ((loss_mat * m).sum(-1) / m.sum(-1)).mean()


@pytest.mark.parametrize("agg", MODES)
@pytest.mark.parametrize("loss_type", ["asympo", "spo"])
def test_value_and_gradient_equal_the_core(loss_type, agg, batch):
    log_prob, adv, mask = batch
    fn = _loss(loss_type, agg)
    got, g_got = _grad(lambda lp: fn(lp, None, adv, action_mask=mask)[0], log_prob)
    want, g_want = _grad(lambda lp: _core_reference(loss_type, agg, lp, adv, mask), log_prob)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(g_got, g_want)
    assert g_got.abs().sum() > 0
    assert g_got[~mask].abs().max() == 0


@pytest.mark.parametrize("agg", MODES)
@pytest.mark.parametrize("loss_type", ["asympo", "spo"])
@pytest.mark.parametrize("dp_size,n_micro", [(1, 4), (2, 2), (4, 1), (4, 2)])
def test_gradient_invariant_to_micro_batches_and_dp(loss_type, agg, dp_size, n_micro, batch):
    """Summed over micro-batches and averaged over DP ranks (what DeepSpeed does), the gradient equals the full batch's,
    with the loss_batch_info OpenRLHF's trainer passes (global token / sample counts)."""
    log_prob, adv, mask = batch
    fn = _loss(loss_type, agg)
    _, g_full = _grad(lambda lp: fn(lp, None, adv, action_mask=mask)[0], log_prob)
    info = {"dp_size": dp_size, "batch_num_tokens": float(mask.sum()), "global_batch_size": float(mask.shape[0])}
    lp = log_prob.clone().requires_grad_(True)
    total = 0.0
    for rank_rows in torch.arange(mask.shape[0]).chunk(dp_size):
        for rows in rank_rows.chunk(n_micro):
            total = total + fn(lp[rows], None, adv[rows], action_mask=mask[rows], **info)[0] / dp_size
    (g_split,) = torch.autograd.grad(total, lp)
    torch.testing.assert_close(g_split, g_full)


def test_asympo_zero_sum_group_is_balanced(batch):
    """seq-mean-token-mean: each ASymPO response contributes A_i, a zero-sum group sums to ~0."""
    log_prob, adv, mask = batch
    value = _loss("asympo", "seq-mean-token-mean")(log_prob, None, adv, action_mask=mask)[0]
    assert abs(float(value)) < 1e-5


def test_returns_openrlhfs_five_tuple_and_metrics(batch):
    log_prob, adv, mask = batch
    fn = _loss("asympo", "seq-mean-token-mean")
    out = fn(log_prob, None, adv, action_mask=mask)
    assert len(out) == 5 and out[3] is None and out[4] is None
    assert {"actor/scale/pos_nll", "actor/scale/neg_nll", "actor/scale/nll_ratio", "actor/asympo/floored_frac"} <= set(
        fn.last_metrics
    )


def test_stock_ppo_is_untouched(batch):
    """The plugin's class is used only for plugin types: OpenRLHF's PolicyLoss for ppo is OpenRLHF's code."""
    log_prob, adv, mask = batch
    old = log_prob - 0.1
    stock = PolicyLoss(policy_loss_type="ppo")(log_prob, old, adv, action_mask=mask)
    ratio = (log_prob - old).exp()
    ref = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv)
    torch.testing.assert_close(stock[0], aggregate_loss(ref, mask))
    with pytest.raises(LossConfigError):
        AsympoPolicyLoss("ppo")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"asympo_eps": 0.0}, "--actor.asympo_eps"),
        ({"asympo_eps": float("nan")}, "--actor.asympo_eps"),
        ({"loss_agg_mode": "token-mean"}, "--actor.loss_agg_mode=seq-mean-token-mean"),
        ({"is_correction_level": "token"}, "is_correction_level"),
    ],
)
def test_bad_settings_name_the_fix(kwargs, match):
    with pytest.raises(LossConfigError, match=match):
        AsympoPolicyLoss("asympo", **kwargs)


def test_nan_advantages_raise(batch):
    log_prob, adv, mask = batch
    adv = adv.clone()
    adv[0, 0] = float("nan")
    with pytest.raises(ValueError, match="advantages"):
        _loss("spo", "token-mean")(log_prob, None, adv, action_mask=mask)
