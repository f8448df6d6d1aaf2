"""Fuzzing at the OpenRLHF call site (issue 12): ``AsympoPolicyLoss`` as OpenRLHF's trainer calls it.

Same strategy as the verl side (``tests/fuzz_strategies.py``): any shape (length 0 and 1), fully masked rows,
zero and extreme advantages, non-finite and extreme log-probs, fp32/bf16/fp16, OpenRLHF's two aggregations.
The loss (in the inputs' dtype) and its float32 gradient are finite, masked and non-finite tokens get exactly zero gradient, and the loss is
0 when every advantage is 0. ``make test`` runs the "ci" profile (100 examples); ``make fuzz`` 10,000 each.
Needs ``hypothesis`` in OpenRLHF's venv (``make fuzz`` installs it); skipped where it is absent.
"""

from __future__ import annotations

import math

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from fuzz_strategies import batches  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from asympo_plugin.openrlhf.loss import AsympoPolicyLoss  # noqa: E402

OPENRLHF_AGG = ("token-mean", "seq-mean-token-mean")
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    data=batches(min_len=0, agg_modes=OPENRLHF_AGG),
    loss_type=st.sampled_from(["asympo", "spo"]),
    asympo_eps=st.one_of(st.sampled_from([1e-8, 0.01, 1.0, 1e6]), st.floats(1e-6, 10)),
    spo_neg_scale=st.one_of(st.sampled_from([1e-6, 0.5, 1.0]), st.floats(1e-6, 1.0)),
    dp_size=st.sampled_from([None, 1, 4]),
)
def test_openrlhf_call_site_stays_finite(data, loss_type, asympo_eps, spo_neg_scale, dp_size):
    log_prob, adv, mask, agg = data
    fn = AsympoPolicyLoss(
        loss_type,
        loss_agg_mode=agg,
        asympo_eps=asympo_eps,
        spo_neg_scale=spo_neg_scale,
        asympo_allow_unbalanced_agg=True,
    )
    info = {}
    if dp_size is not None:  # what OpenRLHF's trainer passes as loss_batch_info
        info = {"dp_size": dp_size, "batch_num_tokens": float(mask.sum()), "global_batch_size": float(mask.shape[0])}
    loss_native = fn(log_prob, None, adv, action_mask=mask, **info)[0]
    assert loss_native.dim() == 0 and torch.isfinite(loss_native.float()), loss_native
    assert all(math.isfinite(float(v)) for v in fn.last_metrics.values()), fn.last_metrics
    # The gradient in float32 (OpenRLHF computes log-probs in float32): in fp16 a true gradient of |A| / asympo_eps
    # (1e4 / 1e-8 here) exceeds the dtype's range, which is the caller's dtype, not the loss.
    lp = log_prob.float().requires_grad_(True)
    loss = fn(lp, None, adv.float(), action_mask=mask, **info)[0]
    torch.testing.assert_close(loss.detach(), loss_native.detach().float(), rtol=1e-2, atol=1e-2)
    dead = ~mask | ~torch.isfinite(lp.detach())
    if loss.requires_grad:
        (grad,) = torch.autograd.grad(loss, lp, allow_unused=True)
        if grad is not None:
            assert torch.isfinite(grad).all() and (grad[dead] == 0).all()
    if (adv == 0).all():
        assert float(loss_native) == 0
