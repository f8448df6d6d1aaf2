"""Degenerate input is normal input (SPEC.md): property-based fuzzing of the registered losses.

Whatever the shapes, masks (fully masked rows, length-1 responses), advantages (all zero),
log-probs (-inf, NaN, huge, tiny) and dtypes (fp32, bf16, fp16): the loss and its gradient are
finite, masked or non-finite tokens get exactly zero gradient, or the call fails with a clear error.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import actor_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from fuzz_strategies import DTYPES, SPECIAL, batches  # noqa: F401

from asympo_plugin.core.policy_loss import PLUGIN_LOSSES, plugin_loss
from asympo_plugin.verl.losses import compute_policy_loss_asympo, compute_policy_loss_spo

LOSSES = {"asympo": compute_policy_loss_asympo, "spo": compute_policy_loss_spo}
# Example counts come from the hypothesis profile (tests/conftest.py): "ci" in make test, "fuzz" in make fuzz.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def configs():
    return {
        "asympo": actor_config("asympo", "actor_rollout_ref.actor.policy_loss.asympo_allow_unbalanced_agg=true"),
        "spo": actor_config("spo"),
    }


def _finite_metrics(metrics):
    return all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


@FUZZ
@given(data=batches())
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_loss_and_gradient_stay_finite(configs, data, loss_name):
    """verl's call site: the function verl's registry returns for the loss, aggregated by verl's agg_loss."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    log_prob, adv, mask, agg = data
    cfg = configs[loss_name]
    cfg.global_batch_info.clear()
    fn = get_policy_loss_fn(loss_name)
    assert fn is LOSSES[loss_name]
    native, _ = fn(
        old_log_prob=None, log_prob=log_prob, advantages=adv, response_mask=mask, loss_agg_mode=agg, config=cfg
    )
    assert native.dtype == torch.float32 and torch.isfinite(native)
    # The gradient of a float32 copy (verl's actor computes log-probs in float32). In fp16 a true per-token gradient of
    # |A| / s_i (1e4 / 0.01 = 1e6) is beyond the dtype's range (65504): the caller's dtype, not the loss, overflows.
    log_prob = log_prob.float().requires_grad_(True)
    loss, metrics = fn(
        old_log_prob=None, log_prob=log_prob, advantages=adv.float(), response_mask=mask, loss_agg_mode=agg, config=cfg
    )
    torch.testing.assert_close(loss.detach(), native.detach(), rtol=1e-2, atol=1e-2)
    assert _finite_metrics(metrics), metrics
    (grad,) = torch.autograd.grad(loss, log_prob, allow_unused=True)
    if grad is not None:
        assert torch.isfinite(grad).all()
        dead = ~mask | ~torch.isfinite(log_prob.detach())
        assert (grad[dead] == 0).all()
    if (adv == 0).all():
        assert loss == 0


@FUZZ
@given(
    data=batches(min_len=0),
    asympo_eps=st.one_of(st.sampled_from([1e-8, 0.01, 1.0, 1e6]), st.floats(1e-6, 10)),
    spo_neg_scale=st.one_of(st.sampled_from([1e-6, 0.5, 1.0]), st.floats(1e-6, 1.0)),
    mask_dtype=st.sampled_from([torch.bool, torch.int64, torch.float32]),
)
@pytest.mark.parametrize("loss_name", PLUGIN_LOSSES)
def test_core_plugin_loss_stays_finite(data, asympo_eps, spo_neg_scale, mask_dtype, loss_name):
    """The framework-free core both adapters call (verl and OpenRLHF): finite loss matrix and gradient, zero
    on masked and non-finite tokens, finite metrics; T = 0 included."""
    log_prob, adv, mask, agg = data
    settings_ = {"asympo_eps": asympo_eps, "spo_neg_scale": spo_neg_scale, "asympo_allow_unbalanced_agg": True}
    native, _, _ = plugin_loss(loss_name, log_prob, adv, mask.to(mask_dtype), loss_agg_mode=agg, **settings_)
    assert native.dtype == torch.float32 and torch.isfinite(native).all()  # in the inputs' own dtype
    log_prob = log_prob.float().requires_grad_(True)  # float32 gradient (see test_loss_and_gradient_stay_finite)
    adv = adv.float()
    loss_mat, out_mask, metrics = plugin_loss(
        loss_name,
        log_prob,
        adv,
        mask.to(mask_dtype),
        loss_agg_mode=agg,
        asympo_eps=asympo_eps,
        spo_neg_scale=spo_neg_scale,
        asympo_allow_unbalanced_agg=True,
    )
    assert loss_mat.shape == log_prob.shape and loss_mat.dtype == torch.float32
    assert torch.equal(out_mask, mask)
    assert torch.isfinite(loss_mat).all()
    dead = ~mask | ~torch.isfinite(log_prob.detach().float())
    assert (loss_mat[dead] == 0).all()
    assert _finite_metrics(metrics), metrics
    total = (loss_mat * out_mask).sum() / out_mask.sum().clamp(min=1)  # any framework's masked mean
    (grad,) = torch.autograd.grad(total, log_prob, allow_unused=True)
    if grad is not None:
        assert torch.isfinite(grad).all() and (grad[dead] == 0).all()
    if (adv == 0).all():
        assert (loss_mat == 0).all()


@FUZZ
@given(
    bad=st.one_of(st.sampled_from([0.0, -1.0, float("nan"), float("inf"), float("-inf")]), st.floats(max_value=0)),
    loss_name=st.sampled_from(PLUGIN_LOSSES),
    data=batches(),
)
def test_core_refuses_bad_settings_clearly(bad, loss_name, data):
    """A bad setting reaching the core directly fails with the setting named, never a NaN loss."""
    from asympo_plugin.core.fields import LossConfigError

    log_prob, adv, mask, _ = data
    name = "asympo_eps" if loss_name == "asympo" else "spo_neg_scale"
    settings_ = {"asympo_eps": 0.01, "spo_neg_scale": 0.5, name: bad}
    with pytest.raises(LossConfigError, match=name):
        plugin_loss(loss_name, log_prob, adv, mask, loss_agg_mode="seq-mean-token-mean", **settings_)


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
