"""``asympo-compare``: the head-to-head study, on the built-in CPU task or on your own verl logs.

    asympo-compare run [--quick] [--hard] [--fully-async] [--out DIR] [--steps N] [--seeds 1,2] [--staleness 0,4] [--methods a,b]
    asympo-compare compare RUN [RUN ...] [--out DIR]

``run`` trains the matrix (methods x staleness x seeds) with verl's real trainers on CPU
(``trainer.device=cpu``), skipping finished cells, then writes ``<out>/report/report.md``, one
reward PNG and one scale-diagnostics PNG per staleness level, and ``summary.json``.

``compare`` makes the same table and plots from existing verl runs: each RUN is a JSONL file from
verl's ``file`` logger, a TensorBoard event file, or a directory holding one (a ``config.yaml`` or
``.hydra/config.yaml`` next to it tells the method and whether rollout log-probs were shipped).
Runs are grouped by method (from the resolved config: loss mode, bypass mode, rollout log-probs,
advantage estimator; ``--config`` per run when it is elsewhere; only without any config, the name
without a ``_seedN`` suffix, with a warning) and by staleness (verl's metrics or the pipeline's
structure: one-step-off = 1, fully-async = its bound; never the directory name).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path


def _say(message: str) -> None:
    print(message, flush=True)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 1,2,3") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give non-negative integers, e.g. 0,1,4")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: needs at least 1 (e.g. --steps 40)")
    return value


def _positive_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text}: the learning rate must be a finite number > 0 (e.g. 5e-4)")
    return value


def _override(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form KEY=VALUE (e.g. trainer.test_freq=5)")
    return text


def _names(text: str) -> tuple[str, ...]:
    from .matrix import METHODS

    names = tuple(x.strip() for x in text.split(",") if x.strip())
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asympo-compare", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the matrix on the built-in CPU task, then report")
    run.add_argument("--quick", action="store_true", help="the quick preset (under 20 minutes on 2 cores)")
    run.add_argument(
        "--hard",
        action="store_true",
        help="the harder setting: lr 2e-3 with a 10-step warm-up instead of the demo's lr 5e-4 (see docs/RESULTS_previous_task.md)",
    )
    run.add_argument(
        "--fully-async",
        action="store_true",
        help="run staleness k >= 1 on verl's fully-async trainer bounded at k (async_training.staleness_threshold=k-1) "
        "instead of one-step-off with the weight sync delayed k-1 versions; staleness 0 stays the sync trainer",
    )
    run.add_argument("--out", type=Path, help="sweep directory (default runs/study[-quick][-hard][-fully-async])")
    run.add_argument("--steps", type=_positive_int, help="override the preset's training steps")
    run.add_argument("--seeds", type=_ints, help="override the preset's seeds, e.g. 1,2,3")
    run.add_argument("--staleness", type=_ints, help="override the preset's staleness levels, e.g. 0,1,2,4")
    run.add_argument("--methods", type=_names, help="override the preset's methods, e.g. asympo,naive")
    run.add_argument("--lr", type=_positive_float, help="override the preset's learning rate")
    run.add_argument(
        "--override",
        action="append",
        type=_override,
        default=[],
        metavar="KEY=VALUE",
        help="asympo-train override for every cell (repeatable); use a separate --out per setting",
    )
    run.add_argument("--cache-dir", help="task/model cache (default $ASYMPO_CACHE_DIR or ~/.cache/asympo-plugin)")
    run.add_argument("--report-only", action="store_true", help="run nothing; report the finished cells")
    run.add_argument(
        "--engine",
        choices=("verl", "in-process"),
        default="verl",
        help="verl: verl's trainer, one job per cell (default); in-process: the frontier's engine "
        "(asympo_plugin/study/engine.py: verl's config, advantage and ppo_loss in one process, no Ray)",
    )
    frontier = sub.add_parser("frontier", help="the stability frontier: lr x staleness x seeds (in-process engine)")
    frontier.add_argument("--out", type=Path, help="sweep directory (default docs/study/frontier)")
    frontier.add_argument("--workers", type=_positive_int, default=2, help="parallel runs, one thread each (default 2)")
    frontier.add_argument("--cache-dir", help="task/model cache (default $ASYMPO_CACHE_DIR or ~/.cache/asympo-plugin)")
    frontier.add_argument("--report-only", action="store_true", help="run nothing; report the finished runs")
    compare = sub.add_parser("compare", help="table and plots from your own verl runs (JSONL or TensorBoard)")
    compare.add_argument("runs", nargs="+", type=Path, help="verl JSONL logs, TensorBoard event files, or run dirs")
    compare.add_argument("--out", type=Path, default=Path("runs/compare"), help="where report.md and PNGs go")
    compare.add_argument("--title", default="Head-to-head comparison of verl runs")
    compare.add_argument(
        "--config",
        action="append",
        default=[],
        type=Path,
        metavar="YAML",
        help="a run's resolved verl config, once per RUN in the same order (for runs without a config.yaml or "
        ".hydra/config.yaml next to their log); 'none' keeps that run's own",
    )
    return parser


def _preset(args):
    from .matrix import FULL, QUICK, harder

    preset = QUICK if args.quick else FULL
    if args.hard:
        preset = harder(preset)
    changes = {
        k: v
        for k, v in (("steps", args.steps), ("seeds", args.seeds), ("staleness", args.staleness), ("lr", args.lr))
        if v
    }
    if args.methods:
        changes.update(methods=args.methods, methods_at={})
    if args.override:
        changes.update(extra=(*preset.extra, *args.override))
    if args.fully_async:
        from .matrix import FULLY_ASYNC

        changes.update(stale_pipeline=FULLY_ASYNC)
    if changes:
        # methods_at={} is the reset that goes with --methods, not something the user gave
        given = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in changes.items() if v != {})
        why = f"the `{preset.name}` preset ({preset.why}), with these replaced from the command line: {given}"
        preset = replace(preset, name=preset.name + "+custom", why=why, **changes)
    return preset


def _staleness_check(runs) -> list[str]:
    """Asked-for vs measured staleness of every study run; a mismatch is printed, never hidden."""
    from .analysis import summarize

    lines = []
    for run in runs:
        measured = summarize(run)["staleness"]
        if measured.get("pipeline") == "fully-async":  # verl logs a stale fraction; the level asked is its bound
            if measured["bound"] != run.staleness:
                lines.append(f"{run.name}: asked {run.staleness}, fully-async bound {measured['bound']}")
        elif measured["steady"] is None:
            lines.append(f"{run.name}: asked {run.staleness}, no staleness metric logged (not confirmed)")
        elif abs(measured["steady"] - run.staleness) > 0.01:
            lines.append(
                f"{run.name}: asked {run.staleness}, measured {measured['steady']:.2f} (steady), max {measured['max']:.0f}"
            )
    return lines


def cmd_run(args) -> int:
    from ..task import prepare
    from .matrix import METHODS, cells
    from .report import ratios_text, write_report
    from .runner import sweep

    if args.fully_async and args.engine != "verl":
        print(
            "asympo-compare: error: --fully-async runs verl's fully-async trainer; the in-process engine has "
            "its own staleness model (drop --engine in-process, or drop --fully-async)",
            file=sys.stderr,
        )
        return 2
    preset = _preset(args)
    out = args.out or Path(
        "runs/study"
        + ("-quick" if args.quick else "")
        + ("-hard" if args.hard else "")
        + ("-fully-async" if args.fully_async else "")
    )
    matrix = cells(preset)
    _say(f"asympo-compare run: preset '{preset.name}': {preset.why}")
    _say(
        f"  steps {preset.steps}, seeds {list(preset.seeds)}, staleness {list(preset.staleness)}, "
        f"batch {preset.batch_size} prompts x n={preset.n}, lr {preset.lr:g}, overrides {list(preset.extra)}; "
        f"{len(matrix)} runs:"
    )
    for cell in matrix:
        _say(f"    {cell.key}")
    task = prepare(args.cache_dir, log=_say)
    start = time.monotonic()
    if args.report_only:
        from .runner import MARKER, load_cell

        runs, failures = [load_cell(c, out) for c in matrix if (c.run_dir(out) / MARKER).exists()], []
    else:
        if args.engine == "in-process":
            from .engine import configure_threads

            configure_threads()
        runs, failures = sweep(matrix, preset, task, out, log=_say, engine=args.engine)
    if not runs:
        _say("asympo-compare: no finished runs to report")
        return 1
    mismatches = _staleness_check(runs)
    command = (
        "asympo-compare " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if sys.argv[1:2] == ["run"]
        else "asympo-compare run"
    )
    preamble = "\n".join(
        [
            f"Preset `{preset.name}`: {preset.why}. {len(runs)} of {len(matrix)} runs finished"
            + (f"; failed: {failures}" if failures else "")
            + ".",
            f"Task: built-in letters task ({task.root.name}; {task.info}).",
            task_models_line(runs),
            (
                "Staleness: 0 = verl's synchronous trainer; k >= 1 = verl's fully-async trainer bounded at k "
                "(`async_training.staleness_threshold` = k - 1; verl logs the stale fraction, not each sample's age). "
                if args.fully_async
                else "Staleness: 0 = verl's synchronous trainer; 1 = verl's one-step-off trainer; k >= 2 = one-step-off "
                "with the `cpu_delayed` weight sync delivering weights k - 1 versions late. "
            )
            + "Measured staleness "
            "(`asympo/staleness/mean`, per trajectory; verl's `training/off_policy/trajectory_staleness/mean` for the "
            "sync trainer) "
            + (
                "matches the asked level in every run (after the warm-up steps)."
                if not mismatches
                else "matches the asked level (after the warm-up steps) except: " + "; ".join(mismatches)
            ),
        ]
    )
    written = write_report(
        runs,
        out / "report",
        title=f"asympo-compare: head-to-head on the built-in CPU task ({preset.name})",
        command=command,
        labels={m.name: m.label for m in METHODS.values()},
        preamble=preamble,
    )
    _say("")
    for level, table in written["tables"].items():
        _say(f"staleness {level}\n{table}\n")
    _say("overview (final reward; collapses):\n" + written["overview"] + "\n")
    _say("timing ratios (this sweep):\n" + ratios_text(written["ratios"]))
    if mismatches:
        _say("staleness mismatches:\n  " + "\n  ".join(mismatches))
    _say(f"\nreport: {written['report']}  (sweep wall time {time.monotonic() - start:.0f} s)")
    return 1 if failures else 0


def cmd_frontier(args) -> int:
    from ..task import prepare
    from . import frontier

    root = args.out or frontier.DEFAULT_ROOT
    task = prepare(args.cache_dir, log=_say)
    failures = [] if args.report_only else frontier.sweep(root, task, workers=args.workers, log=_say)
    print(frontier.report(root))
    _say(f"asympo-compare frontier: report in {root / 'frontier.md'} and {root / 'frontier.png'}")
    if failures:
        _say("asympo-compare frontier: failed runs:\n  " + "\n  ".join(failures))
        return 1
    return 0


def task_models_line(runs) -> str:
    """Which task-model builds the reported runs were made on, from their markers (one build or several)."""
    counts = Counter(run.task_model for run in runs if run.task_model)
    missing = sum(1 for run in runs if not run.task_model)
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    listed = "; ".join(f"`{model}`: {n} run{'' if n == 1 else 's'}" for model, n in ordered)
    unknown = (
        ("1 run's marker does not" if missing == 1 else f"{missing} runs' markers do not")
        + " record it (written before the model was recorded)"
    )
    if not counts:
        return "Task model: not recorded by the runs' markers (written before the model was recorded)."
    if len(counts) == 1 and not missing:
        return f"Task model recorded by every run's marker: {listed}."
    return (
        f"**The runs' markers name {len(counts)} task-model build{'' if len(counts) == 1 else 's'}** "
        f"(weights hash: {listed})" + (f" and {unknown}" if missing else "")
        + ": a comparison between runs of different builds carries that difference."
    )


def cmd_compare(args) -> int:
    from .analysis import load_run
    from .report import ratios_text, write_report

    if args.config and len(args.config) != len(args.runs):
        print(
            f"asympo-compare: error: {len(args.config)} --config for {len(args.runs)} runs; give one per run, "
            "in the runs' order ('--config none' for a run whose config sits next to its log)",
            file=sys.stderr,
        )
        return 2
    configs = [None if str(c) == "none" else c for c in args.config] or [None] * len(args.runs)
    try:
        runs = [load_run(path, config_path=config) for path, config in zip(args.runs, configs)]
    except (FileNotFoundError, ValueError) as e:
        print(f"asympo-compare: error: {e}", file=sys.stderr)
        return 2
    unverified = [r.name for r in runs if r.extra.get("method_source")]
    if unverified:
        _say(f"asympo-compare: no resolved config for {unverified}: method taken from the name (pass --config)")
    written = write_report(
        runs, args.out, title=args.title, command="asympo-compare " + " ".join(map(shlex.quote, sys.argv[1:]))
    )
    for level, table in written["tables"].items():
        _say(f"staleness {level}\n{table}\n")
    _say(ratios_text(written["ratios"]))
    _say(f"\nreport: {written['report']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from ..harness import stop_on_signals

    args = _parser().parse_args(argv)
    with stop_on_signals():  # SIGTERM/SIGINT end the running cell's whole job (harness.run_job)
        return {"run": cmd_run, "frontier": cmd_frontier, "compare": cmd_compare}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
