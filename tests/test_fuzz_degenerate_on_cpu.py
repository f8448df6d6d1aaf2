"""Degenerate input is normal input (SPEC.md): property-based fuzzing of the registered losses.

Whatever the shapes, masks (fully masked rows, length-1 responses), advantages (all zero),
log-probs (-inf, NaN, huge, tiny) and dtypes (fp32, bf16, fp16): the loss and its gradient are
finite, masked or non-finite tokens get exactly zero gradient, or the call fails with a clear error.
"""

from __future__ import annotations

import pytest
import torch
from conftest import actor_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asympo_plugin.verl.losses import compute_policy_loss_asympo, compute_policy_loss_spo

AGG_MODES = ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
LOSSES = {"asympo": compute_policy_loss_asympo, "spo": compute_policy_loss_spo}
SPECIAL = [float("-inf"), float("nan"), float("inf"), -1e4, -1e-12, 0.0]


@pytest.fixture(scope="module")
def configs():
    return {
        "asympo": actor_config("asympo", "actor_rollout_ref.actor.policy_loss.asympo_allow_unbalanced_agg=true"),
        "spo": actor_config("spo"),
    }


@st.composite
def batches(draw):
    bs = draw(st.integers(1, 6))
    T = draw(st.integers(1, 8))
    mask = torch.tensor(draw(st.lists(st.lists(st.booleans(), min_size=T, max_size=T), min_size=bs, max_size=bs)))
    base = torch.tensor(draw(st.lists(st.lists(st.floats(-20, 0), min_size=T, max_size=T), min_size=bs, max_size=bs)))
    n_special = draw(st.integers(0, bs * T))
    for _ in range(n_special):
        base[draw(st.integers(0, bs - 1)), draw(st.integers(0, T - 1))] = draw(st.sampled_from(SPECIAL))
    adv_kind = draw(st.sampled_from(["zero", "random", "zero-sum"]))
    if adv_kind == "zero":
        adv = torch.zeros(bs)
    else:
        adv = torch.tensor(draw(st.lists(st.floats(-5, 5), min_size=bs, max_size=bs)))
        if adv_kind == "zero-sum":
            adv = adv - adv.mean()
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16, torch.float16]))
    return base.to(dtype), adv[:, None].expand(bs, T).to(dtype), mask, draw(st.sampled_from(AGG_MODES))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=batches(), loss_name=st.sampled_from(sorted(LOSSES)))
def test_loss_and_gradient_stay_finite(configs, data, loss_name):
    log_prob, adv, mask, agg = data
    log_prob = log_prob.clone().requires_grad_(True)
    cfg = configs[loss_name]
    cfg.global_batch_info.clear()
    loss, metrics = LOSSES[loss_name](
        old_log_prob=None, log_prob=log_prob, advantages=adv, response_mask=mask, loss_agg_mode=agg, config=cfg
    )
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(isinstance(v, float) and v == v and abs(v) != float("inf") for v in metrics.values()), metrics
    (grad,) = torch.autograd.grad(loss, log_prob, allow_unused=True)
    if grad is not None:
        assert torch.isfinite(grad.float()).all()
        dead = ~mask | ~torch.isfinite(log_prob.detach().float())
        assert (grad[dead] == 0).all()
    if (adv == 0).all():
        assert loss == 0


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_advantages_fail_with_a_clear_error(configs, loss_name, bad):
    log_prob = torch.full((2, 3), -1.0, requires_grad=True)
    adv = torch.tensor([[1.0, 1.0, 1.0], [bad, bad, bad]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="advantages are NaN/inf"):
        LOSSES[loss_name](
            old_log_prob=None,
            log_prob=log_prob,
            advantages=adv,
            response_mask=mask,
            loss_agg_mode="seq-mean-token-mean",
            config=configs[loss_name],
        )


def test_non_finite_log_probs_are_left_out_and_counted(configs):
    log_prob = torch.tensor([[-1.0, float("nan")], [-2.0, float("-inf")]], requires_grad=True)
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    cfg = configs["asympo"]
    cfg.global_batch_info.clear()
    loss, metrics = compute_policy_loss_asympo(
        old_log_prob=None,
        log_prob=log_prob,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode="seq-mean-token-mean",
        config=cfg,
    )
    assert metrics["actor/scale/nonfinite_frac"] == 0.5
    (grad,) = torch.autograd.grad(loss, log_prob)
    assert grad[0, 0] != 0 and grad[1, 0] != 0 and grad[0, 1] == 0 and grad[1, 1] == 0
