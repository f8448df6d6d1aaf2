"""vLLM as the CPU rollout: what rollout-side log-probs cost, and vLLM versus the ``hf`` rollout per step.

1. ``generate``: vLLM's generation time for one batch (the demo's: 16 prompts x 8 samples) with the
   sampled tokens' log-probs (``logprobs=0``, what verl asks for with ``rollout.calculate_log_probs=True``)
   and without (what a behavior-free loss runs with), same prompts, same seed, alternating, median of
   ``--repeats``. The engine is ``vllm.LLM`` with the settings verl's CPU run uses (fp32, eager).
2. ``train``: s/step of the demo setting (ASymPO, one-step-off, verl's real trainer) with
   ``rollout.name=vllm`` and ``rollout.name=hf`` on the built-in task (head_dim-64 model), median over the
   steps after the first (the first includes compilation and warm-up), with verl's ``timing_s/gen``.

Prints measured numbers and ratios only; ``--json`` writes them. Run:
``python benchmarks/bench_vllm_rollout.py [--part generate|train|both] [--steps 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def bench_generate(task, repeats: int, n_prompts: int, n: int, max_tokens: int) -> dict:
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import pandas as pd
    from vllm import LLM, SamplingParams

    rows = pd.read_parquet(task.train_file).head(n_prompts)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(task.model_dir)
    texts = [tok.apply_chat_template(list(r), add_generation_prompt=True, tokenize=False) for r in rows["prompt"]]
    prompts = [{"prompt_token_ids": tok.encode(t, add_special_tokens=False)} for t in texts]
    t0 = time.monotonic()
    llm = LLM(model=str(task.model_dir), dtype="float32", enforce_eager=True, seed=0, max_model_len=64)
    start_s = time.monotonic() - t0

    def once(logprobs):
        params = SamplingParams(n=n, temperature=1.0, max_tokens=max_tokens, logprobs=logprobs, seed=0)
        t = time.monotonic()
        out = llm.generate(prompts, params, use_tqdm=False)
        return time.monotonic() - t, sum(len(c.token_ids) for o in out for c in o.outputs)

    once(None), once(0)  # warm-up
    with_lp, without_lp, tokens = [], [], 0
    for _ in range(repeats):
        s, tokens = once(0)
        with_lp.append(s)
        s, _ = once(None)
        without_lp.append(s)
    on, off = statistics.median(with_lp), statistics.median(without_lp)
    return {
        "engine_start_s": round(start_s, 1),
        "batch": f"{n_prompts} prompts x {n} samples, <= {max_tokens} new tokens ({tokens} generated)",
        "repeats": repeats,
        "gen_s_with_log_probs": round(on, 4),
        "gen_s_without_log_probs": round(off, 4),
        "with_over_without": round(on / off, 3),
        "all_with_s": [round(x, 4) for x in with_lp],
        "all_without_s": [round(x, 4) for x in without_lp],
    }


def bench_train(task, steps: int, out_dir: Path) -> dict:
    from asympo_plugin.demo import run_training, train_overrides

    results = {}
    for rollout in ("vllm", "hf"):
        run_dir = out_dir / f"train-{rollout}"
        args = train_overrides(
            task, run_dir, rollout=rollout, steps=steps, test_freq=-1, extra=("trainer.val_before_train=False",)
        )
        result = run_training(args, run_dir)
        if result.returncode != 0:
            raise SystemExit(f"{rollout} run failed; see {result.log_path}")
        step_s = [m["timing_s/step"] for _, m in sorted(result.metrics.items()) if "timing_s/step" in m]
        gen_s = [m["timing_s/gen"] for _, m in sorted(result.metrics.items()) if "timing_s/gen" in m]
        results[rollout] = {
            "job_wall_s": round(result.wall_s, 1),
            "s_per_step_median_after_first": round(statistics.median(step_s[1:]), 3),
            "gen_s_median_after_first": round(statistics.median(gen_s[1:]), 3) if len(gen_s) > 1 else None,
            "first_step_s": round(step_s[0], 2),
            "all_step_s": [round(x, 2) for x in step_s],
            "all_gen_s": [round(x, 2) for x in gen_s],
        }
    results["vllm_over_hf_s_per_step"] = round(
        results["vllm"]["s_per_step_median_after_first"] / results["hf"]["s_per_step_median_after_first"], 3
    )
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("generate", "train", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=16)  # the demo's data.max_response_length
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_vllm_rollout"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from asympo_plugin.task import prepare

    task = prepare()
    report = {"cpu_count": os.cpu_count(), "load_avg_at_start": os.getloadavg()}
    if args.part in ("generate", "both"):
        report["generate"] = bench_generate(task, args.repeats, args.prompts, args.n, args.max_tokens)
        g = report["generate"]
        print(
            f"vLLM generate ({g['batch']}): with log-probs {g['gen_s_with_log_probs']:.4f} s, without "
            f"{g['gen_s_without_log_probs']:.4f} s, ratio {g['with_over_without']:.3f} (median of {g['repeats']})",
            flush=True,
        )
    if args.part in ("train", "both"):
        report["train"] = bench_train(task, args.steps, args.out)
        t = report["train"]
        for rollout in ("vllm", "hf"):
            r = t[rollout]
            print(
                f"{rollout}: {r['s_per_step_median_after_first']:.3f} s/step (median, steps 2-{args.steps}), gen "
                f"{r['gen_s_median_after_first']} s, first step {r['first_step_s']} s, job {r['job_wall_s']} s"
            )
        print(f"vLLM / hf s/step: {t['vllm_over_hf_s_per_step']:.3f}")
    report["load_avg_at_end"] = os.getloadavg()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
