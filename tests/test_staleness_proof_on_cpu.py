"""Each training batch was sampled by exactly the policy version the staleness metric names (issue: the
staleness-1 collapse must not come from a pipeline that delivers something else than it claims).

For each staleness mechanism the study uses, one short real run on CPU (verl's one-step-off trainer, the
``hf`` rollout; one-step-off also with real vLLM as the rollout; verl's fully-async trainer with vLLM) with the
evidence recorder on (``asympo_plugin/verl/cpu/recorder.py``):

1. every response's recorded rollout log-probs are recomputed (plain ``transformers`` forward) under the
   actor's published checkpoint of the version the response is stamped with; they agree within
   ``LOGPROB_TOL`` there and disagree by more than ``NEIGHBOUR_MIN`` at the neighbouring versions (so the
   test can fail). With ``hf`` the server records each sample as it decodes; with vLLM (whose engine runs in
   its own process) the log-probs are vLLM's own (``rollout.calculate_log_probs=True``, PPO-clip bypass: a
   behavior-free loss refuses that setting), recorded from the training batch;
2. after every sync, every parameter and buffer of the rollout model has the checksum of the actor's
   publication of that version (nothing partly synced, nothing stale). ``hf`` only: vLLM's model holds
   fused and repacked tensors (``qkv_proj``, ``gate_up_proj``), not the published ones; for vLLM part 1 is
   the evidence (a tensor left stale or half-loaded would move the log-probs of every sampled token);
3. every trained response carries the version the rollout stamped, the staleness the metric logged
   (``learner_version - policy_version``), the score of its own prompt's ground truth (the task's
   ``compute_score``), and its own group's GRPO advantage. Fully async: the version is verl's own stamp
   (``max_global_steps``, equal to ``min_global_steps``: no partial rollout), the learner version the trainer's
   ``current_param_version`` when it trains, and the logged staleness verl's own
   ``fully_async/count/stale_trajectory_processed`` (cumulative count of trajectories trained on behind the learner).

The lr is 10x the demo's so that consecutive versions differ measurably.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from asympo_plugin.demo import run_training, train_overrides
from asympo_plugin.task import prepare

pytestmark = pytest.mark.e2e

LOGPROB_TOL = 1e-4  # fp32, same model code; the rollout decodes with a KV cache, the check without
NEIGHBOUR_MIN = 1e-3  # max |delta log-prob| over a batch under the wrong version must exceed this
LR = 5e-3

# vLLM's own log-probs need rollout.calculate_log_probs=True, which a behavior-free loss refuses (verl's
# rollout-correction stage would read the old log-probs it never computes); the pipeline's versioning does not
# depend on the loss, so that run uses the study's PPO-clip bypass method (the rollout's log-probs are the old ones).
VLLM_LOG_PROBS = (
    "algorithm.rollout_correction.bypass_mode=True",
    "actor_rollout_ref.rollout.calculate_log_probs=True",
)
MECHANISMS = {
    # name: (steps, extra overrides, the staleness every step after the warm-up must show, rollout, loss)
    "one-step-off": (4, (), 1, "hf", "asympo"),
    "one-step-off-vllm": (4, VLLM_LOG_PROBS, 1, "vllm", "vanilla"),
    "delayed-k2": (4, "delay:1", 2, "hf", "asympo"),
    "delayed-k4": (6, "delay:3", 4, "hf", "asympo"),
    # verl's fully-async trainer: its staleness varies per trajectory (None: no fixed value to check), bounded
    # by async_training.staleness_threshold; verl logs it as a count (fully_async/count/stale_trajectory_processed)
    "fully-async-vllm": (6, "fully-async", None, "vllm", "vanilla"),
}
# verl's fully-async trainer: one param version per trainer step (trigger_parameter_sync_step=1, one optimizer
# step per trainer step: the version is the number of updates), no partial rollouts (each trajectory is sampled
# by one version: min_global_steps == max_global_steps), the rollouter up to one batch ahead (staleness_threshold=1:
# stale batches), the prompts for ``steps`` trainer steps of 4 prompts (verl derives its step count from them).
FULLY_ASYNC_STALENESS_THRESHOLD = 1


def _fully_async(steps: int, batch_size: int) -> tuple[str, ...]:
    return (
        *VLLM_LOG_PROBS,
        "actor_rollout_ref.hybrid_engine=False",
        "data.gen_batch_size=1",
        f"async_training.staleness_threshold={FULLY_ASYNC_STALENESS_THRESHOLD}",
        "async_training.trigger_parameter_sync_step=1",
        "async_training.require_batches=1",
        "async_training.partial_rollout=False",
        f"rollout.total_rollout_steps={steps * batch_size}",
    )


TEMPERATURE = 1.0  # set explicitly for every run (vLLM's rows carry no temperature of their own)


def _delayed(delay: int) -> tuple[str, ...]:
    engine = "actor_rollout_ref.rollout.checkpoint_engine"
    return (
        f"{engine}.backend=cpu_delayed",
        f"{engine}.custom_backend_module=asympo_plugin.study.delayed_sync",
        f"++{engine}.engine_kwargs.cpu_delayed.delay={delay}",
        "++actor_rollout_ref.rollout.checkpoint_manager_class="
        "asympo_plugin.study.delayed_sync.DelayedVersionedCheckpointEngineManager",
    )


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def task():
    return prepare()


@pytest.fixture(scope="module", params=list(MECHANISMS))
def recorded(request, task, tmp_path_factory):
    name = request.param
    steps, extra, staleness, rollout, loss = MECHANISMS[name]
    pipeline = "one-step-off"
    if extra == "fully-async":
        pipeline, extra = "fully-async", _fully_async(steps, 4)
    elif isinstance(extra, str):
        extra = _delayed(int(extra.split(":")[1]))
    run_dir = tmp_path_factory.mktemp(name) / "run"
    record = run_dir / "record"
    mp = pytest.MonkeyPatch()
    mp.setenv("ASYMPO_RECORD_DIR", str(record))
    try:
        argv = train_overrides(
            task, run_dir, loss=loss, steps=steps, batch_size=4, n=4, lr=LR, test_freq=-1, rollout=rollout,
            extra=("trainer.val_before_train=False", f"actor_rollout_ref.rollout.temperature={TEMPERATURE}", *extra),
            pipeline=pipeline,
        )  # fmt: skip
        if pipeline == "fully-async":  # the rollouter takes prompts one at a time
            argv = [a if not a.startswith("data.train_batch_size=") else "data.train_batch_size=0" for a in argv]
        result = run_training(argv, run_dir)
    finally:
        mp.undo()
    assert result.returncode == 0, result.log_path.read_text()[-3000:]
    return name, staleness, record, result


def _sampled(name: str, record: Path) -> list[dict]:
    """Every sampled response with the rollout's own log-probs and the version it is stamped with."""
    if MECHANISMS[name][3] == "hf":
        return [s for s in _jsonl(record / "samples_0.jsonl") if s["temperature"] > 0 and s["response_ids"]]
    rows = [r for r in _jsonl(record / "batches.jsonl") if r["response_ids"]]
    assert rows and all(r["rollout_log_probs"] is not None for r in rows), f"{name}: vLLM returned no log-probs"
    # fully async: each trajectory was sampled by one version (no partial rollout spans two)
    assert all(r.get("first_policy_version") in (None, r["policy_version"]) for r in rows), name
    return [
        {**r, "log_probs": r["rollout_log_probs"], "temperature": TEMPERATURE}
        for r in rows
        if r["policy_version"] is not None
    ]


