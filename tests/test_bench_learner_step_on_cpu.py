"""benchmarks/bench_learner_step.py on CPU: it runs, it times what it says, and its losses are verl's.

The GPU machine has no verl, so the benchmark's numbers there come from its inline fallback; the
last tests prove that fallback equal to verl 0.9.1's ``vanilla`` and the plugin's ``asympo`` here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_learner_step.py"
SMALL = ["--preset", "tiny", "--responses", "16", "--prompt-len", "8", "--response-len", "16", "--micro-batch", "4"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_learner_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny(bench):
    """The benchmark's own tiny model and batch (16 responses in groups of 8, micro-batches of 4)."""
    model = bench.build_model("tiny", torch.device("cpu"), grad_ckpt=False)
    batch = bench.make_batch(16, 8, 16, model.config.vocab_size, "cpu")
    return model, batch


@pytest.mark.parametrize("impl", ["verl", "inline"])
def test_main_times_both_methods_and_only_ppo_recomputes(bench, tmp_path, capsys, impl):
    out = tmp_path / "bench.json"
    bench.main([*SMALL, "--warmup", "1", "--repeats", "2", "--loss-impl", impl, "--json", str(out)])
    (run,) = json.loads(out.read_text())["runs"]
    ppo, asympo = run["results"]["ppo_recompute"], run["results"]["asympo"]
    assert len(ppo["steps"]) == len(asympo["steps"]) == 2
    assert all(s["old_log_prob"] > 0 for s in ppo["steps"])  # the extra no-grad pass ran and took time
    assert all(s["old_log_prob"] == 0 for s in asympo["steps"])  # asympo never runs it
    assert ppo["update"] > 0 and asympo["update"] > 0
    assert run["ratio"] == pytest.approx(asympo["total"] / ppo["total"])
    assert run["setup"]["loss_impl"].startswith("verl 0.9.1" if impl == "verl" else "inline fallback")
    assert run["setup"]["params"] == 139840
    assert "| asympo | 0.0000 |" in capsys.readouterr().out


def test_response_log_probs_match_transformers_own_loss(bench, tiny):
    """The logits[:, P-1:-1] / labels alignment, checked against HF's shifted cross-entropy over the same tokens."""
    model, batch = tiny
    rows = slice(0, 4)
    with torch.no_grad():
        log_prob = bench.response_log_probs(model, batch, rows, torch.enable_grad)
        labels = batch.input_ids[rows].clone()
        labels[:, : batch.prompt_len] = -100
        labels[:, batch.prompt_len :][~batch.response_mask[rows]] = -100
        hf = model(input_ids=batch.input_ids[rows], attention_mask=batch.attention_mask[rows], labels=labels).loss
    mask = batch.response_mask[rows]
    torch.testing.assert_close(log_prob[mask].mean(), -hf)


