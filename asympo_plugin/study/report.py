"""Tables (markdown) and plots (PNG) of a set of runs, grouped by staleness level and method.

Used by both ``asympo-compare run`` (the study's own matrix) and ``asympo-compare compare`` (a user's
verl logs). Each table row aggregates one method's seeds at one staleness level: the mean over seeds
with its 95% percentile-bootstrap interval (``analysis.bootstrap_ci``; shown with 2 or more seeds).
Every collapsed run gets a mechanism table and plot (``analysis.mechanism``). The definitions are
fixed in docs/STUDY_METHOD.md.
"""

from __future__ import annotations

import json
import math
import statistics
from datetime import datetime
from pathlib import Path

from .analysis import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    COLLAPSE_FRACTION,
    MECHANISM_KEYS,
    COLLAPSE_MIN_PEAK,
    REWARD,
    REWARD_THRESHOLD,
    SCALE_KEYS,
    WINDOW,
    Run,
    bootstrap_ci,
    mechanism,
    summarize,
    trailing_mean,
)

UNKNOWN = "unknown"
REFERENCE_METHOD = "grpo_sync"  # the study's on-policy reference, repeated in every staleness table


def level_of(run: Run, summary: dict) -> int | str:
    """The staleness level a run belongs to: asked for (study runs), else measured or structural (user runs).

    A fully-async run belongs to its bound (``staleness_threshold + 1``): verl logs how many trajectories
    were stale, not by how much, so the table's staleness column shows that fraction next to the bound.
    """
    if run.staleness is not None:
        return run.staleness
    if summary["staleness"].get("pipeline") == "fully-async":
        bound = summary["staleness"].get("bound")
        return UNKNOWN if bound is None else int(round(bound))
    steady = summary["staleness"]["steady"]
    return UNKNOWN if steady is None else int(round(steady))


def group(runs: list[Run]) -> dict:
    """``{level: {method: [(run, summary), ...]}}``, levels sorted, methods in first-seen order."""
    groups: dict = {}
    for run in runs:
        summary = summarize(run)
        groups.setdefault(level_of(run, summary), {}).setdefault(run.method or run.name, []).append((run, summary))
    return dict(sorted(groups.items(), key=lambda kv: (isinstance(kv[0], str), kv[0])))


# ---- numbers -> text --------------------------------------------------------------------------------------


def _stats(values: list) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _fmt(values: list, spec: str = ".3f") -> str:
    """Mean over seeds and its 95% bootstrap interval ``[low, high]`` (2 or more seeds)."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    mean, low, high = bootstrap_ci(values)
    if mean is None:
        return "–"
    return format(mean, spec) + (f" [{format(low, spec)}, {format(high, spec)}]" if low is not None else "")


def _fmt_threshold(values: list) -> str:
    reached = [v for v in values if v is not None]
    if not reached:
        return f"never (0/{len(values)})"
    return f"{_fmt(reached, '.0f')} ({len(reached)}/{len(values)})"


def _fmt_bytes(summaries: list[dict]) -> str:
    values = {s["behavior_bytes_per_token"] for s in summaries}
    sources = {s["behavior_bytes_source"] for s in summaries}
    if None in values:
        return "? (no config, no evidence)"
    text = "/".join(str(v) for v in sorted(values))
    return text if sources == {"config"} else f"{text} (from {'/'.join(sorted(sources))})"


def _staleness_source(staleness: list[dict]) -> str:
    """Where the staleness came from, when it is not the plugin's per-trajectory metric."""
    keys = sorted({str(s["key"]) for s in staleness} - {"asympo/staleness/mean"})
    return f" ({'; '.join(keys)})" if keys else ""


