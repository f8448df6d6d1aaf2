"""Learner step time of ASymPO vs PPO-clip with recomputed old log-probs, side by side, on a causal LM.

    python benchmarks/bench_learner_step.py [--preset qwen2.5-0.5b[,qwen2.5-1.5b]] [--responses 64]
        [--prompt-len 256] [--response-len 768] [--micro-batch 8] [--warmup 2] [--repeats 10]
        [--ppo-agg token-mean] [--grad-ckpt] [--loss-impl auto] [--json PATH]

What it measures, per training step on the same batch and the same model (a randomly initialized
``transformers`` Qwen2 built from a config; nothing is downloaded):

* ``ppo_recompute``: (1) old_log_prob: a ``torch.no_grad()`` forward over the whole batch, in
  micro-batches, giving the response tokens' log-probs (what verl's ``compute_log_prob`` does
  before the update); (2) update: per micro-batch forward with grad -> token log-probs -> PPO-clip
  loss (clip 0.2) against the old log-probs -> backward (gradient accumulation), then grad-norm
  clip 1.0 and one AdamW step.
* ``asympo``: only (2), with the ASymPO loss, which reads no old log-probs.

Each phase is timed on its own (``torch.cuda.synchronize()`` around it on CUDA). Warm-up steps
first, then the methods alternate (A, B, A, B, ...) for ``--repeats`` steps each; medians are
reported. Parameters are fp32; on CUDA the compute runs under bf16 autocast, as verl's FSDP mixed
precision does. Both methods share one model and one optimizer (their values do not affect timing).

Goal: asympo total / ppo_recompute total <= 0.78. Without the extra forward the ratio is bounded by
about 0.75, a forward being about 1/3 of forward+backward (about 0.8 with ``--grad-ckpt``, which
re-runs the forward in the backward).

Losses: with verl installed, verl 0.9.1's own ``vanilla`` (PPO-clip, stock, without the plugin's
diagnostics wrapper) and the plugin's registered ``asympo``, with ``config.global_batch_info`` set
as verl's engine sets it, so the per-micro-batch losses sum to the whole batch's loss. Without verl
(``--loss-impl inline``, or ``auto`` when verl does not import): the plugin's pure-torch
``asympo_plugin.core.losses`` (the framework-free core, which imports no verl), and an inline PPO-clip that is verl's ``vanilla``
formula (tests/test_bench_learner_step_on_cpu.py proves both equal to verl's on the same inputs).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

METHODS = ("ppo_recompute", "asympo")
ASYMPO_AGG = "seq-mean-token-mean"
AGG_MODES = ("token-mean", "seq-mean-token-mean")
CLIP_RATIO = 0.2  # verl's actor default clip_ratio
CLIP_RATIO_C = 3.0  # verl's actor default dual-clip bound
ASYMPO_EPS = 0.01  # the plugin's default asympo_eps
REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------------- model
PRESETS = {
    "tiny": {
        "vocab_size": 512,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "tie_word_embeddings": False,
    },
    "qwen2.5-0.5b": {
        "vocab_size": 151936,
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
        "tie_word_embeddings": True,
    },
    "qwen2.5-1.5b": {
        "vocab_size": 151936,
        "hidden_size": 1536,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "intermediate_size": 8960,
        "tie_word_embeddings": True,
    },
}


def build_model(preset: str, device: torch.device, grad_ckpt: bool) -> torch.nn.Module:
    """A randomly initialized fp32 Qwen2ForCausalLM of the preset's shape, built directly on ``device``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**PRESETS[preset], use_cache=False, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    model = model.float().train()
    if grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