def test_micro_batch_losses_sum_to_verl_whole_batch_loss(bench, tiny):
    """With global_batch_info set, accumulating micro-batches gives verl's loss of the whole batch in one call."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.workers.config import FSDPActorConfig

    from asympo_plugin.verl.config import AsympoPolicyLossConfig

    model, batch = tiny
    old = bench.old_log_prob_pass(model, batch, 4, torch.enable_grad)
    g = torch.Generator().manual_seed(1)
    log_prob = old + 0.3 * torch.randn(old.shape, generator=g)  # a later PPO epoch: ratios away from 1
    for ppo_agg in bench.AGG_MODES:
        losses, impl = bench.make_losses("verl", batch.global_batch_info(), ppo_agg)
        assert impl.startswith("verl 0.9.1")
        for method, mode, agg in [("ppo_recompute", "vanilla", ppo_agg), ("asympo", "asympo", "seq-mean-token-mean")]:
            micro = sum(
                losses[method](log_prob[r], old[r], batch.advantages[r], batch.response_mask[r]) for r in batch.rows(4)
            )
            # verl's defaults (clip 0.2, dual clip 3) and no global batch info: the loss of this batch alone
            config = FSDPActorConfig(
                strategy="fsdp",
                ppo_micro_batch_size_per_gpu=1,
                rollout_n=8,
                loss_agg_mode=agg,
                policy_loss=AsympoPolicyLossConfig(loss_mode=mode),
            )
            whole, _ = get_policy_loss_fn(mode)(
                old_log_prob=old,
                log_prob=log_prob,
                advantages=batch.advantages,
                response_mask=batch.response_mask,
                loss_agg_mode=agg,
                config=config,
                rollout_is_weights=None,
            )
            torch.testing.assert_close(micro, whole, msg=f"{method} {agg}")


def test_first_update_ppo_clip_is_the_vanilla_policy_gradient(bench, tiny):
    """Old log-probs recomputed on the same weights make the first update's ratio exactly 1: PPO-clip's value is
    -token-mean(A) and its gradient is the plain policy gradient. Fails if the two passes see different tokens."""
    model, batch = tiny
    old = bench.old_log_prob_pass(model, batch, 4, torch.enable_grad)
    losses, _ = bench.make_losses("verl", batch.global_batch_info(), "token-mean")
    rows, params = slice(4, 8), list(model.parameters())
    adv, mask, n_tokens = batch.advantages[rows], batch.response_mask[rows], batch.response_mask.sum()
    assert adv.abs().sum() > 0  # these responses carry a learning signal

    log_prob = bench.response_log_probs(model, batch, rows, torch.enable_grad)
    torch.testing.assert_close(log_prob.detach(), old[rows])
    ppo = losses["ppo_recompute"](log_prob, old[rows], adv, mask)
    torch.testing.assert_close(ppo, -(adv * mask).sum() / n_tokens)
    grad_ppo = torch.autograd.grad(ppo, params, retain_graph=True)
    grad_pg = torch.autograd.grad(-(adv * log_prob * mask).sum() / n_tokens, params)
    for a, b in zip(grad_ppo, grad_pg, strict=True):
        torch.testing.assert_close(a, b)


def fallback_inputs(seed=0, bs=16, T=12):
    """Log-probs far enough from the old ones that PPO's clip and dual clip both fire; padding holds garbage."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(T)[None] < torch.randint(1, T + 1, (bs,), generator=g)[:, None]
    old = -torch.rand(bs, T, generator=g) * 3
    log_prob = (old + 1.5 * torch.randn(bs, T, generator=g)).clamp(max=-1e-3)
    log_prob = torch.where(mask, log_prob, torch.full_like(log_prob, -7.0)).requires_grad_(True)
    rewards = torch.randint(0, 2, (bs // 8, 8), generator=g).float()
    adv = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)).reshape(bs, 1)
    return log_prob, old, adv.expand(bs, T).contiguous(), mask


@pytest.mark.parametrize("ppo_agg", ["token-mean", "seq-mean-token-mean"])
def test_inline_fallback_equals_verl(bench, ppo_agg):
    """The fallback the GPU machine runs computes verl's vanilla and the plugin's asympo: values and gradients."""
    log_prob, old, adv, mask = fallback_inputs()
    rows = slice(0, 8)  # one micro-batch of the 16: the global batch info matters
    ratio = torch.exp(log_prob.detach() - old)[rows][mask[rows]]
    negative = (adv[rows] < 0)[mask[rows]]
    assert ((ratio < 0.8) | (ratio > 1.2)).any() and (ratio[negative] > 3).any()  # clip and dual clip both fire
    info = {"dp_size": 1, "batch_num_tokens": int(mask.sum()), "global_batch_size": 16, "loss_scale_factor": None}
    verl_losses, _ = bench.make_losses("verl", info, ppo_agg)
    inline_losses, impl = bench.make_losses("inline", info, ppo_agg)
    assert impl.startswith("inline fallback")
    for method in bench.METHODS:
        args = (log_prob[rows], old[rows], adv[rows], mask[rows])
        expected, got = verl_losses[method](*args), inline_losses[method](*args)
        torch.testing.assert_close(got, expected, msg=method)
        (g_expected,) = torch.autograd.grad(expected, log_prob)
        (g_got,) = torch.autograd.grad(got, log_prob)
        torch.testing.assert_close(g_got, g_expected, msg=method)
        assert g_got.abs().sum() > 0
