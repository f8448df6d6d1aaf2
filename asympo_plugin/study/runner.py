"""Run the matrix: one verl run per cell, each in its own directory, resumable.

A cell's directory holds ``train.log`` (verl's console), ``metrics.jsonl`` (verl's ``file`` logger),
``config.yaml`` (the resolved config) and, only once the run completed *and* its metrics file holds
every training step, ``DONE.json`` (written atomically: temp file + rename). A later sweep skips
cells whose marker exists and records the same command line and task model (``TaskArtifacts.identity``:
the warm start is adaptive, so another machine can build other weights under the same cache name);
anything else is rerun from scratch, so a killed sweep (or a crashed run) never leaves a half cell
counted as finished, and a sweep never mixes runs of two models.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from .. import harness
from ..demo import read_metrics, train_overrides
from .analysis import STEP_TIME, Run, summarize
from .matrix import (
    FULLY_ASYNC,
    STALE_PIPELINES,
    Cell,
    Preset,
    cell_overrides,
    fully_async_overrides,
    pipeline_for,
)

MARKER = "DONE.json"
REAL = "verl"  # DONE.json's "engine": verl's trainer (this module) or the in-process engine (engine.py)


STUDY_ROLLOUT = "hf"


def cell_argv(cell: Cell, preset: Preset, task, run_dir: Path) -> list[str]:
    """The full ``python -m asympo_plugin.study.train`` argument list of one cell."""
    if preset.stale_pipeline not in STALE_PIPELINES:
        raise ValueError(f"unknown stale pipeline {preset.stale_pipeline!r}: one of {STALE_PIPELINES}")
    pipeline, delay = pipeline_for(cell.staleness)
    stale = ()
    if preset.stale_pipeline == FULLY_ASYNC and cell.staleness > 0:  # staleness 0 is the sync trainer either way
        pipeline, delay = FULLY_ASYNC, 0
        stale = fully_async_overrides(cell.staleness, preset.steps, preset.batch_size)
    overrides = train_overrides(
        task,
        run_dir,
        loss="asympo",  # replaced by the method's own algorithm.loss (the last one wins)
        steps=preset.steps,
        batch_size=preset.batch_size,
        n=preset.n,
        lr=preset.lr,
        test_freq=preset.test_freq,
        pipeline=pipeline,
        # The study's rollout is hf at every staleness level: its delayed weight sync (staleness >= 2,
        # delayed_sync.py) stamps policy versions through the hf server, which vLLM's server does not have.
        rollout=STUDY_ROLLOUT,
        extra=(*cell_overrides(cell), "trainer.val_before_train=False", *stale, *preset.extra),
    )
    metrics = run_dir / "metrics.jsonl"
    overrides.append(f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={metrics}")
    return ["--sync-delay", str(delay), "--save-config", str(run_dir / "config.yaml"), *overrides]


def complete_steps(metrics: dict[int, dict], steps: int, argv: list[str] = ()) -> bool:
    """Every training step 1..steps was logged with its step time (verl logs a step at its end).

    verl 0.9.1's fully-async trainer logs under its parameter version and writes no training record
    for its first step (measured: a 3-step run logs steps 2 and 3, a 150-step run steps 2..150), so
    for its command line (``argv``) steps 2..steps are required.
    """
    first = 2 if f"--pipeline={FULLY_ASYNC}" in argv else 1
    return all(STEP_TIME in metrics.get(s, {}) for s in range(first, steps + 1))


def portable(argv: list[str], run_dir: Path, task) -> list[str]:
    """``argv`` with this machine's paths replaced by placeholders: the run directory, the task cache
    and the task's reward file (inside the installed package).

    A marker stores this form, so a sweep committed on one machine counts as finished on another
    (``docs/study``, a CI clone): the paths differ between machines, the cell does not.
    """
    absolute = run_dir.resolve()
    forms = sorted({str(run_dir), str(absolute), os.path.relpath(absolute)}, key=len, reverse=True)
    out = []
    for a in argv:
        for form in forms:  # the longest first: an absolute path contains its relative form
            a = a.replace(form, "<run>")
        out.append(a.replace(str(task.root), "<task>").replace(str(task.reward_path), "<reward>"))
    return out


def is_finished(run_dir: Path, argv: list[str], steps: int, *, task, engine: str = REAL) -> bool:
    """``run_dir`` holds a complete run of exactly ``argv`` by ``engine`` (paths compared portably)."""
    marker = run_dir / MARKER
    if not marker.exists():
        return False
    try:
        done = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    stored = done.get("argv")
    same = (
        isinstance(stored, list)
        and portable(stored, run_dir, task) == portable(argv, run_dir, task)
        and done.get("engine", REAL) == engine
        and not other_model(done, task)
    )
    return same and complete_steps(read_metrics(run_dir / "metrics.jsonl"), steps, argv)


def other_model(done: dict, task) -> bool:
    """The marker ``done`` records a task model other than ``task``'s (same command line, other weights).

    Markers written before the model was recorded (no ``task_model``) cannot tell and count as the same.
    """
    recorded = done.get("task_model")
    return recorded is not None and recorded != task.identity()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_marker(run_dir: Path, cell: Cell, argv: list[str], wall: float, task, *, engine: str) -> None:
    """Mark ``run_dir`` finished: the portable command line, the engine, the task model, the wall time and
    when it finished (UTC), so a report can tell whether two runs' step times come from one time window."""
    marker = {
        "cell": cell.key,
        "argv": portable(argv, run_dir, task),
        "wall_s": wall,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "engine": engine,
        "task_model": task.identity(),
    }
    _write_atomically(run_dir / MARKER, json.dumps(marker, indent=1))


