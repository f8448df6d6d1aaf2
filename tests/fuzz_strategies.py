"""Hypothesis strategies shared by the verl-side and OpenRLHF-side fuzz tests (framework-free: torch only)."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

AGG_MODES = ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
SPECIAL = [float("-inf"), float("nan"), float("inf"), -1e4, -1e30, -1e-12, -1e-45, 0.0, 1.0, 1e4]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@st.composite
def batches(draw, min_len: int = 1, agg_modes=tuple(AGG_MODES)):
    """``(log_prob, advantages, mask, agg_mode)``: any shape (rows of length 0 and 1 included), any dtype."""
    bs = draw(st.integers(1, 6))
    T = draw(st.integers(min_len, 9))
    mask_kind = draw(st.sampled_from(["random", "none", "all", "length-1", "prefix"]))
    if mask_kind == "random":
        mask = torch.tensor(draw(st.lists(st.lists(st.booleans(), min_size=T, max_size=T), min_size=bs, max_size=bs)))
    else:
        lengths = {
            "none": [0] * bs,
            "all": [T] * bs,
            "length-1": [min(1, T)] * bs,
            "prefix": draw(st.lists(st.integers(0, T), min_size=bs, max_size=bs)),
        }[mask_kind]
        mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    mask = mask.reshape(bs, T).bool()
    base = torch.tensor(draw(st.lists(st.lists(st.floats(-30, 0), min_size=T, max_size=T), min_size=bs, max_size=bs)))
    base = base.reshape(bs, T)
    if T:
        for _ in range(draw(st.integers(0, bs * T))):
            base[draw(st.integers(0, bs - 1)), draw(st.integers(0, T - 1))] = draw(st.sampled_from(SPECIAL))
    adv_kind = draw(st.sampled_from(["zero", "random", "zero-sum", "extreme"]))
    if adv_kind == "zero":
        adv = torch.zeros(bs)
    elif adv_kind == "extreme":
        adv = torch.tensor(draw(st.lists(st.sampled_from([-1e4, -1.0, 0.0, 1e-8, 1e4]), min_size=bs, max_size=bs)))
    else:
        adv = torch.tensor(draw(st.lists(st.floats(-5, 5), min_size=bs, max_size=bs)))
        if adv_kind == "zero-sum":
            adv = adv - adv.mean()
    dtype = draw(st.sampled_from(DTYPES))
    return base.to(dtype), adv[:, None].expand(bs, T).to(dtype), mask, draw(st.sampled_from(agg_modes))
