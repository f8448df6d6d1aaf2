"""Build (once) and cache the task data, tokenizer and warm-started model.

The cache key is a version string plus the task seed, so changing the task or the model recipe
builds a fresh directory instead of reusing a stale one. Building takes well under a minute on
2 cores; a cached call only checks that the files exist.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import letters

RECIPE_VERSION = "v6"  # the model recipe; the task's own version is letters.VERSION
WARM_START_MAX_STEPS = 2000


@dataclass(frozen=True)
class TaskArtifacts:
    root: Path
    model_dir: Path
    train_file: Path
    val_file: Path
    reward_path: str  # reward.custom_reward_function.path
    reward_name: str  # reward.custom_reward_function.name
    info: dict


def default_cache_dir() -> Path:
    return Path(os.environ.get("ASYMPO_CACHE_DIR", Path.home() / ".cache" / "asympo-plugin")).expanduser()


def prepare(cache_dir: str | os.PathLike | None = None, log=print) -> TaskArtifacts:
    """Return the task's files, building them under ``cache_dir`` if absent."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    root = root / f"{letters.VERSION}-{RECIPE_VERSION}-seed{letters.SEED}"
    done = root / "DONE.json"
    if not done.exists():
        _build(root, log)
    return TaskArtifacts(
        root=root,
        model_dir=root / "model",
        train_file=root / "train.parquet",
        val_file=root / "val.parquet",
        reward_path=letters.__file__,
        reward_name="compute_score",
        info=json.loads(done.read_text()),
    )


def _build(root: Path, log) -> None:
    import pandas as pd

    from .model import build_model, rates, warm_start
    from .tokenizer import build_tokenizer

    log(f"asympo-plugin: building the letters task and tiny model in {root} (once) ...")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    train, val = letters.split()
    pd.DataFrame(letters.to_verl_rows(train, "train")).to_parquet(tmp / "train.parquet")
    pd.DataFrame(letters.to_verl_rows(val, "val")).to_parquet(tmp / "val.parquet")

    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed=letters.SEED)
    info = warm_start(model, tokenizer, train, WARM_START_MAX_STEPS, seed=letters.SEED, log=log)
    info["val_sampled"] = rates(model, tokenizer, val, greedy=False, seed=1)
    info["val_greedy"] = rates(model, tokenizer, val, greedy=True)
    info["n_params"] = sum(p.numel() for p in model.parameters())
    info["n_train"], info["n_val"] = len(train), len(val)
    model.save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "model")
    model.generation_config.save_pretrained(tmp / "model")
    (tmp / "DONE.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log(f"asympo-plugin: task ready: {info}")