COLUMNS = (
    "method",
    "seeds",
    "staleness measured (steady / max)",
    f"final reward (last {WINDOW})",
    f"best reward ({WINDOW}-step mean)",
    "max drawdown",
    f"steps to reward {REWARD_THRESHOLD:g}",
    "collapsed",
    "s/step",
    "learner s/step (update_actor)",
    "old-log-prob s/step",
    "behavior log-prob bytes/token",
    "final val reward (greedy, current policy)",
    "best val reward (greedy)",
)


def table_row(label: str, members: list[tuple[Run, dict]], note: str = "") -> list[str]:
    summaries = [s for _, s in members]
    staleness = [s["staleness"] for s in summaries]
    collapsed = sum(bool(s["collapsed"]) for s in summaries)
    collapse_steps = [s["collapse_step"] for s in summaries if s["collapsed"]]
    collapse_text = f"{'yes' if collapsed else 'no'} ({collapsed}/{len(summaries)})"
    if collapse_steps:
        collapse_text += f", from step {min(collapse_steps)}"
    return [
        label + note,
        str(len(summaries)),
        f"{_fmt([s['steady'] for s in staleness], '.2f')} / {_fmt([s['max'] for s in staleness], '.0f')}"
        + _staleness_source(staleness),
        _fmt([s["final_reward"] for s in summaries]),
        _fmt([s["best_reward"] for s in summaries]),
        _fmt([s["max_drawdown"] for s in summaries]),
        _fmt_threshold([s["steps_to_threshold"] for s in summaries]),
        collapse_text,
        _fmt([s["s_per_step"] for s in summaries], ".2f"),
        _fmt([s["learner_s_per_step"] for s in summaries], ".3f"),
        _fmt([s["old_log_prob_s_per_step"] for s in summaries], ".3f"),
        _fmt_bytes(summaries),
        _fmt([s["final_val_reward"] for s in summaries]),
        _fmt([s["best_val_reward"] for s in summaries]),
    ]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def overview_table(groups: dict, labels: dict[str, str] | None = None) -> str:
    """One row per method, one column per staleness level: final reward (mean ± spread) and collapses."""
    labels = labels or {}
    levels = list(groups)
    methods = list(dict.fromkeys(m for level in levels for m in groups[level]))
    order = list(labels)  # the study's method order when labels come from it; else first seen
    methods.sort(key=lambda m: order.index(m) if m in order else len(order))
    lines = [
        "| method | " + " | ".join(f"staleness {level}" for level in levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    for method in methods:
        cells = []
        for level in levels:
            members = groups[level].get(method)
            if not members:
                cells.append("–")
                continue
            summaries = [s for _, s in members]
            collapsed = sum(bool(s["collapsed"]) for s in summaries)
            final = _fmt([s["final_reward"] for s in summaries])
            cells.append(f"{final}, " + (f"**collapsed {collapsed}/{len(summaries)}**" if collapsed else "stable"))
        lines.append(f"| {labels.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tables(groups: dict, labels: dict[str, str] | None = None) -> dict:
    """``{level: markdown}``; the study's sync GRPO reference appears in every level's table."""
    labels = labels or {}
    reference = groups.get(0, {}).get(REFERENCE_METHOD)
    out = {}
    for level, methods in groups.items():
        rows = [table_row(labels.get(m, m), members) for m, members in methods.items()]
        if reference and level != 0:
            rows.append(
                table_row(labels.get(REFERENCE_METHOD, REFERENCE_METHOD), reference, " *(staleness 0, reference)*")
            )
        out[level] = markdown_table(rows)
    return out


CRITERIA = (
    f"Collapse (fixed before any result was seen): a loss/grad metric was ever non-finite, or the reward's "
    f"{WINDOW}-step trailing mean ends the run below {COLLAPSE_FRACTION:g} x its running peak (peak >= "
    f"{COLLAPSE_MIN_PEAK:g}). Rewards are verl's `{REWARD}` (sampled training responses); 'final' and 'best' "
    f"are {WINDOW}-step trailing means. Times are medians over the steps after the first (verl's `timing_s/*`); "
    f"learner = `timing_s/update_actor`; old-log-prob = `timing_s/old_log_prob` (0 when the stage did not run). "
    f"Bytes/token: 4 (one fp32 log-prob per response token) when the rollout shipped log-probs "
    f"(`actor_rollout_ref.rollout.calculate_log_probs`), else 0. Max drawdown: the largest drop of the "
    f"{WINDOW}-step trailing mean below its running peak. Val reward: verl's `val-core/.../mean@1` "
    f"(current weights, greedy), next to the sampler's reward. Cells: mean over seeds [95% percentile "
    f"bootstrap interval, {BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}]. "
    f"Definitions: docs/STUDY_METHOD.md."
)


# ---- plots ------------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean_curve(members: list[tuple[Run, dict]], key: str, smooth: int = 1):
    """Steps, mean, min and max over the members' ``key`` series (steps common to all members)."""
    per_run = []
    for run, _ in members:
        train = set(run.train_steps())
        series = [(s, v) for s, v in run.series(key) if s in train and math.isfinite(v)]
        if series:
            values = trailing_mean([v for _, v in series], smooth) if smooth > 1 else [v for _, v in series]
            per_run.append(dict(zip([s for s, _ in series], values)))
    if not per_run:
        return [], [], [], []
    steps = sorted(set.intersection(*(set(d) for d in per_run)))
    rows = [[d[s] for d in per_run] for s in steps]
    return steps, [statistics.mean(r) for r in rows], [min(r) for r in rows], [max(r) for r in rows]


def _colors(methods: list[str]) -> dict[str, str]:
    palette = [f"C{i}" for i in range(10)]
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def plot_rewards(groups: dict, path: Path, labels: dict[str, str] | None = None, title: str = "") -> None:
    """One panel per staleness level: each method's reward (5-step trailing mean; mean over seeds, min-max band)."""
    plt = _plt()
    labels = labels or {}
    levels = list(groups)
    colors = _colors(list(dict.fromkeys(m for methods in groups.values() for m in methods)))
    fig, axes = plt.subplots(1, len(levels), figsize=(max(7.0, 4.6 * len(levels)), 3.8), squeeze=False, sharey=True)
    for ax, level in zip(axes[0], levels):
        for method, members in groups[level].items():
            steps, mean, low, high = _mean_curve(members, REWARD, WINDOW)
            if not steps:
                continue
            ax.plot(steps, mean, color=colors[method], label=f"{labels.get(method, method)} (n={len(members)})")
            if len(members) > 1:
                ax.fill_between(steps, low, high, color=colors[method], alpha=0.15)
        ax.set_title(f"staleness {level}")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"train reward ({WINDOW}-step mean)")
    handles = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab.split(" (n=")[0], h)
    ncol = min(4 if len(levels) > 1 else 2, len(handles))
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=max(1, ncol), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.12 if len(levels) > 1 else 0.22, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scale(groups: dict, level, path: Path, labels: dict[str, str] | None = None) -> None:
    """Scale-imbalance diagnostics over time at one staleness level.

    Left: mean current NLL of positive (solid) and negative (dashed) advantage responses. Right: the
    balance residual of the naive objective (dashed) and of the loss in use (solid).
    """
    plt = _plt()
    labels = labels or {}
    methods = groups[level]
    colors = _colors(list(dict.fromkeys(m for ms in groups.values() for m in ms)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9))
    pos, neg, naive, own = SCALE_KEYS
    for method, members in methods.items():
        c = colors[method]
        for ax, key, style in ((left, pos, "-"), (left, neg, "--"), (right, naive, "--"), (right, own, "-")):
            steps, mean, _, _ = _mean_curve(members, key, 3)
            if steps:
                ax.plot(steps, mean, style, color=c, label=labels.get(method, method) if style == "-" else None)
    left.set_title("current token NLL: A > 0 (solid), A < 0 (dashed)", fontsize=10)
    left.set_ylabel("mean token NLL")
    right.set_title("balance residual: naive (dashed), loss in use (solid)", fontsize=10)
    right.set_ylabel("|sum A s| / sum |A| s")
    for ax in (left, right):
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    handles, names = left.get_legend_handles_labels()
    if not handles:
        handles, names = right.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(4, max(1, len(names))), fontsize=8)
    fig.suptitle(f"scale-imbalance diagnostics, staleness {level} (3-step means over seeds)")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def mechanism_table(found: dict) -> str:
    """Markdown: one row per diagnostic, baseline-window mean, collapse-window mean, change, last value."""

    def num(v):
        return "not logged" if v is None else (f"{v:.4g}" if math.isfinite(v) else str(v))

    lines = [
        "| diagnostic | metric | baseline mean | collapse-window mean | change | last | changed? |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in found["rows"]:
        lines.append(
            f"| {r['label']} | `{r['key']}` | {num(r['baseline'])} | {num(r['collapse'])} | "
            f"{'–' if r['change'] is None else num(r['change'])} | {num(r['last'])} | "
            f"{'**yes**' if r['changed'] else 'no'} |"
        )
    return "\n".join(lines)


def plot_mechanism(run: Run, collapse_step: int, path: Path, label: str = "") -> None:
    """One run's diagnostics over time, the collapse step marked: reward, NLLs, residuals, s_i quantiles, floor, grad."""
    plt = _plt()
    panels = (
        ("sampler reward", [(REWARD, "-", "reward")]),
        ("token NLL", [(MECHANISM_KEYS[1][1], "-", "A > 0"), (MECHANISM_KEYS[2][1], "--", "A < 0")]),
        ("balance residual", [(MECHANISM_KEYS[3][1], "-", "loss"), (MECHANISM_KEYS[4][1], "--", "naive")]),
        ("s_i quantiles", [(k, "-", lab.split()[1]) for lab, k in MECHANISM_KEYS if lab.startswith("s_i")]),
        ("floored fraction", [(MECHANISM_KEYS[-2][1], "-", "floored")]),
        ("grad norm", [(MECHANISM_KEYS[-1][1], "-", "grad norm")]),
    )
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), squeeze=False)
    for ax, (title, curves) in zip(axes.flat, panels):
        drawn = False
        for key, style, name in curves:
            series = [(s, v) for s, v in run.series(key) if math.isfinite(v)]
            if series:
                ax.plot([s for s, _ in series], [v for _, v in series], style, label=name)
                drawn = True
        ax.axvline(collapse_step, color="red", alpha=0.5, lw=1)
        ax.set_title(title + ("" if drawn else " (not logged)"), fontsize=9)
        ax.grid(alpha=0.3)
        if drawn and len(curves) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(f"{label or run.name}: diagnostics around the collapse (red line: step {collapse_step})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def collapse_sections(groups: dict, out_dir: Path, labels: dict[str, str]) -> tuple[list[str], dict]:
    """Markdown parts and PNG paths explaining every collapsed run."""
    parts, files = [], {}
    for level, methods in groups.items():
        for method, members in methods.items():
            for run, summary in members:
                if not summary["collapsed"] or summary["collapse_step"] is None:
                    continue
                found = mechanism(run, summary["collapse_step"])
                slug = "".join(c if c.isalnum() else "_" for c in f"{run.name}_staleness{level}")
                path = out_dir / f"mechanism_{slug}.png"
                plot_mechanism(run, summary["collapse_step"], path, f"{labels.get(method, method)}, {run.name}")
                files[f"mechanism_{slug}"] = path
                parts += [
                    f"### {labels.get(method, method)}: {run.name} (staleness {level}), collapsed at step "
                    f"{summary['collapse_step']} ({summary['collapse_reason']})",
                    "",
                    found["text"],
                    "",
                    mechanism_table(found),
                    "",
                    f"![{path.stem}]({path.name})",
                    "",
                ]
    return parts, files


# ---- timing ratios -------------------------------------------------------------------------------------


SAME_WINDOW_H = 3.0  # runs that finished further apart are not read as one timing window


def finish_window_h(runs: list) -> float | None:
    """Hours between the first and the last of ``runs`` to finish; None when any run's finish time is unknown.

    This machine's step times drifted by about 40% within 6 hours at equal load (RESULTS.md, "timing
    twin"), so a learner ratio over runs from different windows measures the machine as much as the loss.
    """
    stamps = [run.finished_utc for run in runs]
    if not stamps or any(s is None for s in stamps):
        return None
    times = [datetime.fromisoformat(s) for s in stamps]
    return (max(times) - min(times)).total_seconds() / 3600


def _window_text(window_h: float | None) -> str:
    if window_h is None:
        return (
            "; finish times not recorded for every run: read it as a loss comparison only if all of them "
            "ran in one time window on one machine"
        )
    if window_h > SAME_WINDOW_H:
        return (
            f"; **the compared runs finished {window_h:.1f} h apart** (more than {SAME_WINDOW_H:g} h): machine "
            "speed drifts over hours, so rerun both in one window before reading this as a loss comparison"
        )
    return f"; the compared runs finished within {window_h:.1f} h of each other"


def timing_ratios(groups: dict) -> dict:
    """The two ratios the study promises; each carries ``window_h`` (``finish_window_h`` of its runs), since
    a ratio is a loss comparison only over runs of one machine and one time window.

    * learner: ASymPO's learner time per step (update_actor + old_log_prob) over PPO-clip with
      recomputed old log-probs, at the lowest async staleness level both ran (goal <= 0.78);
    * pipeline: ASymPO's one-step-off steps/s over its synchronous steps/s (goal >= 1.25).
    """
    out: dict = {}

    def mean_of(level, method, fn):
        members = groups.get(level, {}).get(method, [])
        values = [fn(s) for _, s in members if fn(s) is not None]
        return statistics.mean(values) if values else None

    def learner(s):
        if s["learner_s_per_step"] is None:
            return None
        return s["learner_s_per_step"] + (s["old_log_prob_s_per_step"] or 0.0)

    async_levels = sorted(lv for lv in groups if isinstance(lv, int) and lv >= 1)
    by_level = []
    for level in async_levels:
        a, p = mean_of(level, "asympo", learner), mean_of(level, "ppo_recompute", learner)
        if a and p:
            compared = [run for m in ("asympo", "ppo_recompute") for run, _ in groups[level][m]]
            by_level.append(
                {
                    "staleness": level,
                    "window_h": finish_window_h(compared),
                    "asympo_s": a,
                    "ppo_recompute_s": p,
                    "ppo_recompute_update_actor_s": mean_of(level, "ppo_recompute", lambda s: s["learner_s_per_step"]),
                    "ppo_recompute_old_log_prob_s": mean_of(
                        level, "ppo_recompute", lambda s: s["old_log_prob_s_per_step"]
                    ),
                    "ratio": a / p,
                    "goal": "<= 0.78",
                    "met": a / p <= 0.78,
                }
            )
    if by_level:
        out["learner"] = by_level[0]  # the lowest async level: the headline number
        out["learner_by_level"] = by_level
    sync = mean_of(0, "asympo", lambda s: s["s_per_step"])
    one_off = mean_of(1, "asympo", lambda s: s["s_per_step"])
    if sync and one_off:
        out["pipeline"] = {
            "sync_s_per_step": sync,
            "one_step_off_s_per_step": one_off,
            "sync_gen_s_per_step": mean_of(0, "asympo", lambda s: s.get("gen_s_per_step")),
            "ratio": sync / one_off,
            "window_h": finish_window_h([run for lv in (0, 1) for run, _ in groups[lv]["asympo"]]),
            "goal": ">= 1.25",
            "met": sync / one_off >= 1.25,
        }
    return out


def ratios_text(ratios: dict) -> str:
    lines = []
    for r in ratios.get("learner_by_level", []):
        lines.append(
            f"- learner time per step, ASymPO / PPO-clip recompute (staleness {r['staleness']}): "
            f"{r['asympo_s']:.3f} s / {r['ppo_recompute_s']:.3f} s (update_actor {r['ppo_recompute_update_actor_s']:.3f} "
            f"+ old_log_prob {r['ppo_recompute_old_log_prob_s']:.3f}) = **{r['ratio']:.2f}** (goal {r['goal']}: "
            f"{'met' if r['met'] else 'NOT met'})" + _window_text(r.get("window_h"))
        )
    if "learner_by_level" not in ratios:
        lines.append("- learner ratio: not measured (needs asympo and ppo_recompute at the same async staleness)")
    if "pipeline" in ratios:
        r = ratios["pipeline"]
        gen = r.get("sync_gen_s_per_step")
        lines.append(
            f"- steps/s, ASymPO one-step-off / ASymPO sync: {1 / r['one_step_off_s_per_step']:.2f} / "
            f"{1 / r['sync_s_per_step']:.2f} steps/s = **{r['ratio']:.2f}** (goal {r['goal']}: "
            f"{'met' if r['met'] else 'NOT met'})"
            + (f"; the sync step's generation stage took {gen:.2f} s" if gen is not None else "")
            + _window_text(r.get("window_h"))
        )
    else:
        lines.append("- pipeline ratio: not measured (needs asympo at staleness 0 and 1)")
    return "\n".join(lines)


# ---- everything --------------------------------------------------------------------------------------------


def write_report(
    runs: list[Run],
    out_dir: Path,
    *,
    title: str,
    command: str,
    labels: dict[str, str] | None = None,
    preamble: str = "",
) -> dict:
    """Write ``report.md``, ``summary.json`` and the PNGs into ``out_dir``; return what was written."""
    if not runs:
        raise ValueError("no runs to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = {**{r.method: r.label for r in runs if r.method and r.label}, **(labels or {})}
    groups = group(runs)
    md_tables = tables(groups, labels)
    overview = overview_table(groups, labels)
    ratios = timing_ratios(groups)
    files = {"rewards": out_dir / "rewards.png"}
    plot_rewards(groups, files["rewards"], labels, title)
    for level in groups:
        files[f"scale_staleness{level}"] = out_dir / f"scale_staleness{level}.png"
        plot_scale(groups, level, files[f"scale_staleness{level}"], labels)
    parts = [f"# {title}", "", f"Command: `{command}`", ""]
    if preamble:
        parts += [preamble, ""]
    parts += [CRITERIA, "", "## Overview: final reward, and collapses, per method and staleness", ""]
    parts += [overview, "", "## Timing ratios", "", ratios_text(ratios), ""]
    for level, table in md_tables.items():
        parts += [f"## Staleness {level}", "", table, ""]
    parts += ["## Plots", "", f"![rewards]({files['rewards'].name})", ""]
    parts += [f"![{name}]({path.name})" for name, path in files.items() if name != "rewards"]
    explained, mechanism_files = collapse_sections(groups, out_dir, labels)
    parts += ["", "## Collapses: the mechanism from the diagnostics", ""]
    parts += explained or ["No run collapsed.", ""]
    files.update(mechanism_files)
    report = out_dir / "report.md"
    report.write_text("\n".join(parts) + "\n")
    summary = {
        str(level): {
            method: [{"run": str(run.source), "seed": run.seed, **s} for run, s in members]
            for method, members in methods.items()
        }
        for level, methods in groups.items()
    }
    (out_dir / "summary.json").write_text(json.dumps({"ratios": ratios, "runs": summary}, indent=1, default=str))
    return {
        "report": report,
        "files": files,
        "tables": md_tables,
        "overview": overview,
        "ratios": ratios,
        "groups": groups,
    }