# ---------------------------------------------------------------------------------------------------- data
@dataclass
class Batch:
    input_ids: torch.Tensor  # (n, prompt_len + response_len): prompt, then response, right-padded with 0
    attention_mask: torch.Tensor  # (n, prompt_len + response_len), 0 on the padding
    response_mask: torch.Tensor  # (n, response_len) bool: the valid response tokens
    advantages: torch.Tensor  # (n, response_len) fp32: the response's GRPO advantage on every token
    prompt_len: int

    def rows(self, micro_batch: int) -> list[slice]:
        n = self.input_ids.shape[0]
        return [slice(i, min(i + micro_batch, n)) for i in range(0, n, micro_batch)]

    def global_batch_info(self) -> dict:
        """What verl's engine puts in ``config.global_batch_info`` for this (mini-)batch, one data-parallel rank."""
        return {
            "dp_size": 1,
            "batch_num_tokens": int(self.response_mask.sum()),
            "global_batch_size": self.input_ids.shape[0],
            "loss_scale_factor": None,
        }


def make_batch(n: int, prompt_len: int, response_len: int, vocab: int, device, seed: int = 0) -> Batch:
    """Random token ids; responses of random length (>= a quarter of ``response_len``, the rest padding);
    GRPO advantages: random 0/1 rewards normalized within groups of 8 (of gcd(n, 8) if n is no multiple of 8)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(1, response_len // 4), response_len + 1, (n,), generator=g)
    response_mask = torch.arange(response_len)[None, :] < lengths[:, None]
    attention_mask = torch.cat([torch.ones(n, prompt_len, dtype=torch.bool), response_mask], dim=1)
    input_ids = torch.randint(vocab, (n, prompt_len + response_len), generator=g) * attention_mask
    group = math.gcd(n, 8)
    rewards = torch.randint(0, 2, (n // group, group), generator=g).float()
    std = rewards.std(dim=1, keepdim=True) if group > 1 else torch.ones(n // group, 1)
    adv = ((rewards - rewards.mean(dim=1, keepdim=True)) / (std + 1e-6)).reshape(n, 1)
    return Batch(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.long().to(device),
        response_mask=response_mask.to(device),
        advantages=adv.expand(n, response_len).contiguous().to(device),
        prompt_len=prompt_len,
    )


def response_log_probs(model, batch: Batch, rows: slice, autocast) -> torch.Tensor:
    """Log-probs of the response tokens of ``rows``, (rows, response_len) fp32: ``logits[:, P-1:-1]``,
    log_softmax in fp32, gathered at the labels (verl's ``logprobs_from_logits`` without flash-attn)."""
    with autocast():
        logits = model(input_ids=batch.input_ids[rows], attention_mask=batch.attention_mask[rows]).logits
    labels = batch.input_ids[rows, batch.prompt_len :]
    logits = logits[:, batch.prompt_len - 1 : -1].float()  # drops the full-sequence logits
    return torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


# ---------------------------------------------------------------------------------------------------- losses
# Every loss is called as fn(log_prob, old_log_prob, advantages, response_mask) -> scalar; asympo ignores old.
def verl_losses(batch_info: dict, ppo_agg: str) -> tuple[dict, str]:
    """verl 0.9.1's stock ``vanilla`` and the plugin's registered ``asympo``, as verl's ``ppo_loss`` calls them."""
    if str(REPO) not in sys.path:  # the plugin of this checkout, as the inline path reads its losses.py
        sys.path.insert(0, str(REPO))
    import verl
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.workers.config import FSDPActorConfig

    from asympo_plugin.verl.config import AsympoPolicyLossConfig

    def config(loss_mode: str, agg: str):
        cfg = FSDPActorConfig(
            strategy="fsdp",
            ppo_micro_batch_size_per_gpu=1,
            rollout_n=8,
            loss_agg_mode=agg,
            clip_ratio=CLIP_RATIO,
            clip_ratio_low=CLIP_RATIO,
            clip_ratio_high=CLIP_RATIO,
            clip_ratio_c=CLIP_RATIO_C,
            policy_loss=AsympoPolicyLossConfig(loss_mode=loss_mode, asympo_eps=ASYMPO_EPS),
        )
        cfg.global_batch_info.update(batch_info)  # as verl.workers.utils.losses.ppo_loss does
        return cfg

    def bind(loss_mode: str, agg: str, fn):
        cfg = config(loss_mode, agg)

        def loss(log_prob, old_log_prob, advantages, response_mask):
            return fn(
                old_log_prob=old_log_prob,
                log_prob=log_prob,
                advantages=advantages,
                response_mask=response_mask,
                loss_agg_mode=agg,
                config=cfg,
                rollout_is_weights=None,
            )[0]

        return loss

    vanilla = get_policy_loss_fn("vanilla")
    if getattr(vanilla, "asympo_diagnostics", False):  # the plugin wraps verl's losses with diagnostics
        vanilla = vanilla.__wrapped__
    losses = {
        "ppo_recompute": bind("vanilla", ppo_agg, vanilla),
        "asympo": bind("asympo", ASYMPO_AGG, get_policy_loss_fn("asympo")),
    }
    return losses, f"verl {verl.__version__} core_algos: vanilla (stock) + asympo_plugin's registered asympo"


def agg_loss(loss_mat, mask, mode: str, batch_info: dict) -> torch.Tensor:
    """verl's ``agg_loss`` for one data-parallel rank, in the two modes used here."""
    masked = torch.where(mask, loss_mat, torch.zeros_like(loss_mat))
    if mode == "token-mean":
        return masked.sum() / batch_info["batch_num_tokens"]
    if mode == "seq-mean-token-mean":
        n_tokens = mask.sum(dim=-1)
        seq_losses = masked.sum(dim=-1) / (n_tokens + 1e-8)
        return (seq_losses * (n_tokens > 0)).sum() / batch_info["global_batch_size"]
    raise ValueError(f"unsupported loss_agg_mode {mode!r}")


def ppo_clip_loss_mat(log_prob, old_log_prob, advantages, clip=CLIP_RATIO, clip_c=CLIP_RATIO_C) -> torch.Tensor:
    """PPO-clip per token, as verl 0.9.1's ``vanilla``: ``r = exp(clamp(log_prob - old, -20, 20))``,
    ``L = max(-A r, -A clip(r, 1 - clip, 1 + clip))``, and for ``A < 0`` the dual-clip bound ``min(L, -A clip_c)``."""
    ratio = torch.exp(torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0))
    clipped = torch.maximum(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip, 1 + clip))
    return torch.where(advantages < 0, torch.minimum(-advantages * clip_c, clipped), clipped)


