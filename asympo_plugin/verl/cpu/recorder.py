"""Evidence recorder for CPU runs: what the pipeline really sampled, synced and trained on.

Enabled only by ``ASYMPO_RECORD_DIR`` in a CPU run (``trainer.device=cpu``; the CPU backend forwards the
variable to every Ray worker). It writes, under that directory:

* ``published/<n>.pt``: the full state dict of the ``n``-th weight publication by the actor (CPU checkpoint
  engine, rank 0), and ``published.jsonl``: ``{"n", "global_steps", "checksums"}`` per publication;
* ``syncs_<replica>.jsonl``: after every weight update a rollout server received, per-tensor checksums of every
  parameter and buffer of the rollout model, and the policy version the server now stamps;
* ``samples_<replica>.jsonl``: every sampled response: prompt ids, response ids, the per-token log-probs of the
  sampling distribution, the stamped ``policy_version``;
* ``batches.jsonl``: every training batch, at the point the staleness metric is computed: per response its uid,
  prompt and response ids, policy version, score, advantage and ground truth, with the learner version, and
  the rollout's own per-token log-probs where the batch carries them (``rollout_log_probs``: vLLM with
  ``rollout.calculate_log_probs=True``; vLLM's engine runs in its own process, so this is where its
  log-probs are recorded).

``tests/test_staleness_proof_on_cpu.py`` recomputes the log-probs under the checkpoint of the version the
staleness metric names and checks the rest against the task's own reward and verl's GRPO advantage.
Nothing of this runs, or is imported, without the variable.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

ENV = "ASYMPO_RECORD_DIR"


def directory() -> Path | None:
    path = os.environ.get(ENV)
    return Path(path) if path else None


def checksum(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().to("cpu").contiguous().float().numpy().tobytes()).hexdigest()[:16]


def _append(name: str, record: dict) -> None:
    root = directory()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / name, "a") as f:
        f.write(json.dumps(record) + "\n")


def published(state_dict: dict[str, torch.Tensor], global_steps) -> None:
    """The actor's publication (rank 0 of the CPU checkpoint engine)."""
    root = directory()
    (root / "published").mkdir(parents=True, exist_ok=True)
    n = len(list((root / "published").glob("*.pt")))
    torch.save(state_dict, root / "published" / f"{n}.pt")
    _append("published.jsonl", {"n": n, "global_steps": global_steps, "checksums": _checksums(state_dict.items())})


def _checksums(items) -> dict[str, str]:
    return {name: checksum(t) for name, t in items}


def synced(model, replica_rank: int, policy_version, global_steps) -> None:
    """The rollout model right after a weight update: every parameter and buffer."""
    items = list(model.named_parameters()) + [(f"buffer:{n}", b) for n, b in model.named_buffers()]
    _append(
        f"syncs_{replica_rank}.jsonl",
        {"policy_version": policy_version, "global_steps": global_steps, "checksums": _checksums(items)},
    )


def sampled(replica_rank: int, prompt_ids, token_ids, log_probs, policy_version, temperature) -> None:
    _append(
        f"samples_{replica_rank}.jsonl",
        {
            "prompt_ids": list(map(int, prompt_ids)),
            "response_ids": list(map(int, token_ids)),
            "log_probs": list(map(float, log_probs)),
            "policy_version": policy_version,
            "temperature": float(temperature),
        },
    )


def trained(batch, learner_version: int, policy_versions=None, first_policy_versions=None) -> None:
    """One training batch (a verl ``DataProto``) as the trainer is about to update on it.

    ``policy_versions`` (per response) default to the batch's ``policy_version``; ``first_policy_versions``, where
    given, is the version each response's generation started at (fully async: ``min_global_steps``).
    """
    td, nt = batch.batch, batch.non_tensor_batch
    if policy_versions is None:
        policy_versions = nt.get("policy_version")
    responses, prompts = td["responses"], td["prompts"]
    response_mask = td["response_mask"].bool()
    prompt_mask = td["attention_mask"][:, : prompts.shape[1]].bool()
    scores = td["token_level_scores"].sum(-1)
    advantages = td["advantages"]
    rollout_log_probs = td["rollout_log_probs"] if "rollout_log_probs" in td.keys() else None
    for i in range(responses.shape[0]):
        valid = response_mask[i]
        _append(
            "batches.jsonl",
            {
                "learner_version": learner_version,
                "uid": str(nt["uid"][i]),
                "prompt_ids": prompts[i][prompt_mask[i]].tolist(),
                "response_ids": responses[i][valid].tolist(),
                "policy_version": None if policy_versions is None else _plain_int(policy_versions[i]),
                "first_policy_version": None if first_policy_versions is None else _plain_int(first_policy_versions[i]),
                "score": float(scores[i]),
                "advantage": float(advantages[i][valid][0]) if valid.any() else 0.0,
                # None where the batch has no reward_model column (fully async: verl's agent loop scores the
                # response itself and returns a new batch without the dataset's columns)
                "ground_truth": str(nt["reward_model"][i]["ground_truth"]) if "reward_model" in nt else None,
                "rollout_log_probs": None if rollout_log_probs is None else rollout_log_probs[i][valid].tolist(),
            },
        )


def _plain_int(value):
    return None if value is None else int(value)
