"""One training job in a subprocess: started, watched, stopped and resumed the same way everywhere.

``make demo`` (:func:`asympo_plugin.demo.run_training`) and ``asympo-compare`` (:func:`asympo_plugin.study.runner.run_cell`)
both run a verl job through :func:`run_job`, so what follows is implemented once:

* **Nothing left running.** The job gets its own process group (and, on Linux, dies with its parent:
  ``PR_SET_PDEATHSIG``). While it runs, every process it starts is recorded (Ray's raylet and GCS leave the
  group, and workers outlive their parents). Stopping it - normal end, timeout, ``SIGINT``/``SIGTERM`` of
  the parent (:func:`stop_on_signals`), an exception - sends ``SIGTERM`` to the group and to every recorded
  process still alive, then ``SIGKILL`` after a grace period.
* **Nothing lost on resume.** verl's ``file`` logger opens its JSONL for writing, so a resumed run would
  erase the steps of the run it resumes. Each attempt writes its own file (``<run>/metrics.d/attempt-N.jsonl``,
  via ``VERL_FILE_LOGGER_PATH`` in the driver's and the Ray workers' environment); :func:`merge_attempts`
  writes ``<run>/metrics.jsonl`` with every step exactly once: an attempt that resumed from checkpoint
  step *c* replaces the earlier attempts' steps after *c* (they belonged to the discarded tail of a killed
  run) and adds to step *c* (the validation verl logs right after loading).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

METRICS = "metrics.jsonl"
ATTEMPTS = "metrics.d"
LOGGER_ENV = "VERL_FILE_LOGGER_PATH"
RAY_ENV_OVERRIDE = f"ray_kwargs.ray_init.runtime_env.env_vars.{LOGGER_ENV}"
CHECKPOINT_TRACKER = "latest_checkpointed_iteration.txt"  # verl's record of the last saved step


# --------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, start_time)`` of a live process from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        if rest[0] == "Z":
            return None
        return int(rest[1]), int(rest[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> dict[int, int]:
    """Every live descendant of ``pid`` as ``{pid: start_time}`` (one /proc scan)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st:
                children.setdefault(st[0], []).append((int(name), st[1]))
    found, todo = {}, [pid]
    while todo:
        for child, start in children.get(todo.pop(), []):
            if child not in found:
                found[child] = start
                todo.append(child)
    return found


def alive(processes: dict[int, int]) -> dict[int, int]:
    """The recorded processes still running (same pid *and* start time, so a reused pid is not counted)."""
    return {p: t for p, t in processes.items() if (st := _stat(p)) is not None and st[1] == t}


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Job:
    """A started job: its process, and every process it has started so far."""

    proc: subprocess.Popen
    seen: dict[int, int] = field(default_factory=dict)

    def record(self) -> None:
        if self.proc.poll() is None:
            self.seen.update(descendants(self.proc.pid))

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the group and every recorded process, SIGKILL what is left after ``grace_s``."""
        self.record()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            for pid in alive(self.seen):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 5.0)
            while time.monotonic() < deadline:
                self.proc.poll()
                if self.proc.returncode is not None and not alive(self.seen):
                    return
                time.sleep(0.1)
        self.proc.poll()


def start(cmd: list[str], *, env: dict[str, str], log, cwd: str | None = None) -> Job:
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    return Job(proc)


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGTERM (and SIGHUP) into ``SystemExit`` in the main thread, so ``finally`` blocks stop the jobs.

    SIGINT already raises ``KeyboardInterrupt``. The previous handlers come back on exit.
    """
    previous = {}

    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


# --------------------------------------------------------------------------------------------------
# metrics across attempts
# --------------------------------------------------------------------------------------------------


