"""Nothing lost, nothing left running (issue 12, parts 2 and 3), end to end in verl's real trainer on CPU.

* **SIGKILL mid-step, then resume.** A one-step-off ASymPO job that checkpoints every 2 steps is killed
  with SIGKILL - the driver and every process it started, at once, as when a node dies - while step 3
  runs. The same command with ``trainer.resume_mode=auto`` continues from the step-2 checkpoint with the
  same loss, and ``metrics.jsonl`` holds every step exactly once (verl's own ``file`` logger would have
  rewritten it on resume).
* **SIGTERM of ``make demo``.** The demo is started as a user would (``python -m asympo_plugin.demo``),
  sent SIGTERM once training is under way, and must exit leaving no process it started alive (Ray's
  GCS and raylet, the workers, the rollout server).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asympo_plugin import harness
from asympo_plugin.demo import run_training, train_overrides
from asympo_plugin.task import prepare

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def task():
    return prepare()


def _wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the job ended (exit {proc.returncode}) before {what}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _kill_everything(proc: subprocess.Popen) -> dict[int, int]:
    tree = {proc.pid: 0, **harness.descendants(proc.pid)}
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)
    return tree


def test_sigkill_mid_step_then_resume_keeps_every_step_once(task, tmp_path):
    run_dir = tmp_path / "killed"
    argv = train_overrides(
        task,
        run_dir,
        steps=4,
        test_freq=-1,
        save_freq=2,
        resume=True,
        extra=("trainer.val_before_train=False",),
    )
    driver = (
        "import sys, json; from pathlib import Path; from asympo_plugin.demo import run_training; "
        "run_training(json.loads(sys.argv[1]), Path(sys.argv[2]))"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", driver, json.dumps(argv), str(run_dir)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        tracker = run_dir / "checkpoints" / harness.CHECKPOINT_TRACKER
        _wait_for(lambda: harness.last_checkpoint(tracker.parent) == 2, 600, "the step-2 checkpoint", first)
        time.sleep(1.0)  # into step 3
    finally:
        tree = _kill_everything(first)
    time.sleep(2)
    assert not harness.alive({p: s for p, s in tree.items() if s}), "SIGKILL left processes of the first attempt"
    first_steps = set(harness.read_records(harness.attempt_files(run_dir)[0]))
    assert {1, 2} <= first_steps and 4 not in first_steps, first_steps

    result = run_training(argv, run_dir, timeout_s=900)
    assert result.returncode == 0, result.log_path.read_text()[-3000:]
    assert json.loads(harness.attempt_files(run_dir)[1].with_suffix(".json").read_text())["resumed_from"] == 2
    lines = [json.loads(line) for line in (run_dir / harness.METRICS).read_text().splitlines()]
    steps = [record["step"] for record in lines]
    assert steps == sorted(set(steps)), f"a step is logged twice: {steps}"
    trained = [s for s in steps if "timing_s/step" in lines[steps.index(s)]["data"]]
    assert trained == [1, 2, 3, 4], trained
    for record in lines:
        if record["step"] in (3, 4):
            assert "actor/asympo/floored_frac" in record["data"], "the resumed job lost algorithm.loss=asympo"
    assert "Load from checkpoint folder" in result.log_path.read_text()


def test_sigterm_of_the_demo_leaves_nothing_running(task, tmp_path):
    out = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "asympo_plugin.demo", "--steps", "20", "--out", str(out)],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    seen: dict[int, int] = {}

    def training_started() -> bool:
        seen.update(harness.descendants(demo.pid))
        attempts = harness.attempt_files(out)
        return bool(attempts) and any(s > 0 for s in harness.read_records(attempts[-1]))

    try:
        _wait_for(training_started, 600, "the first training step", demo)
        seen.update(harness.descendants(demo.pid))
        assert any(b"raylet" in Path(f"/proc/{p}/cmdline").read_bytes() for p in harness.alive(seen)), (
            "the demo's Ray cluster was not seen; the test would prove nothing"
        )
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=90)
    finally:
        if demo.poll() is None:
            _kill_everything(demo)
    deadline = time.monotonic() + 30
    while harness.alive(seen) and time.monotonic() < deadline:
        time.sleep(0.5)
    survivors = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in harness.alive(seen)}
    assert not survivors, f"processes the demo started outlived its SIGTERM: {survivors}"
    assert demo.returncode != 0
