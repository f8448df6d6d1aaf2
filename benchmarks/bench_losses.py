"""Forward+backward time of the policy losses on the same inputs, in one run, as ratios.

    python benchmarks/bench_losses.py [--batch 64] [--tokens 4096] [--repeats 20]

Compares the plugin's registered ``asympo`` and ``spo`` (with their diagnostics, as they run in
training) against verl 0.9.1's stock ``vanilla`` (PPO-clip) and ``gpg`` (their unwrapped
functions), and the cost of the diagnostics the plugin adds to verl's losses. Goal:
asympo / vanilla <= 1.0. Prints a markdown table; the median of ``--repeats`` timed runs each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import verl  # noqa: F401  (loads the plugin through its entry point: registers the losses)
from verl.trainer.ppo.core_algos import get_policy_loss_fn

from asympo_plugin.verl.losses import with_scale_metrics


def make_inputs(bs: int, T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(T // 4, T + 1, (bs,), generator=g)
    mask = torch.arange(T)[None] < lengths[:, None]
    log_prob = -torch.rand(bs, T, generator=g) * 2
    old = log_prob + 0.05 * torch.randn(bs, T, generator=g)
    rewards = torch.randint(0, 2, (bs // 8, 8), generator=g).float()
    adv = (rewards - rewards.mean(1, keepdim=True)).reshape(bs, 1).expand(bs, T).contiguous()
    return log_prob, old, adv, mask


def actor_config(loss_mode: str, agg: str):
    from verl.workers.config import FSDPActorConfig

    from asympo_plugin.verl.config import AsympoPolicyLossConfig

    return FSDPActorConfig(
        strategy="fsdp",
        ppo_micro_batch_size_per_gpu=1,
        rollout_n=8,
        loss_agg_mode=agg,
        policy_loss=AsympoPolicyLossConfig(loss_mode=loss_mode),
    )


def time_once(fn, cfg, inputs, agg) -> float:
    log_prob, old, adv, mask = inputs
    lp = log_prob.clone().requires_grad_(True)
    t0 = time.perf_counter()
    loss, _ = fn(
        old_log_prob=old,
        log_prob=lp,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode=agg,
        config=cfg,
        rollout_is_weights=None,
    )
    loss.backward()
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    inputs = make_inputs(args.batch, args.tokens)
    rows = [
        ("vanilla (verl stock, PPO-clip)", get_policy_loss_fn("vanilla"), "vanilla", "token-mean"),
        ("gpg (verl stock)", get_policy_loss_fn("gpg"), "gpg", "token-mean"),
        ("asympo (plugin)", get_policy_loss_fn("asympo"), "asympo", "seq-mean-token-mean"),
        ("spo (plugin)", get_policy_loss_fn("spo"), "spo", "token-mean"),
        # what ASYMPO_BUILTIN_DIAGNOSTICS=1 registers for verl's own losses
        ("vanilla + plugin diagnostics", with_scale_metrics(get_policy_loss_fn("vanilla")), "vanilla", "token-mean"),
    ]
    configs = [actor_config(mode, agg) for _, _, mode, agg in rows]
    times = {label: [] for label, *_ in rows}
    for i in range(args.repeats + 2):  # round-robin, so drift and warm-up hit every loss alike
        for (label, fn, _, agg), cfg in zip(rows, configs):
            t = time_once(fn, cfg, inputs, agg)
            if i >= 2:
                times[label].append(t)
    results = {label: statistics.median(ts) for label, ts in times.items()}
    base = results[rows[0][0]]
    print(
        f"forward+backward, {args.batch} x {args.tokens} tokens, fp32, CPU threads={torch.get_num_threads()}, "
        f"median of {args.repeats}\n"
    )
    print("| loss | ms | ratio to vanilla |\n|---|---:|---:|")
    for label, t in results.items():
        print(f"| {label} | {t * 1e3:.1f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