def _distinct_publications(record: Path) -> list[dict]:
    """The actor's publications, consecutive identical ones dropped: index = policy version (updates applied)."""
    out = []
    for entry in _jsonl(record / "published.jsonl"):
        if not out or entry["checksums"] != out[-1]["checksums"]:
            out.append(entry)
    return out


def _versions(name: str, record: Path) -> list[dict[str, torch.Tensor]]:
    """The state dict of every policy version, in order."""
    if name.startswith("fully-async"):
        # verl's fully-async trainer publishes once per param version (global_steps = current_param_version),
        # the initial sync included: publication n is version n. Not deduplicated: an update that changed no
        # weight would make two neighbours equal, which test 1 then reports.
        entries = _jsonl(record / "published.jsonl")
        assert [e["global_steps"] for e in entries] == list(range(len(entries))), [e["global_steps"] for e in entries]
        return [torch.load(record / "published" / f"{e['n']}.pt") for e in entries]
    return [torch.load(record / "published" / f"{e['n']}.pt") for e in _distinct_publications(record)]


def _recompute(model, state_dict, prompt_ids, response_ids, temperature):
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    # every parameter must be in the publication (only buffers may be absent from it)
    params = {n for n, _ in model.named_parameters()}
    assert not unexpected and not (set(missing) & params), (missing, unexpected)
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(response_ids)[:, None])[:, 0]


