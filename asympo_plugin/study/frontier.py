"""The stability frontier (issue 13, part 2): learning rate x staleness x seeds, for four losses.

    asympo-compare frontier [--workers 2] [--out docs/study/frontier] [--report-only]

Every point of the grid is one study cell (``matrix.Cell``: method, staleness, seed) at one learning
rate, run by the in-process engine (``engine.py``) with everything else the study's ``full`` preset
holds. The grid and what "breaks" means were fixed before any run (docs/STUDY_METHOD.md):

* methods :data:`METHODS`, learning rates :data:`LRS` (the demo's 2e-4 to 10x, log-spaced), staleness
  :data:`STALENESS`, seeds :data:`SEEDS`, :data:`STEPS` steps each;
* a run *collapsed* by ``analysis.detect_collapse``; it *learned* when its trailing mean reached
  ``analysis.REWARD_THRESHOLD``;
* a point is **broken** when a majority of its seeds collapsed or never learned.

Runs go seed-major (every point's seed 1 before any seed 2), so an interrupted sweep still covers the
whole grid; each finished run is a small directory under ``--out`` (commit it: the sweep resumes from
what is there, on any machine).
"""

from __future__ import annotations

import math
import multiprocessing
import time
from dataclasses import replace
from pathlib import Path

from .analysis import REWARD_THRESHOLD, Run, summarize
from .matrix import FULL, METHODS as ALL_METHODS, Cell, Preset

METHODS = ("asympo", "spo", "naive", "ppo_bypass")
LRS = (2e-4, 6.32e-4, 2e-3)
STALENESS = (1, 4, 8)
SEEDS = (1, 2, 3)
STEPS = 100
DEFAULT_ROOT = Path("docs/study/frontier")


def preset(lr: float) -> Preset:
    return replace(
        FULL,
        name=f"frontier-lr{lr:g}",
        steps=STEPS,
        seeds=SEEDS,
        staleness=STALENESS,
        methods=METHODS,
        lr=lr,
        why=f"stability frontier point set at lr {lr:g}",
    )


def lr_root(root: Path, lr: float) -> Path:
    return root / f"lr{lr:g}"


def points() -> list[tuple[float, Cell]]:
    """Every (lr, cell) of the grid, seed-major."""
    return [(lr, Cell(ALL_METHODS[m], s, seed)) for seed in SEEDS for lr in LRS for s in STALENESS for m in METHODS]


def _finished(root: Path, lr: float, cell: Cell, task) -> bool:
    from .engine import ENGINE
    from .runner import cell_argv, is_finished

    run_dir = cell.run_dir(lr_root(root, lr))
    return is_finished(run_dir, cell_argv(cell, preset(lr), task, run_dir), STEPS, task=task, engine=ENGINE)


def _work(job) -> tuple[str, bool, float, str]:
    root, lr, method, staleness, seed = job
    import torch

    from ..task import prepare
    from . import engine

    torch.set_num_threads(1)  # one core per worker
    cell = Cell(ALL_METHODS[method], staleness, seed)
    ok, wall, message = engine.run_cell(cell, preset(lr), prepare(log=lambda *a: None), lr_root(Path(root), lr))
    return f"lr{lr:g}/{cell.key}", ok, wall, message


def sweep(root: Path, task, *, workers: int = 2, log=print) -> list[str]:
    """Run every unfinished point (``workers`` processes, one thread each); return the failures."""
    todo = [(lr, c) for lr, c in points() if not _finished(root, lr, c, task)]
    log(f"asympo-compare frontier: {len(points())} runs, {len(points()) - len(todo)} finished, {len(todo)} to run")
    jobs = [(str(root), lr, c.method.name, c.staleness, c.seed) for lr, c in todo]
    failures, start = [], time.monotonic()
    with multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=8) as pool:
        for i, (key, ok, wall, message) in enumerate(pool.imap(_work, jobs), 1):
            eta = (time.monotonic() - start) / i * (len(jobs) - i)
            if not ok:
                failures.append(f"{key}: {message}")
            log(f"[{i:3d}/{len(jobs)}] {key:42s} {wall:5.0f}s {'ok' if ok else message} | ETA {eta / 60:.0f} min")
    return failures


def load(root: Path) -> list[tuple[float, Run, dict]]:
    """Every finished run as ``(lr, run, summary)``."""
    from .runner import MARKER, load_cell

    out = []
    for lr, cell in points():
        if (cell.run_dir(lr_root(root, lr)) / MARKER).exists():
            run = load_cell(cell, lr_root(root, lr))
            out.append((lr, run, summarize(run)))
    return out


def learned(summary: dict) -> bool:
    return summary["steps_to_threshold"] is not None


def grid(loaded) -> dict:
    """``{(method, staleness, lr): [summary, ...]}`` over seeds."""
    out: dict = {}
    for lr, run, summary in loaded:
        out.setdefault((run.method, run.staleness, lr), []).append(summary)
    return out


def broken(summaries: list[dict]) -> bool:
    bad = sum(s["collapsed"] or not learned(s) for s in summaries)
    return bad * 2 > len(summaries)


