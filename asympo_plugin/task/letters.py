"""The task: spell a digit string in letters, one letter per digit (``"3071"`` -> ``"dahb"``), and its reward.

Why this task: the answer's length follows the prompt's (3 to 10 digits, so a response is 4 to 11
tokens with the turn end), so responses in one batch differ in length and in confidence. It is
solved by one rule applied to every digit, not by a table of prompts: validation strings are drawn
from the same distribution and never trained on (disjoint by construction).

Why RL has something to learn: the warm start (``model.warm_start``) is supervised on a *mixture*:
:data:`WARM_START_RIGHT` of its answers follow the rule, the rest a competing habit, the
:func:`distractor` (the same digits spelled from ``k`` on: ``"3071"`` -> ``"nkrl"``). The model
leaves it able to run both rules and preferring the wrong one, so about a quarter of its sampled
answers are right and its greedy answers are almost all wrong. Exact-match reward then has to move
probability from one whole-response behaviour to the other, on prompts it has never seen too: the
way RL post-training mostly selects what a pretrained model can already do. docs/TASK.md has the
measured curves.

``compute_score`` is what verl calls (``reward.custom_reward_function.{path,name}``): 1.0 for the
exact answer (surrounding whitespace ignored), else 0.0.
"""

from __future__ import annotations

import random

MIN_DIGITS, MAX_DIGITS = 3, 10
N_TRAIN, N_VAL = 4096, 128
SEED = 1234
DATA_SOURCE = "asympo/letters"
VERSION = "letters-2"  # part of the cache key: change it when the data, the rule or the warm start changes
WARM_START_RIGHT = 0.25  # fraction of warm-start answers that follow the rule (the rest: the distractor)


def answer(digits: str) -> str:
    """The rule: digit ``d`` -> the ``d``-th letter from ``a``."""
    return "".join(chr(ord("a") + int(d)) for d in digits)


def distractor(digits: str) -> str:
    """The warm start's competing habit: digit ``d`` -> the ``d``-th letter from ``k`` (never rewarded)."""
    return "".join(chr(ord("k") + int(d)) for d in digits)


def problems(n: int, rng: random.Random, exclude: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, str]]:
    """``n`` distinct ``(prompt, answer)`` pairs, lengths uniform in ``[MIN_DIGITS, MAX_DIGITS]``."""
    out: dict[str, str] = {}
    while len(out) < n:
        length = rng.randint(MIN_DIGITS, MAX_DIGITS)
        digits = "".join(rng.choice("0123456789") for _ in range(length))
        if digits not in exclude and digits not in out:
            out[digits] = answer(digits)
    return list(out.items())


def split(seed: int = SEED) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(train, val)``: disjoint, seeded."""
    rng = random.Random(seed)
    val = problems(N_VAL, rng)
    train = problems(N_TRAIN, rng, exclude={p for p, _ in val})
    return train, val


def to_verl_rows(pairs: list[tuple[str, str]], split_name: str) -> list[dict]:
    """Rows in verl's RL parquet schema (``prompt`` as chat messages, ``reward_model.ground_truth``)."""
    return [
        {
            "data_source": DATA_SOURCE,
            "prompt": [{"role": "user", "content": prompt}],
            "ability": "spelling",
            "reward_model": {"style": "rule", "ground_truth": target},
            "extra_info": {"split": split_name, "index": i},
        }
        for i, (prompt, target) in enumerate(pairs)
    ]


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """1.0 if the decoded response is exactly the answer (whitespace-stripped), else 0.0."""
    return 1.0 if solution_str.strip() == str(ground_truth).strip() else 0.0