def load_plugin_loss_math():
    """The plugin's framework-free loss core (imports torch only; also on a machine without verl)."""
    from asympo_plugin.core import losses

    return losses


def inline_losses(batch_info: dict, ppo_agg: str, why: str) -> tuple[dict, str]:
    math_ = load_plugin_loss_math()

    def ppo(log_prob, old_log_prob, advantages, response_mask):
        return agg_loss(ppo_clip_loss_mat(log_prob, old_log_prob, advantages), response_mask, ppo_agg, batch_info)

    def asympo(log_prob, old_log_prob, advantages, response_mask):
        loss_mat = math_.asympo_loss_mat(log_prob.float(), advantages.float(), response_mask, ASYMPO_EPS)[0]
        return agg_loss(loss_mat, response_mask, ASYMPO_AGG, batch_info)

    return {
        "ppo_recompute": ppo,
        "asympo": asympo,
    }, f"inline fallback: {why} (verl's vanilla formula, plugin losses.py)"


def make_losses(impl: str, batch_info: dict, ppo_agg: str) -> tuple[dict, str]:
    if impl == "inline":
        return inline_losses(batch_info, ppo_agg, "--loss-impl inline")
    try:
        import verl  # noqa: F401
    except ImportError:
        if impl == "verl":
            raise
        return inline_losses(batch_info, ppo_agg, "verl not installed")
    return verl_losses(batch_info, ppo_agg)  # verl is here: the plugin must load too, or this raises