def run_cell(
    cell: Cell, preset: Preset, task, root: Path, *, timeout_s: float | None = None
) -> tuple[bool, float, str]:
    """Run one cell from scratch; return ``(finished, wall seconds, message)``."""
    run_dir = cell.run_dir(root)
    argv = cell_argv(cell, preset, task, run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    # harness.run_job: own process group, every process it started stopped at the end or on a timeout.
    job = harness.run_job(
        "asympo_plugin.study.train",
        argv,
        run_dir,
        timeout_s=timeout_s or 300 + 30 * preset.steps,  # a hang guard: steps take 2-15 s on 2 loaded cores
        # verl's own losses (the baselines) log the same scale diagnostics as the plugin's.
        env={"ASYMPO_BUILTIN_DIAGNOSTICS": "1"},
    )
    rc, wall, metrics = job.returncode, job.wall_s, job.metrics
    if rc != 0:
        return False, wall, f"FAILED (exit {rc}); see {run_dir / 'train.log'}"
    if not complete_steps(metrics, preset.steps, argv):
        return False, wall, f"INCOMPLETE metrics ({len(metrics)} steps logged); see {run_dir / 'train.log'}"
    write_marker(run_dir, cell, argv, wall, task, engine=REAL)
    return True, wall, ""


def load_cell(cell: Cell, root: Path) -> Run:
    from .analysis import load_run

    run_dir = cell.run_dir(root)
    run = load_run(run_dir / "metrics.jsonl", name=cell.key)
    run.method, run.label, run.staleness, run.seed = cell.method.name, cell.method.label, cell.staleness, cell.seed
    marker = json.loads((run_dir / MARKER).read_text())
    run.wall_s = marker.get("wall_s")
    run.finished_utc = marker.get("finished_utc")  # None: written before finish times were recorded
    run.task_model = (marker.get("task_model") or {}).get("weights_sha256")
    return run


def _eta(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"


def sweep(
    cells: list[Cell], preset: Preset, task, root: Path, *, log=print, engine: str = REAL
) -> tuple[list[Run], list[str]]:
    """Run every unfinished cell in order (one line each, with an ETA); return the finished runs and failures.

    ``engine``: :data:`REAL` (verl's trainer, one job per cell) or ``engine.ENGINE`` (in-process, the frontier).
    """
    root.mkdir(parents=True, exist_ok=True)
    if engine == REAL:
        run = run_cell
    else:
        from . import engine as in_process

        if engine != in_process.ENGINE:
            raise ValueError(f"unknown engine {engine!r}: {REAL!r} or {in_process.ENGINE!r}")
        run = in_process.run_cell
    todo = [
        c
        for c in cells
        if not is_finished(
            c.run_dir(root), cell_argv(c, preset, task, c.run_dir(root)), preset.steps, task=task, engine=engine
        )
    ]
    log(f"asympo-compare: {len(cells)} cells, {len(cells) - len(todo)} already finished, {len(todo)} to run -> {root}")
    for c in todo:
        marker = c.run_dir(root) / MARKER
        if marker.exists() and other_model(json.loads(marker.read_text()), task):
            log(
                f"asympo-compare: {c.key} finished on another task model "
                f"({json.loads(marker.read_text())['task_model']}, this machine's is {task.identity()}): rerunning it"
            )
    walls: list[float] = []
    failures: list[str] = []
    guess = 70 + 1.5 * preset.steps  # seconds per run before the first one is measured (2 cores)
    for i, cell in enumerate(todo, 1):
        ok, wall, message = run(cell, preset, task, root)
        walls.append(wall)
        remaining = (sum(walls) / len(walls) if walls else guess) * (len(todo) - i)
        if ok:
            s = summarize(load_cell(cell, root))
            stale = s["staleness"]["steady"]
            text = (
                f"reward {s['reward_start']:.2f} -> {s['final_reward']:.2f}, "
                f"collapsed {'yes (step %s)' % s['collapse_step'] if s['collapsed'] else 'no'}, "
                f"staleness {'n/a' if stale is None else format(stale, '.2f')}, {s['s_per_step']:.2f} s/step"
            )
        else:
            failures.append(f"{cell.key}: {message}")
            text = message
        log(f"[{i:3d}/{len(todo)}] {cell.key:36s} {wall:5.0f}s  {text}  | ETA {_eta(remaining)}")
    runs = [load_cell(c, root) for c in cells if (c.run_dir(root) / MARKER).exists()]
    return runs, failures
