"""Learner-side time per step in OpenRLHF 0.11.2's real code: ASymPO (no old-log-prob forward) against PPO (with it).

One step = OpenRLHF's own ``BasePPOTrainer.train_step`` on the same rollout batch: experience making
(``RemoteExperienceMaker``: for PPO the actor's no-grad old-log-prob forward, for ASymPO none), ``append`` to
the real ``PolicyModelActor``'s replay buffer, ``fit`` (``ppo_train`` / ``training_step``: forward, backward,
optimizer step). Generation is not part of it (the batch is given: ``asympo_plugin/openrlhf/cpu/learner.py``).
Both learners live in one Ray session; steps alternate ASymPO/PPO so that machine load hits both alike; the
ratio is median(ASymPO) / median(PPO) over the timed steps (goal <= 0.78).

    python benchmarks/bench_openrlhf_learner.py [--steps 6] [--out docs/bench/bench_openrlhf_learner]

CPU (``ASYMPO_OPENRLHF_CPU=1``, set here unless ``--gpu``): DeepSpeed's CPU accelerator, torch AdamW, bf16.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6, help="timed steps per loss (after one warm-up step each)")
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--samples", type=int, default=8, help="responses per prompt")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--response-len", type=int, default=96)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--out", default=None, help="write <out>.json and <out>.txt")
    a = p.parse_args(argv)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["ASYMPO_OPENRLHF_CPU"] = "1"
    from asympo_plugin.openrlhf import worker

    worker.setup()
    from asympo_plugin.openrlhf.cpu import learner as L

    started = time.perf_counter()
    load_start = os.getloadavg()
    model_dir = L.save_tiny_model(tempfile.mkdtemp(prefix="bench-openrlhf-"), hidden_size=a.hidden, layers=a.layers)
    L.init_ray()
    losses = ("asympo", "ppo")
    learners = {
        loss: L.Learner(L.openrlhf_argv(loss, model_dir, n_prompts=a.prompts, n_samples=a.samples, lr=1e-5))
        for loss in losses
    }
    samples = L.rollout_samples(
        learners["ppo"].tokenizer,
        n_prompts=a.prompts,
        n_samples=a.samples,
        prompt_len=a.prompt_len,
        response_len=a.response_len,
    )
    times = {loss: [] for loss in losses}
    parts = {loss: {"make_experience": [], "ppo_train": []} for loss in losses}
    forwards = {}
    for step in range(a.steps + 1):
        for loss in losses if step % 2 == 0 else reversed(losses):
            counter = L.DispatchCounter()
            status, seconds = learners[loss].train_step(samples, counter)
            forwards[loss] = counter.calls[("PolicyModelActor", "forward")]
            if step == 0:
                continue  # warm-up
            times[loss].append(seconds)
            parts[loss]["make_experience"].append(status["timing/make_experience"])
            parts[loss]["ppo_train"].append(status["timing/ppo_train"])
            make = status["timing/make_experience"]
            print(f"step {step} {loss:6s} {seconds:.3f} s  make_experience {make:.3f} s", flush=True)
    for learner in learners.values():
        learner.close()
    import ray

    ray.shutdown()

    med = {loss: statistics.median(times[loss]) for loss in losses}
    med_make = {k: statistics.median(v["make_experience"]) for k, v in parts.items()}
    # Load-robust views: adjacent steps of the two losses, and the share of PPO's step that the skip removes.
    paired = statistics.median(x / y for x, y in zip(times["asympo"], times["ppo"]))
    saved = (med_make["ppo"] - med_make["asympo"]) / med["ppo"]
    result = {
        "ratio_asympo_over_ppo": med["asympo"] / med["ppo"],
        "ratio_median_of_step_pairs": paired,
        "ppo_make_experience_share": saved,
        "goal": 0.78,
        "median_step_s": med,
        "median_make_experience_s": med_make,
        "median_ppo_train_s": {k: statistics.median(v["ppo_train"]) for k, v in parts.items()},
        "step_s": times,
        "actor_forwards_in_experience_making_per_step": forwards,
        "setup": {
            "openrlhf": _version("openrlhf"),
            "torch": _version("torch"),
            "deepspeed": _version("deepspeed"),
            "device": "cpu (DeepSpeed CPU accelerator, ZeRO-2, bf16, torch AdamW)",
            "model": f"random-init Qwen2, hidden {a.hidden}, {a.layers} layers, head_dim 64",
            "batch": (
                f"{a.prompts} prompts x {a.samples} responses, "
                f"prompt {a.prompt_len} + response <= {a.response_len} tokens"
            ),
            "train": "one optimizer step per train_step (train.batch_size = batch, micro batch = batch/2)",
            "steps": a.steps,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "loadavg_1m_start_end": [load_start[0], os.getloadavg()[0]],
        },
        "wall_s": time.perf_counter() - started,
    }
    text = (
        f"OpenRLHF 0.11.2 learner step (experience making + training), real code, same batch, CPU\n"
        f"  asympo {med['asympo']:.3f} s/step (median of {a.steps}), ppo {med['ppo']:.3f} s/step\n"
        f"  make_experience: asympo {result['median_make_experience_s']['asympo']:.3f} s, "
        f"ppo {result['median_make_experience_s']['ppo']:.3f} s\n"
        f"  ppo_train: asympo {result['median_ppo_train_s']['asympo']:.3f} s, "
        f"ppo {result['median_ppo_train_s']['ppo']:.3f} s\n"
        f"  actor forwards in experience making per step: {forwards}\n"
        f"  ratio asympo/ppo = {result['ratio_asympo_over_ppo']:.3f} (goal <= 0.78)\n"
        f"  median of per-step-pair ratios {paired:.3f}; PPO's make_experience is {saved:.1%} of its step "
        f"(expected ratio with equal training time {1 - saved:.3f})\n"
        f"  {result['setup']['model']}; {result['setup']['batch']}; benchmark wall {result['wall_s']:.0f} s\n"
        f"  load average (1 min) at start/end: {result['setup']['loadavg_1m_start_end']} on {os.cpu_count()} CPUs\n"
    )
    print(text)
    if a.out:
        with open(f"{a.out}.json", "w") as f:
            json.dump(result, f, indent=2)
        with open(f"{a.out}.txt", "w") as f:
            f.write(text)
    return 0


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
