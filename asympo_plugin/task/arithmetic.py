"""The task: add two small integers (``"12+7="`` -> ``"19"``), and its verifiable reward.

Deterministic: the problem list is every pair ``(a, b)`` with ``0 <= a, b <= MAX_OPERAND``,
shuffled with a fixed seed and split into train and held-out validation prompts. A tiny model
cannot do arithmetic, but it can memorise a 100-entry table, which a short supervised warm start
begins and RL then sharpens: that is the learning signal the demo shows.

``compute_score`` is what verl calls (``reward.custom_reward_function.{path,name}``): 1.0 for the
exact answer (surrounding whitespace ignored), else 0.0.
"""

from __future__ import annotations

import random

MAX_OPERAND = 9
SEED = 1234
VAL_FRACTION = 0.2
DATA_SOURCE = "asympo/arithmetic"


def problems(seed: int = SEED) -> list[tuple[str, str]]:
    """All ``(prompt, answer)`` pairs in a fixed, seeded order."""
    pairs = [(f"{a}+{b}=", str(a + b)) for a in range(MAX_OPERAND + 1) for b in range(MAX_OPERAND + 1)]
    random.Random(seed).shuffle(pairs)
    return pairs


def split(seed: int = SEED) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(train, val)``: the first ``VAL_FRACTION`` of the shuffled problems are held out."""
    pairs = problems(seed)
    n_val = int(len(pairs) * VAL_FRACTION)
    return pairs[n_val:], pairs[:n_val]


def to_verl_rows(pairs: list[tuple[str, str]], split_name: str) -> list[dict]:
    """Rows in verl's RL parquet schema (``prompt`` as chat messages, ``reward_model.ground_truth``)."""
    return [
        {
            "data_source": DATA_SOURCE,
            "prompt": [{"role": "user", "content": prompt}],
            "ability": "arithmetic",
            "reward_model": {"style": "rule", "ground_truth": answer},
            "extra_info": {"split": split_name, "index": i},
        }
        for i, (prompt, answer) in enumerate(pairs)
    ]


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """1.0 if the decoded response is exactly the answer (whitespace-stripped), else 0.0."""
    return 1.0 if solution_str.strip() == str(ground_truth).strip() else 0.0