def test_samples_come_from_exactly_the_stamped_version(task, recorded):
    from transformers import AutoModelForCausalLM

    name, _, record, _ = recorded
    versions = _versions(name, record)
    assert len(versions) >= 3, f"{name}: the actor published {len(versions)} distinct versions"
    model = AutoModelForCausalLM.from_pretrained(task.model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    samples = _sampled(name, record)
    assert len(samples) >= 16, (name, len(samples))
    by_version = defaultdict(list)
    for s in samples:
        by_version[s["policy_version"]].append(s)
    assert set(by_version) <= set(range(len(versions))), (name, sorted(by_version))
    report = {}
    for v, group in sorted(by_version.items()):
        group = group[:24]  # enough to see a difference, cheap to recompute
        deltas = {}
        for u in (v - 1, v, v + 1):
            if not 0 <= u < len(versions):
                continue
            if u != v:  # distinct versions by construction (_versions dedupes identical publications)
                assert any(not torch.equal(versions[u][k], versions[v][k]) for k in versions[v]), (name, u, v)
            deltas[u] = max(
                float((_recompute(model, versions[u], s["prompt_ids"], s["response_ids"], s["temperature"])
                       - torch.tensor(s["log_probs"])).abs().max())
                for s in group
            )  # fmt: skip
        report[v] = deltas
        assert deltas[v] < LOGPROB_TOL, (name, v, deltas)
        for u, d in deltas.items():
            if u != v:
                assert d > NEIGHBOUR_MIN, (name, v, u, deltas)
    print(f"{name}: max |delta log-prob| per stamped version (at named version and neighbours): {report}")


def test_every_sync_delivers_every_tensor_of_the_stamped_version(recorded):
    name, _, record, _ = recorded
    if MECHANISMS[name][3] != "hf":
        pytest.skip("vLLM's model holds fused/repacked tensors; the log-prob check is the evidence (docstring, 2.)")
    published = [e["checksums"] for e in _distinct_publications(record)]
    syncs = _jsonl(record / "syncs_0.jsonl")
    assert len(syncs) >= 3
    for sync in syncs:
        got = {k: v for k, v in sync["checksums"].items() if not k.startswith("buffer:")}
        want = published[sync["policy_version"]]
        assert got == want, (name, sync["policy_version"], [k for k in want if got.get(k) != want[k]][:5])
        # buffers are not trained, so they never change (rotary frequencies): equal at every sync
        assert {k: v for k, v in sync["checksums"].items() if k.startswith("buffer:")} == {
            k: v for k, v in syncs[0]["checksums"].items() if k.startswith("buffer:")
        }


def _ground_truth_by_prompt_ids(task, tokenizer) -> dict[tuple[int, ...], str]:
    """The training set's ground truth per chat-templated prompt (the prompt ids verl's dataset builds)."""
    import pandas as pd

    out = {}
    for prompt, reward_model in pd.read_parquet(task.train_file)[["prompt", "reward_model"]].itertuples(index=False):
        ids = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        assert tuple(ids) not in out, "two prompts tokenize alike"
        out[tuple(ids)] = str(reward_model["ground_truth"])
    return out


def test_trained_responses_carry_their_version_score_and_group_advantage(task, recorded):
    from transformers import AutoTokenizer

    name, staleness, record, result = recorded
    tokenizer = AutoTokenizer.from_pretrained(task.model_dir)
    compute_score = task.compute_score if hasattr(task, "compute_score") else None
    if compute_score is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("task_reward", task.reward_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        compute_score = getattr(module, task.reward_name)
    stamps = {}
    for s in _sampled(name, record):
        stamps.setdefault((tuple(s["prompt_ids"]), tuple(s["response_ids"])), set()).add(s["policy_version"])
    rows = _jsonl(record / "batches.jsonl")
    if any(r["ground_truth"] is None for r in rows):  # fully async: the batch no longer has the dataset's columns
        truth = _ground_truth_by_prompt_ids(task, tokenizer)
        rows = [{**r, "ground_truth": truth[tuple(r["prompt_ids"])]} if r["ground_truth"] is None else r for r in rows]
    by_step = defaultdict(list)
    for r in rows:
        by_step[r["learner_version"]].append(r)
    stale_so_far = 0
    # fully async: verl logs a trainer step's metrics with the next step's sync (its aggregator is filled after
    # the log call), under that step's param version; the last step's are never logged. Found by training/global_step.
    fully_async_logged = {
        int(m["training/global_step"]): m
        for m in result.metrics.values()
        if "fully_async/count/stale_trajectory_processed" in m
    }
    for learner_version, batch in sorted(by_step.items()):
        if staleness is None:  # fully async: verl's own count of trajectories trained on behind the learner
            stale_so_far += sum(learner_version - r["policy_version"] >= 1 for r in batch)
            assert all(0 <= learner_version - r["policy_version"] for r in batch), (name, learner_version)
            logged = fully_async_logged.get(learner_version + 1)
            if logged is None:
                assert learner_version == max(by_step), (name, learner_version, sorted(fully_async_logged))
            else:
                assert logged["fully_async/count/current_param_version"] == learner_version, (name, learner_version)
                got = logged["fully_async/count/stale_trajectory_processed"]
                assert got == stale_so_far, (name, learner_version, got, stale_so_far)
        else:
            logged = result.metrics[learner_version + 1]["asympo/staleness/mean"]
            expected = sum(learner_version - r["policy_version"] for r in batch) / len(batch)
            assert logged == pytest.approx(expected), (name, learner_version)
        if staleness is not None and learner_version >= staleness:  # after the warm-up: exactly the staleness
            assert all(learner_version - r["policy_version"] == staleness for r in batch), (name, learner_version)
        groups = defaultdict(list)
        for r in batch:
            assert r["policy_version"] in stamps[(tuple(r["prompt_ids"]), tuple(r["response_ids"]))], (name, r)
            text = tokenizer.decode(r["response_ids"], skip_special_tokens=True)
            assert r["score"] == compute_score("asympo_task", text, r["ground_truth"]), (name, text, r["ground_truth"])
            groups[r["uid"]].append(r)
        for group in groups.values():
            scores = torch.tensor([r["score"] for r in group])
            want = (scores - scores.mean()) / (scores.std() + 1e-6) if len(group) > 1 else torch.zeros(1)
            got = torch.tensor([r["advantage"] for r in group])
            torch.testing.assert_close(got, want, atol=1e-4, rtol=0), (name, group)
            prompts = {tuple(r["prompt_ids"]) for r in group}
            assert len(prompts) == 1, f"{name}: a GRPO group mixes prompts"
    if staleness is None:  # the run must have trained on stale trajectories, or it proves nothing about them
        assert stale_so_far > 0, f"{name}: no trajectory was stale"