# ---------------------------------------------------------------------------------------------------- one step
def old_log_prob_pass(model, batch: Batch, micro_batch: int, autocast) -> torch.Tensor:
    """PPO's extra pass: the current (pre-update) policy's log-probs of the whole batch, without grad."""
    with torch.no_grad():
        return torch.cat([response_log_probs(model, batch, rows, autocast) for rows in batch.rows(micro_batch)])


def update(model, optimizer, batch: Batch, micro_batch: int, autocast, loss_fn, old_log_prob) -> float:
    """One optimizer step: gradient accumulation over the micro-batches, grad-norm clip 1.0, AdamW."""
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for rows in batch.rows(micro_batch):
        log_prob = response_log_probs(model, batch, rows, autocast)
        old = old_log_prob[rows] if old_log_prob is not None else None
        loss = loss_fn(log_prob, old, batch.advantages[rows], batch.response_mask[rows])
        loss.backward()
        total += loss.detach()
        del log_prob, loss
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    return float(total)


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def train_step(method: str, model, optimizer, batch, micro_batch, autocast, losses, device) -> dict:
    """One step of ``method``; returns its phase times in seconds and the loss."""
    old, t_old = None, 0.0
    if method == "ppo_recompute":
        old, t_old = timed(lambda: old_log_prob_pass(model, batch, micro_batch, autocast), device)
    loss, t_update = timed(lambda: update(model, optimizer, batch, micro_batch, autocast, losses[method], old), device)
    return {"old_log_prob": t_old, "update": t_update, "total": t_old + t_update, "loss": loss}


