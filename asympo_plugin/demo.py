"""``make demo``: ASymPO trains a tiny model with verl's real one-step-off trainer, on CPU, in minutes.

What it does:

1. prepares the built-in task and model (``asympo_plugin.task``; cached after the first run);
2. runs ``asympo-train --pipeline one-step-off algorithm.loss=asympo trainer.device=cpu ...`` in a
   subprocess (verl's trainer, Ray, FSDP2 actor, verl's vLLM rollout, or the plugin's ``hf`` one with
   ``--rollout hf``, CPU weight sync);
3. shows one progress line per step while verl writes all its metrics to the console log
   (``<run>/train.log``; ``--verbose`` streams it) and to a JSONL file (``<run>/metrics.jsonl``,
   verl's ``file`` logger);
4. ends with a summary (reward at start and end, start-up time, s/step, staleness) and a
   reward-curve PNG (``<run>/reward.png``).

Usage: ``python -m asympo_plugin.demo [--steps 30] [--lr 2e-4] [--loss asympo] [--rollout vllm|hf] [--out DIR] [--verbose]``.
The functions here (:func:`train_overrides`, :func:`run_training`, :func:`read_metrics`) are also
what the CPU end-to-end tests use.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import harness
from .task import TaskArtifacts, prepare

from .core.metrics import REWARD, STALENESS, STEP_TIME  # noqa: E402,F401  (the one module of metric names)


DEMO_LR = 2e-4  # ASymPO one-step-off oscillated at 5e-4 on the letters task (docs/TASK.md); learned cleanly at 2e-4


def train_overrides(
    task: TaskArtifacts,
    run_dir: Path,
    *,
    loss: str = "asympo",
    steps: int = 50,
    batch_size: int = 16,
    n: int = 8,
    lr: float = 5e-4,
    test_freq: int = 10,
    save_freq: int = -1,
    resume: bool = False,
    pipeline: str = "one-step-off",
    rollout: str | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The ``asympo-train`` command line (after the program name) for a CPU run on the built-in task.

    ``rollout`` (``vllm`` or ``hf``) sets ``actor_rollout_ref.rollout.name``; ``None`` leaves the CPU default.
    """
    epochs = steps * batch_size // task.info["n_train"] + 1
    args = [
        f"--pipeline={pipeline}",
        f"algorithm.loss={loss}",
        "trainer.device=cpu",
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={task.train_file}",
        f"data.val_files={task.val_file}",
        f"data.train_batch_size={batch_size}",
        "data.max_prompt_length=40",
        "data.max_response_length=16",
        "data.seed=1",
        f"actor_rollout_ref.model.path={task.model_dir}",
        "actor_rollout_ref.model.enable_gradient_checkpointing=False",
        f"actor_rollout_ref.actor.optim.lr={lr}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={batch_size * n}",
        "actor_rollout_ref.actor.use_kl_loss=False",
        "actor_rollout_ref.actor.entropy_coeff=0",
        f"actor_rollout_ref.rollout.n={n}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={batch_size * n}",
        f"reward.custom_reward_function.path={task.reward_path}",
        f"reward.custom_reward_function.name={task.reward_name}",
        "trainer.logger=[console,file]",
        "trainer.project_name=asympo-cpu",
        f"trainer.experiment_name={run_dir.name}",
        f"trainer.total_epochs={epochs}",
        f"trainer.total_training_steps={steps}",
        f"trainer.test_freq={test_freq}",
        f"trainer.save_freq={save_freq}",
        f"trainer.default_local_dir={run_dir / 'checkpoints'}",
        f"trainer.resume_mode={'auto' if resume else 'disable'}",
        "trainer.val_before_train=True",
    ]
    if pipeline == "one-step-off":
        args.append("actor_rollout_ref.hybrid_engine=False")
    if rollout is not None:
        args.append(f"actor_rollout_ref.rollout.name={rollout}")
    return args + list(extra)