def table(cells: dict) -> str:
    """One markdown table per method: rows staleness, columns lr."""
    from .report import _fmt

    parts = []
    for method in METHODS:
        rows = [["staleness", *(f"lr {lr:g}" for lr in LRS)]]
        for s in STALENESS:
            row = [str(s)]
            for lr in LRS:
                members = cells.get((method, s, lr), [])
                if not members:
                    row.append("not run")
                    continue
                collapsed = sum(m["collapsed"] for m in members)
                never = sum(not learned(m) for m in members)
                row.append(
                    f"{'**broken** ' if broken(members) else ''}collapsed {collapsed}/{len(members)}, "
                    f"never learned {never}/{len(members)}; final {_fmt([m['final_reward'] for m in members], '.2f')}; "
                    f"greedy val {_fmt([m['final_val_reward'] for m in members], '.2f')}"
                )
            rows.append(row)
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        lines.insert(1, "|" + "---|" * len(rows[0]))
        parts.append(f"**{ALL_METHODS[method].label}**\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


def plot(cells: dict, path: Path) -> None:
    """Per method: collapse fraction and mean final reward over the grid; last panel: where each breaks."""
    from .report import _colors, _plt

    plt = _plt()
    fig, axes = plt.subplots(2, len(METHODS) + 1, figsize=(4 * (len(METHODS) + 1), 7), squeeze=False)
    for col, method in enumerate(METHODS):
        for row, (what, fn) in enumerate(
            (
                ("collapse fraction", lambda ms: sum(m["collapsed"] for m in ms) / len(ms)),
                ("final reward (mean over seeds)", lambda ms: sum(m["final_reward"] for m in ms) / len(ms)),
            )
        ):
            ax = axes[row][col]
            values = [
                [fn(cells[(method, s, lr)]) if (method, s, lr) in cells else math.nan for lr in LRS] for s in STALENESS
            ]
            image = ax.imshow(values, vmin=0, vmax=1, cmap="RdYlGn_r" if row == 0 else "RdYlGn", origin="lower")
            for i, s in enumerate(STALENESS):
                for j, lr in enumerate(LRS):
                    v = values[i][j]
                    n = len(cells.get((method, s, lr), []))
                    ax.text(j, i, "–" if math.isnan(v) else f"{v:.2f}\n(n={n})", ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(LRS)), [f"{lr:g}" for lr in LRS])
            ax.set_yticks(range(len(STALENESS)), [str(s) for s in STALENESS])
            ax.set_xlabel("learning rate")
            ax.set_ylabel("staleness")
            ax.set_title(f"{ALL_METHODS[method].label}\n{what}", fontsize=9)
            fig.colorbar(image, ax=ax, fraction=0.046)
    colors = _colors(list(METHODS))
    for row in range(2):
        ax = axes[row][-1]
        if row == 1:
            ax.axis("off")
            continue
        for k, method in enumerate(METHODS):
            # the smallest grid lr at which the point is broken, per staleness (above the grid: never)
            ys = []
            for s in STALENESS:
                br = [j for j, lr in enumerate(LRS) if (method, s, lr) in cells and broken(cells[(method, s, lr)])]
                complete = all((method, s, lr) in cells for lr in LRS)
                ys.append(br[0] if br else (len(LRS) if complete else math.nan))  # nan: not all run yet
            offset = (k - (len(METHODS) - 1) / 2) * 0.06
            ax.plot(
                [s + offset for s in range(len(STALENESS))],
                [y + offset for y in ys],
                "o-",
                color=colors[method],
                label=ALL_METHODS[method].label,
            )
        ax.set_xticks(range(len(STALENESS)), [str(s) for s in STALENESS])
        ax.set_yticks(range(len(LRS) + 1), [f"{lr:g}" for lr in LRS] + ["never"])
        ax.set_xlabel("staleness")
        ax.set_ylabel("smallest lr that breaks it")
        ax.set_title("where each method breaks\n(majority of seeds collapsed or never learned)", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"Stability frontier (in-process engine, {STEPS} steps; threshold {REWARD_THRESHOLD})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def collapses(loaded, root: Path) -> str:
    """Every collapsed run's mechanism sentence (``analysis.mechanism``); one diagnostics plot per method."""
    from collections import Counter

    from .analysis import mechanism
    from .report import plot_mechanism

    lines, plotted, changed = [], set(), Counter()
    for lr, run, s in loaded:
        if not s["collapsed"] or s["collapse_step"] is None:
            continue
        found = mechanism(run, s["collapse_step"])
        for row in found["rows"]:
            if row["changed"]:
                direction = "up" if row["change"] is not None and row["change"] > 0 else "down"
                changed[(run.method, f"{row['label']} {direction}")] += 1
        lines.append(
            f"- lr {lr:g}, {run.name}: collapsed at step {s['collapse_step']} ({s['collapse_reason']}). "
            + found["text"]
        )
        if run.method not in plotted:
            plotted.add(run.method)
            plot_mechanism(run, s["collapse_step"], root / f"mechanism_{run.method}.png", f"lr {lr:g}, {run.name}")
    if not lines:
        return "No run collapsed."
    counts = {}
    for (method, what), k in sorted(changed.items(), key=lambda kv: -kv[1]):
        counts.setdefault(method, []).append(f"{what} ({k})")
    summary = [f"- {ALL_METHODS[m].label}: " + ", ".join(v) for m, v in counts.items()]
    return (
        "Diagnostics that changed at the collapse, counted over collapsed runs:\n\n"
        + "\n".join(summary)
        + "\n\nEvery collapsed run:\n\n"
        + "\n".join(lines)
    )


def report(root: Path) -> str:
    loaded = load(root)
    cells = grid(loaded)
    wall = sum(run.wall_s or 0 for _, run, _ in loaded)
    text = (
        f"{len(loaded)} of {len(points())} runs finished; {wall / 3600:.2f} h of wall time summed over runs "
        f"(one core each).\n\n{table(cells)}\n\n## Collapses\n\n{collapses(loaded, root)}"
    )
    if cells:
        plot(cells, root / "frontier.png")
    (root / "frontier.md").write_text(text + "\n")
    return text
