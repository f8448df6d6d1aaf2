"""Does the in-process engine reproduce real verl cells? The check fixed in docs/STUDY_METHOD.md.

    python -m asympo_plugin.study.validation REAL_ROOT ENGINE_ROOT OUT_DIR

Both roots hold sweeps of the same cells (``asympo-compare run`` and ``asympo-compare run --engine
in-process`` with the same arguments). For each cell and each quantity of :data:`QUANTITIES`, the engine
reproduces the real cell when ``|mean_e - mean_r| <= 2 * sqrt(sd_e^2 / n_e + sd_r^2 / n_r)`` over seeds,
and the collapse counts differ by at most one. Writes ``validation.md`` and ``validation.png``.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

from .analysis import REWARD, Run, load_run, summarize


def _mean_reward(run: Run, summary: dict) -> float:
    train = set(run.train_steps())
    return statistics.mean(v for s, v in run.series(REWARD) if s in train)


QUANTITIES = {
    "final sampler reward": lambda run, s: s["final_reward"],
    "mean sampler reward, all steps": _mean_reward,
    "final greedy validation": lambda run, s: s["final_val_reward"],
}


def cells(root: Path) -> dict[str, list[Run]]:
    """``{"staleness{k}/{method}": [runs over seeds]}`` of a sweep directory (finished runs only)."""
    out: dict[str, list[Run]] = {}
    for marker in sorted(root.glob("**/staleness*/*/seed*/DONE.json")):
        seed_dir = marker.parent
        key = f"{seed_dir.parent.parent.name}/{seed_dir.parent.name}"
        run = load_run(seed_dir / "metrics.jsonl", name=f"{key}/{seed_dir.name}")
        out.setdefault(key, []).append(run)
    return out


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else math.nan


def compare(real: list[Run], engine: list[Run]) -> dict:
    """Per quantity: both means and sds, the difference, its 2-SE bound, and whether it holds."""
    rs, es = [summarize(r) for r in real], [summarize(e) for e in engine]
    out = {"n": (len(real), len(engine))}
    for name, fn in QUANTITIES.items():
        a = [fn(r, s) for r, s in zip(real, rs)]
        b = [fn(e, s) for e, s in zip(engine, es)]
        bound = 2 * math.sqrt(_sd(a) ** 2 / len(a) + _sd(b) ** 2 / len(b))
        diff = statistics.mean(b) - statistics.mean(a)
        out[name] = {"real": a, "engine": b, "diff": diff, "bound": bound, "holds": abs(diff) <= bound}
    collapsed = (sum(s["collapsed"] for s in rs), sum(s["collapsed"] for s in es))
    out["collapsed"] = {"real": collapsed[0], "engine": collapsed[1], "holds": abs(collapsed[0] - collapsed[1]) <= 1}
    out["reproduced"] = all(out[k]["holds"] for k in (*QUANTITIES, "collapsed"))
    return out


def _fmt(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} (sd {_sd(values):.3f})"


def table(results: dict[str, dict]) -> str:
    rows = [
        "| cell | quantity | real: mean (sd) | engine: mean (sd) | engine - real | 2-SE bound | holds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in results.items():
        n_real, n_engine = r["n"]
        for name in QUANTITIES:
            q = r[name]
            rows.append(
                f"| {key} ({n_real} / {n_engine} seeds) | {name} | {_fmt(q['real'])} | {_fmt(q['engine'])} | "
                f"{q['diff']:+.3f} | {q['bound']:.3f} | {'yes' if q['holds'] else '**no**'} |"
            )
        c = r["collapsed"]
        rows.append(
            f"| {key} | collapsed seeds | {c['real']} | {c['engine']} | {c['engine'] - c['real']:+d} | 1 | "
            f"{'yes' if c['holds'] else '**no**'} |"
        )
    return "\n".join(rows)


def plot(real: dict, engine: dict, path: Path) -> None:
    from .report import _plt

    plt = _plt()
    keys = [k for k in real if k in engine]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for runs, color, label in ((real[key], "C0", "verl (real pipeline)"), (engine[key], "C3", "in-process engine")):
            for i, run in enumerate(runs):
                train = set(run.train_steps())
                series = [(s, v) for s, v in run.series(REWARD) if s in train]
                ax.plot(
                    [s for s, _ in series],
                    [v for _, v in series],
                    color=color,
                    alpha=0.6,
                    lw=1,
                    label=label if i == 0 else None,
                )
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.set_ylabel("sampler reward")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    real_root, engine_root, out = (Path(a) for a in (argv or sys.argv[1:]))
    real, engine = cells(real_root), cells(engine_root)
    results = {k: compare(real[k], engine[k]) for k in real if k in engine}
    out.mkdir(parents=True, exist_ok=True)
    verdict = "\n".join(
        f"- {k}: {'reproduced' if r['reproduced'] else '**not reproduced**'}" for k, r in results.items()
    )
    (out / "validation.md").write_text(f"{verdict}\n\n{table(results)}\n")
    plot(real, engine, out / "validation.png")
    print(verdict)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
