"""Write verl's RL parquet files from a local math dataset file (no hub access at run time).

Input: one local file of problems with reference answers, ``.jsonl``/``.json``/``.parquet``/``.csv``
(e.g. a downloaded copy of MATH, GSM8K, DAPO-Math or DeepScaleR). Each row needs a question and an
answer; the column names are options. If there is no short answer column, the answer is taken
from the last ``\\boxed{...}`` of a worked solution (MATH's ``solution``) or after ``####`` (GSM8K).

Output: ``train.parquet`` and ``test.parquet`` with the columns verl's ``RLHFDataset`` and reward
managers read::

    data_source   str    the --data-source name (logged per source in validation metrics)
    prompt        list   chat messages: [{"role": "user", "content": question + instruction}]
    ability       str    "math"
    reward_model  dict   {"style": "rule", "ground_truth": answer}   (read by asympo_plugin.verl.math_reward)
    extra_info    dict   {"split", "index", "question"}

Usage::

    python -m asympo_plugin.verl.data_prep --input /data/math/train.jsonl --output-dir ~/data/asympo_math \\
        --question-key problem --answer-key answer --test-size 500
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys

INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."


class DataPrepError(ValueError):
    """The input file cannot be turned into training rows; the message says why and what to pass."""


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced; None if absent."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j].strip()
    return None


def extract_answer(row: dict, answer_key: str, solution_key: str) -> str | None:
    """The reference answer of a row: the answer column, else the solution's last box or GSM8K's ``####``."""
    answer = row.get(answer_key)
    if answer is not None and str(answer).strip():
        answer = str(answer).strip()
        return last_boxed(answer) or answer.split("####")[-1].strip()
    solution = row.get(solution_key)
    if solution is None:
        return None
    solution = str(solution)
    boxed = last_boxed(solution)
    if boxed:
        return boxed
    match = re.search(r"####\s*(.+)\s*$", solution)
    return match.group(1).strip().replace(",", "") if match else None


def read_rows(path: str) -> list[dict]:
    """All rows of a local .jsonl/.json/.parquet/.csv file as dicts."""
    if not os.path.isfile(path):
        raise DataPrepError(f"--input {path} is not a file; download the dataset once and pass the local file")
    ext = path.rsplit(".", 1)[-1].lower()
    if ext == "jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if ext == "json":
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, list) else data.get("data", [])
    if ext in ("parquet", "csv"):
        import pandas as pd

        frame = pd.read_parquet(path) if ext == "parquet" else pd.read_csv(path)
        return frame.to_dict(orient="records")
    raise DataPrepError(f"--input {path}: unsupported extension .{ext}; use .jsonl, .json, .parquet or .csv")


def to_verl_rows(
    rows: list[dict], *, data_source: str, question_key: str, answer_key: str, solution_key: str, split: str
) -> list[dict]:
    out = []
    for index, row in enumerate(rows):
        question = row.get(question_key)
        answer = extract_answer(row, answer_key, solution_key)
        if not question or not answer:
            continue  # counted by the caller
        out.append(
            {
                "data_source": data_source,
                "prompt": [{"role": "user", "content": f"{str(question).strip()} {INSTRUCTION}"}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": answer},
                "extra_info": {"split": split, "index": index, "question": str(question)},
            }
        )
    return out


def prepare(
    input_path: str,
    output_dir: str,
    *,
    test_input: str | None = None,
    test_size: int = 500,
    data_source: str = "math",
    question_key: str = "problem",
    answer_key: str = "answer",
    solution_key: str = "solution",
    seed: int = 0,
) -> dict[str, int]:
    """Write ``train.parquet`` and ``test.parquet`` into ``output_dir``; return the row counts."""
    import pandas as pd

    keys = dict(data_source=data_source, question_key=question_key, answer_key=answer_key, solution_key=solution_key)
    rows = read_rows(input_path)
    if test_input:
        train_raw, test_raw = rows, read_rows(test_input)
    else:
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        test_raw, train_raw = shuffled[:test_size], shuffled[test_size:]
    train = to_verl_rows(train_raw, split="train", **keys)
    test = to_verl_rows(test_raw, split="test", **keys)
    if not train:
        sample = sorted(rows[0]) if rows else []
        raise DataPrepError(
            f"no usable rows in {input_path}: each needs --question-key '{question_key}' and an answer in "
            f"--answer-key '{answer_key}' or a boxed/#### answer in --solution-key '{solution_key}'. "
            f"The first row has keys {sample}."
        )
    if not test:
        raise DataPrepError(f"no usable test rows: pass --test-input or a --test-size below {len(rows)}")
    os.makedirs(output_dir, exist_ok=True)
    pd.DataFrame(train).to_parquet(os.path.join(output_dir, "train.parquet"))
    pd.DataFrame(test).to_parquet(os.path.join(output_dir, "test.parquet"))
    return {"train": len(train), "test": len(test), "skipped": len(train_raw) + len(test_raw) - len(train) - len(test)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asympo_plugin.verl.data_prep", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="local .jsonl/.json/.parquet/.csv with problems and answers")
    parser.add_argument("--test-input", help="separate local test file (default: hold out --test-size rows)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--data-source", default="math")
    parser.add_argument("--question-key", default="problem")
    parser.add_argument("--answer-key", default="answer")
    parser.add_argument("--solution-key", default="solution")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        counts = prepare(
            args.input,
            os.path.expanduser(args.output_dir),
            test_input=args.test_input,
            test_size=args.test_size,
            data_source=args.data_source,
            question_key=args.question_key,
            answer_key=args.answer_key,
            solution_key=args.solution_key,
            seed=args.seed,
        )
    except DataPrepError as e:
        print(f"data_prep: error: {e}", file=sys.stderr)
        return 2
    print(
        f"data_prep: wrote {counts['train']} train / {counts['test']} test rows to {args.output_dir} "
        f"({counts['skipped']} rows without question or answer skipped)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
