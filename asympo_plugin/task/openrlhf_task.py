"""The built-in task in OpenRLHF's formats: a prompt dataset (jsonl) and a ``reward_func`` file.

OpenRLHF 0.11.2 reads prompts with ``--data.prompt_dataset FILE.jsonl --data.input_key prompt
--data.label_key label --data.apply_chat_template`` (``prompt`` as chat messages, as in verl's parquet) and
loads ``reward_func(queries, prompts, labels)`` from the ``.py`` file given as ``--reward.remote_url``
(``openrlhf/utils/agent.py``: ``query`` is the decoded prompt + response, special tokens kept, one sample per
call). The score is the task's own :func:`letters.compute_score` on the response text.

This file is that reward file: ``--reward.remote_url $(python -c 'import asympo_plugin.task.openrlhf_task as t;
print(t.__file__)')``. Importing it needs neither verl nor OpenRLHF (torch only when scoring).
"""

from __future__ import annotations

import json
from pathlib import Path

# Absolute imports: OpenRLHF executes this file by path (spec_from_file_location), outside its package.
from asympo_plugin.task import letters
from asympo_plugin.task.tokenizer import SPECIAL_TOKENS


def write_prompts(path: str | Path, n: int | None = None, split_name: str = "train") -> Path:
    """The task's ``split_name`` problems (the first ``n``) as OpenRLHF prompt rows, one json per line."""
    train, val = letters.split()
    pairs = (train if split_name == "train" else val)[:n]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:  # the verl rows' own prompt messages and ground truth
        for row in letters.to_verl_rows(pairs, split_name):
            f.write(json.dumps({"prompt": row["prompt"], "label": row["reward_model"]["ground_truth"]}) + "\n")
    return path


def response_text(query: str, prompt: str) -> str:
    """The response part of OpenRLHF's ``query`` (prompt + response, special tokens kept), special tokens
    removed: the text verl scores (``decode(response, skip_special_tokens=True)``)."""
    if not query.startswith(prompt):
        raise ValueError(f"reward_func: the query does not start with its prompt: {query[:80]!r} vs {prompt[:80]!r}")
    text = query[len(prompt) :]
    for token in SPECIAL_TOKENS:
        text = text.replace(token, "")
    return text


def reward_func(queries, prompts, labels):
    """OpenRLHF's custom reward: 1.0 for the exact answer, else 0.0 (the verl task's ``compute_score``)."""
    import torch

    scores = [
        letters.compute_score(letters.DATA_SOURCE, response_text(q, p), label)
        for q, p, label in zip(queries, prompts, labels, strict=True)
    ]
    rewards = torch.tensor(scores, dtype=torch.float32)
    return {"rewards": rewards, "scores": rewards, "extra_logs": {"task_score": rewards}}