@dataclass
class RunResult:
    returncode: int
    wall_s: float
    metrics: dict[int, dict] = field(default_factory=dict)  # step -> verl metrics of that step
    arrival_s: dict[int, float] = field(default_factory=dict)  # step -> seconds after launch it was logged
    log_path: Path | None = None

    def series(self, key: str) -> list[tuple[int, float]]:
        return [(s, m[key]) for s, m in sorted(self.metrics.items()) if key in m]


def read_metrics(path: Path) -> dict[int, dict]:
    """verl's JSONL file logger: one ``{"step": s, "data": {...}}`` per line; merged per step."""
    return harness.read_records(path)


def run_training(
    argv: list[str], run_dir: Path, *, on_step=None, verbose: bool = False, timeout_s: float = 900
) -> RunResult:
    """Run ``asympo-train`` in a subprocess (:func:`asympo_plugin.harness.run_job`: own process group,
    everything it started stopped at the end, metrics of resumed attempts merged into ``metrics.jsonl``);
    call ``on_step(step, metrics, seconds)`` as steps are logged."""
    job = harness.run_job(
        "asympo_plugin.verl.launcher",
        argv,
        run_dir,
        timeout_s=timeout_s,
        on_step=on_step,
        step_done=lambda step, values: step == 0 or STEP_TIME in values,
        verbose=verbose,
        program="asympo-train",
    )
    if job.returncode == "timeout":
        raise TimeoutError(f"training did not finish in {timeout_s:.0f}s; see {job.log_path}")
    return RunResult(
        returncode=job.returncode,
        wall_s=job.wall_s,
        metrics=job.metrics,
        arrival_s=job.arrival_s,
        log_path=job.log_path,
    )


def _val_reward_key(metrics: dict) -> str | None:
    """verl's headline validation metric (``val-core/<data_source>/<acc or reward>/mean@1``)."""
    keys = sorted(k for k in metrics if k.startswith("val-core/") and k.endswith("/mean@1"))
    return keys[0] if keys else None


def summarize(result: RunResult) -> dict:
    """Reward at start and end, start-up time and s/step, from the logged metrics and their arrival times."""
    train = [v for _, v in result.series(REWARD)]
    steps = sorted(s for s in result.arrival_s if s > 0)
    step_times = [result.metrics[s][STEP_TIME] for s in steps if STEP_TIME in result.metrics[s]]
    first = steps[0] if steps else None
    summary = {
        "steps": len(steps),
        "wall_s": round(result.wall_s, 1),
        # Until the first training step began (Ray, workers, model loading, first validation).
        "startup_s": round(result.arrival_s[first] - result.metrics[first][STEP_TIME], 1) if first else None,
        "s_per_step": round(statistics.median(step_times[1:] or step_times), 2) if step_times else None,
        "s_per_step_wall": round((result.arrival_s[steps[-1]] - result.arrival_s[first]) / (len(steps) - 1), 2)
        if len(steps) > 1
        else None,
        "train_reward_start": round(statistics.mean(train[:5]), 3) if train else None,
        "train_reward_end": round(statistics.mean(train[-5:]), 3) if train else None,
    }
    val_key = _val_reward_key(result.metrics.get(0, {}))
    if val_key:
        val = result.series(val_key)
        summary["val_reward_start"], summary["val_reward_end"] = round(val[0][1], 3), round(val[-1][1], 3)
    staleness = [v for s, v in result.series(STALENESS) if s > min(steps, default=0)]
    if staleness:
        summary["staleness_mean_after_first_step"] = round(statistics.mean(staleness), 3)
    return summary