def read_records(path: Path) -> dict[int, dict]:
    """verl's JSONL file logger: one ``{"step": s, "data": {...}}`` per line; merged per step.

    A line cut short by a kill (the last one) is skipped.
    """
    steps: dict[int, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                steps.setdefault(int(record["step"]), {}).update(record["data"])
    return steps


def attempt_files(run_dir: Path) -> list[Path]:
    return sorted((run_dir / ATTEMPTS).glob("attempt-*.jsonl"))


def _resumed_from(attempt: Path) -> int | None:
    meta = attempt.with_suffix(".json")
    if meta.exists():
        return json.loads(meta.read_text()).get("resumed_from")
    return None


def merge_attempts(run_dir: Path) -> dict[int, dict]:
    """Every step once: an attempt resumed from step c replaces earlier steps > c (see the module docstring)."""
    merged: dict[int, dict] = {}
    for attempt in attempt_files(run_dir):
        records = read_records(attempt)
        resumed = _resumed_from(attempt)
        if resumed is None:  # no checkpoint was loaded: the attempt starts over
            resumed = -1
        merged = {s: m for s, m in merged.items() if s <= resumed}
        for step, values in records.items():
            merged.setdefault(step, {}).update(values)
    return merged


def write_merged(run_dir: Path) -> dict[int, dict]:
    merged = merge_attempts(run_dir)
    tmp = run_dir / (METRICS + ".tmp")
    with open(tmp, "w") as f:
        for step in sorted(merged):
            f.write(json.dumps({"step": step, "data": merged[step]}) + "\n")
    os.replace(tmp, run_dir / METRICS)
    return merged


def last_checkpoint(checkpoint_dir: Path | None) -> int | None:
    try:
        return int((Path(checkpoint_dir) / CHECKPOINT_TRACKER).read_text().strip()) if checkpoint_dir else None
    except (OSError, ValueError):
        return None


def _override(argv: list[str], key: str) -> str | None:
    value = None
    for item in argv:
        k, _, v = item.partition("=")
        if k.lstrip("+~") == key:
            value = v
    return value


# --------------------------------------------------------------------------------------------------
# the one entry point
# --------------------------------------------------------------------------------------------------


@dataclass
class JobResult:
    returncode: int | str  # exit code, or "timeout"
    wall_s: float
    metrics: dict[int, dict]
    arrival_s: dict[int, float]
    log_path: Path


def run_job(
    module: str,
    argv: list[str],
    run_dir: Path,
    *,
    timeout_s: float,
    env: dict[str, str] | None = None,
    on_step: Callable[[int, dict, float], None] | None = None,
    step_done: Callable[[int, dict], bool] | None = None,
    verbose: bool = False,
    program: str | None = None,
) -> JobResult:
    """Run ``python -m <module> <argv> ++<file logger path>`` for one attempt of the run in ``run_dir``.

    With ``trainer.resume_mode`` other than ``disable`` (verl's default is ``auto``) and a checkpoint in
    ``trainer.default_local_dir``, earlier attempts' metrics are kept and merged; otherwise the run starts
    over. ``on_step(step, metrics, seconds)`` is called once per step when ``step_done(step, metrics)``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    attempts = run_dir / ATTEMPTS
    resume_mode = _override(argv, "trainer.resume_mode") or "auto"
    ckpt = _override(argv, "trainer.default_local_dir")
    resumed = last_checkpoint(Path(ckpt)) if resume_mode != "disable" and ckpt else None
    if resumed is None:  # a fresh run: what an earlier one logged is not this run's
        for old in attempts.glob("attempt-*"):
            old.unlink()
    attempts.mkdir(exist_ok=True)
    number = len(attempt_files(run_dir)) + 1
    metrics_path = attempts / f"attempt-{number:03d}.jsonl"
    metrics_path.with_suffix(".json").write_text(json.dumps({"resumed_from": resumed, "argv": argv}))
    argv = [a for a in argv if a.lstrip("+~").partition("=")[0] != RAY_ENV_OVERRIDE]
    argv = [*argv, f"++{RAY_ENV_OVERRIDE}={metrics_path}"]
    full_env = {
        **os.environ,
        **(env or {}),
        "RAY_AUTH_MODE": "disabled",
        "PYTHONUNBUFFERED": "1",
        LOGGER_ENV: str(metrics_path),
    }
    step_done = step_done or (lambda step, values: True)
    log_path = run_dir / "train.log"
    seen: set[int] = set(merge_attempts(run_dir)) if resumed is not None else set()
    arrival: dict[int, float] = {}
    start_t = time.monotonic()
    rc: int | str = -1
    with open(log_path, "a" if resumed is not None else "w") as log:
        log.write(f"$ {program or 'python -m ' + module} " + " ".join(argv) + f"   # attempt {number}\n")
        log.flush()
        job = start([sys.executable, "-m", module, *argv], env=full_env, log=None if verbose else log)
        try:
            last_scan = 0.0
            while True:
                done = job.proc.poll() is not None
                now = time.monotonic()
                if not done and now - last_scan > 1.0:
                    job.record()
                    last_scan = now
                for step, values in read_records(metrics_path).items():
                    if step not in seen and step_done(step, values):
                        seen.add(step)
                        arrival[step] = time.monotonic() - start_t
                        if on_step is not None:
                            on_step(step, values, arrival[step])
                if done:
                    rc = job.proc.returncode
                    break
                if now - start_t > timeout_s:
                    rc = "timeout"
                    break
                time.sleep(0.2)
        finally:
            job.stop()
            write_merged(run_dir)
    return JobResult(rc, time.monotonic() - start_t, write_merged(run_dir), arrival, log_path)
