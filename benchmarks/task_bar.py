"""The task's bar (issue 9): sync GRPO's 3-seed curves on the built-in task, as a table and a plot.

    asympo-compare run --methods grpo_sync --staleness 0 --seeds 1,2,3 --steps 40 --out runs/bar
    python benchmarks/task_bar.py runs/bar/staleness0/grpo_sync docs/task_grpo_sync.png

Prints per seed: sampled train reward (5-step means) at the start and end, the first step whose 5-step
mean reaches 0.8, and greedy validation reward (128 unseen strings) at each validation step.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from asympo_plugin import harness
from asympo_plugin.core.metrics import REWARD

BAR = 0.8


def curves(method_dir: Path) -> dict[str, dict[int, dict]]:
    return {d.name: harness.read_records(d / harness.METRICS) for d in sorted(method_dir.glob("seed*"))}


def main(method_dir: str, png: str | None = None) -> None:
    runs = curves(Path(method_dir))
    print(
        "| seed | steps | train reward, step 1 | steps 1-5 | last 5 | first step with 5-step mean >= 0.8 | greedy val (step: reward) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for seed, metrics in runs.items():
        steps = sorted(s for s, m in metrics.items() if REWARD in m)
        r = [metrics[s][REWARD] for s in steps]
        if not r:
            continue
        means = [statistics.mean(r[max(0, i - 4) : i + 1]) for i in range(len(r))]
        hit = next((steps[i] for i, m in enumerate(means) if i >= 4 and m >= BAR), None)
        val = [
            (s, m[k])
            for s, m in sorted(metrics.items())
            for k in m
            if k.startswith("val-core/") and k.endswith("mean@1")
        ]
        print(
            f"| {seed} | {len(steps)} | {r[0]:.3f} | {statistics.mean(r[:5]):.3f} | {statistics.mean(r[-5:]):.3f} | {hit} | "
            + ", ".join(f"{s}: {v:.2f}" for s, v in val)
            + " |"
        )
    if png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.8))
        for i, (seed, metrics) in enumerate(runs.items()):
            steps = sorted(s for s, m in metrics.items() if REWARD in m)
            ax.plot(
                steps, [metrics[s][REWARD] for s in steps], color=f"C{i}", alpha=0.8, label=f"{seed} train (sampled)"
            )
            val = [
                (s, m[k])
                for s, m in sorted(metrics.items())
                for k in m
                if k.startswith("val-core/") and k.endswith("mean@1")
            ]
            if val:
                ax.plot(*zip(*val), "o--", color=f"C{i}", label=f"{seed} val (greedy)")
        ax.axhline(BAR, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("training step")
        ax.set_ylabel("reward")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title("verl sync GRPO (PPO-clip, on-policy) on the built-in letters task")
        ax.legend(fontsize=7, loc="lower right", ncol=2)
        fig.tight_layout()
        fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main(*sys.argv[1:])