def plot(result: RunResult, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = result.series(REWARD)
    ax.plot([s for s, _ in train], [v for _, v in train], label="train reward (sampled)")
    val_key = _val_reward_key(result.metrics.get(0, {}))
    if val_key:
        val = result.series(val_key)
        ax.plot([s for s, _ in val], [v for _, v in val], "o-", label="validation reward (greedy)")
    ax.set_xlabel("training step")
    ax.set_ylabel("reward")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _progress(total: int):
    def on_step(step, m, seconds):
        if step == 0:
            print(f"[{seconds:6.1f}s] validation before training: {_fmt(m, _val_reward_key(m))}", flush=True)
            return
        parts = [
            f"reward {_fmt(m, REWARD)}",
            f"grad_norm {_fmt(m, 'actor/grad_norm')}",
            f"nll-/nll+ {_fmt(m, 'actor/scale/nll_ratio', '.2f')}",
            f"staleness {_fmt(m, STALENESS, '.0f')}",
            f"{_fmt(m, STEP_TIME, '.2f')} s",
        ]
        print(f"[{seconds:6.1f}s] step {step:3d}/{total}: " + ", ".join(parts), flush=True)

    return on_step


def _fmt(metrics: dict, key: str | None, spec: str = ".3f") -> str:
    value = metrics.get(key) if key else None
    return "n/a" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asympo-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--loss", default="asympo", help="algorithm.loss (asympo, spo, vanilla, gpg, ...)")
    parser.add_argument("--lr", type=float, default=DEMO_LR, help=f"actor learning rate (default {DEMO_LR:g})")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="run directory")
    parser.add_argument("--cache-dir", help="task/model cache (default $ASYMPO_CACHE_DIR or ~/.cache/asympo-plugin)")
    parser.add_argument(
        "--rollout", choices=("vllm", "hf"), help="actor_rollout_ref.rollout.name (default: the CPU default)"
    )
    parser.add_argument("--verbose", action="store_true", help="stream verl's full output")
    parser.add_argument("overrides", nargs="*", help="extra asympo-train overrides")
    args = parser.parse_args(argv)
    error = _check_args(args)
    if error:
        print(f"asympo-demo: error: {error}", file=sys.stderr)
        return 2
    # Stopping the demo (Ctrl-C, SIGTERM) also stops everything the training job started (harness.run_job).
    with harness.stop_on_signals():
        return _run(args)


def _check_args(args) -> str | None:
    """Bad demo arguments, refused before anything is prepared or started; None when fine."""
    if not args.lr > 0 or args.lr == float("inf"):
        return f"--lr {args.lr}: the learning rate must be a positive finite number (e.g. --lr {DEMO_LR:g})"
    if args.steps < 1:
        return f"--steps {args.steps}: the demo needs at least 1 training step (e.g. --steps 50)"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} is a file; give a directory for the run (e.g. --out outputs/demo)"
    from .verl.losses import assert_registered, registered_losses

    assert_registered()
    if args.loss not in registered_losses():
        return f"--loss {args.loss}: unknown loss; registered losses: {', '.join(registered_losses())}"
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        return f"{bad[0]!r} is not an override of the form key=value"
    return None


def _run(args) -> int:
    t0 = time.monotonic()
    task = prepare(args.cache_dir)
    prep_s = time.monotonic() - t0
    run_dir = args.out.resolve()
    overrides = train_overrides(
        task, run_dir, loss=args.loss, steps=args.steps, lr=args.lr, rollout=args.rollout, extra=tuple(args.overrides)
    )
    print(
        f"asympo demo: task ready in {prep_s:.1f}s ({task.root}); training {args.steps} steps of "
        f"algorithm.loss={args.loss} with verl's one-step-off trainer on CPU. verl's log: {run_dir / 'train.log'}"
    )
    result = run_training(overrides, run_dir, on_step=_progress(args.steps), verbose=args.verbose)
    if result.returncode != 0:
        errors = [line for line in result.log_path.read_text().splitlines() if line.startswith("asympo-train: error")]
        for line in errors:
            print(line.replace("asympo-train", "asympo-demo", 1), file=sys.stderr)
        print(f"asympo demo: training FAILED (exit {result.returncode}); see {result.log_path}", file=sys.stderr)
        return result.returncode or 1
    summary = {"task_prep_s": round(prep_s, 1), **summarize(result)}
    plot(result, run_dir / "reward.png", f"{args.loss}, one-step-off, CPU")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\nasympo demo summary")
    for key, value in summary.items():
        print(f"  {key:34s} {value}")
    print(f"  metrics (JSONL)                    {run_dir / 'metrics.jsonl'}")
    print(f"  reward curve                       {run_dir / 'reward.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