# ---------------------------------------------------------------------------------------------------- a run
def run_preset(preset: str, args, device: torch.device) -> dict:
    t_build = time.perf_counter()
    model = build_model(preset, device, args.grad_ckpt)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01)
    batch = make_batch(args.responses, args.prompt_len, args.response_len, model.config.vocab_size, device)
    losses, impl = make_losses(args.loss_impl, batch.global_batch_info(), args.ppo_agg)
    build_s = time.perf_counter() - t_build
    if device.type == "cuda":
        autocast = functools.partial(torch.autocast, "cuda", dtype=torch.bfloat16)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        autocast = contextlib.nullcontext

    steps = {m: [] for m in METHODS}
    for i in range(args.warmup + args.repeats):  # interleaved, so drift and warm-up hit both methods alike
        for method in METHODS:
            step = train_step(method, model, optimizer, batch, args.micro_batch, autocast, losses, device)
            if i >= args.warmup:
                steps[method].append(step)
    results = {
        m: {k: statistics.median(s[k] for s in steps[m]) for k in ("old_log_prob", "update", "total")}
        | {"steps": steps[m]}
        for m in METHODS
    }
    cfg = model.config
    setup = {
        "preset": preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "python": platform.python_version(),
        "model": (
            f"Qwen2ForCausalLM {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, {cfg.num_attention_heads} "
            f"heads / {cfg.num_key_value_heads} kv, intermediate {cfg.intermediate_size}, vocab {cfg.vocab_size}, "
            f"tied embeddings {cfg.tie_word_embeddings}, attn {cfg._attn_implementation}"
        ),
        "params": sum(p.numel() for p in model.parameters()),
        "responses": args.responses,
        "tokens_per_response": args.prompt_len + args.response_len,
        "prompt_len": args.prompt_len,
        "response_len": args.response_len,
        "valid_response_tokens": int(batch.response_mask.sum()),
        "micro_batch": args.micro_batch,
        "dtype": "fp32 params, bf16 autocast" if device.type == "cuda" else "fp32",
        "grad_ckpt": args.grad_ckpt,
        "optimizer": "AdamW, grad-norm clip 1.0",
        "loss_impl": impl,
        "loss_agg": {"ppo_recompute": args.ppo_agg, "asympo": ASYMPO_AGG},
        "warmup": args.warmup,
        "repeats": args.repeats,
        "build_s": build_s,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        setup["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    del model, optimizer, batch, losses
    gc.collect()  # free this preset's model before the next one is built
    if device.type == "cuda":
        torch.cuda.empty_cache()
    ratio = results["asympo"]["total"] / results["ppo_recompute"]["total"]
    return {"setup": setup, "results": results, "ratio": ratio}


def report(run: dict) -> str:
    s, r = run["setup"], run["results"]
    lines = [
        f"## {s['preset']}: {s['device']}, torch {s['torch']}, transformers {s['transformers']}, python {s['python']}",
        f"- model: {s['model']}; {s['params'] / 1e6:.1f}M parameters",
        (
            f"- batch: {s['responses']} responses x {s['tokens_per_response']} tokens (prompt {s['prompt_len']} + "
            f"response {s['response_len']}, {s['valid_response_tokens']} valid response tokens), micro-batch "
            f"{s['micro_batch']}, {s['dtype']}, gradient checkpointing {'on' if s['grad_ckpt'] else 'off'}, "
            f"{s['optimizer']}"
        ),
        (
            f"- losses: {s['loss_impl']}; ppo_recompute PPO-clip {CLIP_RATIO} with {s['loss_agg']['ppo_recompute']}, "
            f"asympo (eps {ASYMPO_EPS}) with {s['loss_agg']['asympo']}"
        ),
        f"- medians of {s['repeats']} interleaved steps after {s['warmup']} warm-up; model build {s['build_s']:.1f} s"
        + (f"; peak GPU memory {s['peak_mem_gib']:.1f} GiB" if "peak_mem_gib" in s else f"; {s['threads']} threads"),
        "",
        "| method | old-log-prob s/step | update s/step | total s/step |",
        "|---|---:|---:|---:|",
    ]
    for m in METHODS:
        lines.append(f"| {m} | {r[m]['old_log_prob']:.4f} | {r[m]['update']:.4f} | {r[m]['total']:.4f} |")
    verdict = "meets" if run["ratio"] <= 0.78 else "MISSES"
    lines += ["", f"asympo / ppo_recompute (total s/step): **{run['ratio']:.3f}** ({verdict} the goal <= 0.78)", ""]
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="qwen2.5-0.5b", help=f"comma-separated, of {', '.join(PRESETS)}")
    p.add_argument("--presets", dest="preset", help="alias of --preset")
    p.add_argument("--responses", type=int, default=64)
    p.add_argument("--prompt-len", type=int, default=256)
    p.add_argument("--response-len", type=int, default=768)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--ppo-agg", choices=AGG_MODES, default="token-mean", help="PPO's loss_agg_mode (verl's default)")
    p.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing (re-runs forward in backward)")
    p.add_argument("--loss-impl", choices=("auto", "verl", "inline"), default="auto")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", type=Path, help="also write the numbers here as JSON")
    args = p.parse_args(argv)
    presets = args.preset.split(",")
    if unknown := [x for x in presets if x not in PRESETS]:
        p.error(f"unknown preset(s) {unknown}; choose from {list(PRESETS)}")
    if args.repeats < 1 or args.warmup < 0 or min(args.responses, args.prompt_len, args.response_len) < 1:
        p.error("need --repeats >= 1, --warmup >= 0 and positive sizes")
    return args, presets


def main(argv=None) -> list[dict]:
    args, presets = parse_args(argv)
    device = torch.device(args.device)
    runs = []
    for preset in presets:
        run = run_preset(preset, args, device)
        print(report(run), flush=True)
        runs.append(run)
    if args.json:
        args.json.write_text(json.dumps({"argv": sys.argv[1:] if argv is None else list(argv), "runs": runs}, indent=1))
    return runs


if __name__ == "__main__":
    main()
