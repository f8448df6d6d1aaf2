"""The loss math (SPEC.md, "The losses"): identities that a wrong implementation breaks."""

from __future__ import annotations

import pytest
import torch
from conftest import make_batch

from asympo_plugin.core.losses import asympo_loss_mat, naive_loss_mat, response_mean, spo_loss_mat

EPS = 0.01


def per_response_value(loss_mat, mask):
    """A response's forward value under per-response token-mean (seq-mean-token-mean)."""
    return response_mean(loss_mat, mask)


def test_asympo_forward_value_per_response_is_its_advantage(batch):
    log_prob, adv, mask = batch
    loss_mat, scale, floored = asympo_loss_mat(log_prob, adv, mask, EPS)
    assert not floored.any()
    torch.testing.assert_close(per_response_value(loss_mat, mask), adv[:, 0], atol=1e-6, rtol=1e-6)


def test_asympo_zero_sum_group_sums_to_zero_but_naive_does_not(batch):
    log_prob, adv, mask = batch
    groups = adv.shape[0] // 4
    asympo = per_response_value(asympo_loss_mat(log_prob, adv, mask, EPS)[0], mask).reshape(groups, 4).sum(1)
    naive = per_response_value(naive_loss_mat(log_prob, adv, mask), mask).reshape(groups, 4).sum(1)
    torch.testing.assert_close(asympo, torch.zeros(groups), atol=1e-6, rtol=0)
    assert naive.abs().max() > 1e-2  # the imbalance ASymPO removes is really there


def test_asympo_gradient_is_advantage_over_scale_times_grad_mean_nll(batch):
    log_prob, adv, mask = batch
    loss_mat, scale, _ = asympo_loss_mat(log_prob, adv, mask, EPS)
    (grad,) = torch.autograd.grad(per_response_value(loss_mat, mask).sum(), log_prob)

    mean_nll = response_mean(-log_prob, mask)
    expected = []
    for i in range(len(mean_nll)):
        (g_i,) = torch.autograd.grad(mean_nll[i], log_prob, retain_graph=True)
        expected.append(adv[i, 0] / scale[i] * g_i[i])
    torch.testing.assert_close(grad, torch.stack(expected), atol=1e-6, rtol=1e-5)
    assert grad[mask].abs().sum() > 0


def test_asympo_without_stop_gradient_would_have_zero_gradient(batch):
    """The same formula with s_i not detached has gradient 0; ours must not be that."""
    log_prob, adv, mask = batch
    nll = torch.where(mask, -log_prob, torch.zeros_like(log_prob))
    live_scale = response_mean(nll, mask).clamp(min=EPS)
    no_sg = per_response_value(adv * nll / live_scale[:, None], mask).sum()
    (grad_no_sg,) = torch.autograd.grad(no_sg, log_prob)
    assert grad_no_sg.abs().max() < 1e-6

    ours = per_response_value(asympo_loss_mat(log_prob, adv, mask, EPS)[0], mask).sum()
    (grad_ours,) = torch.autograd.grad(ours, log_prob)
    assert grad_ours.abs().max() > 1e-2


def test_asympo_damps_stale_high_nll_responses():
    """Two responses with equal |A|: the one at higher NLL gets the smaller gradient per token."""
    log_prob = torch.tensor([[-0.2, -0.2], [-2.0, -2.0]], requires_grad=True)
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    (grad,) = torch.autograd.grad(response_mean(asympo_loss_mat(log_prob, adv, mask, EPS)[0], mask).sum(), log_prob)
    assert grad[0].abs().mean() / grad[1].abs().mean() == pytest.approx(2.0 / 0.2)
    (grad_naive,) = torch.autograd.grad(response_mean(naive_loss_mat(log_prob, adv, mask), mask).sum(), log_prob)
    torch.testing.assert_close(grad_naive[0].abs(), grad_naive[1].abs())


@pytest.mark.parametrize("c", [0.25, 0.5, 1.0])
def test_spo_scales_exactly_the_negative_terms(batch, c):
    log_prob, adv, mask = batch
    spo, weight = spo_loss_mat(log_prob, adv, mask, c)
    naive = naive_loss_mat(log_prob, adv, mask)
    neg = adv[:, 0] < 0
    assert neg.any() and (~neg).any()
    torch.testing.assert_close(spo[neg], c * naive[neg])
    torch.testing.assert_close(spo[~neg], naive[~neg])
    torch.testing.assert_close(weight, torch.where(neg, c, 1.0))


def test_naive_equals_verls_gpg_loss(batch):
    from verl.trainer.ppo.core_algos import agg_loss

    log_prob, adv, mask = make_batch(pad_value=-1.0)
    ours = agg_loss(naive_loss_mat(log_prob, adv, mask), mask, "token-mean")
    verl_gpg = agg_loss(-log_prob * adv, mask, "token-mean")
    torch.testing.assert_close(ours, verl_gpg)


def test_floor_engages_exactly_below_eps():
    # mean NLLs: 0.005, 0.0099, 0.01, 0.02
    nll = torch.tensor([0.005, 0.0099, 0.01, 0.02])
    log_prob = (-nll[:, None]).expand(4, 3).clone().requires_grad_(True)
    adv = torch.ones(4, 3)
    mask = torch.ones(4, 3, dtype=torch.bool)
    _, scale, floored = asympo_loss_mat(log_prob, adv, mask, eps=0.01)
    assert floored.tolist() == [True, True, False, False]
    torch.testing.assert_close(scale, torch.tensor([0.01, 0.01, 0.01, 0.02]))


@pytest.mark.parametrize("eps", [0.0, -1.0])
def test_asympo_refuses_nonpositive_eps(batch, eps):
    log_prob, adv, mask = batch
    with pytest.raises(ValueError, match="asympo_eps"):
        asympo_loss_mat(log_prob, adv, mask, eps)


@pytest.mark.parametrize("c", [0.0, 1.5, -0.5])
def test_spo_refuses_scale_outside_unit_interval(batch, c):
    log_prob, adv, mask = batch
    with pytest.raises(ValueError, match="spo_neg_scale"):
        spo_loss_mat(log_prob, adv, mask, c)
