"""Build (once) and cache the task data, tokenizer and warm-started model.

The cache key is a version string plus the task seed, so changing the task or the model recipe
builds a fresh directory instead of reusing a stale one. Building takes well under a minute on
2 cores; a cached call only checks that the files exist.
"""

from __future__ import annotations

import hashlib
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

    def identity(self) -> dict:
        """What a run's result depends on in this cache: the recipe and the warm-started weights.

        The warm start stops adaptively (:func:`model.warm_start`), so two machines can build
        different models under the same cache name; a study marker stores this, and a sweep
        refuses to count a run made on another model as finished (``study/runner.is_finished``).
        """
        return {
            "recipe": RECIPE_KEY,
            "warm_start_steps": self.info.get("warm_start_steps"),
            "weights_sha256": self.info.get("weights_sha256"),
        }


RECIPE_KEY = f"{letters.VERSION}-{RECIPE_VERSION}-seed{letters.SEED}"


def weights_sha256(model_dir: Path) -> str:
    """The first 16 hex digits of the SHA-256 of the saved weights (``model.safetensors``, ~2 MB)."""
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("ASYMPO_CACHE_DIR", Path.home() / ".cache" / "asympo-plugin")).expanduser()


def prepare(cache_dir: str | os.PathLike | None = None, log=print) -> TaskArtifacts:
    """Return the task's files, building them under ``cache_dir`` if absent."""
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    root = root / RECIPE_KEY
    done = root / "DONE.json"
    if not done.exists():
        _build(root, log)
    info = json.loads(done.read_text())
    if "weights_sha256" not in info:  # a cache built before the hash was recorded
        info["weights_sha256"] = weights_sha256(root / "model")
    return TaskArtifacts(
        root=root,
        model_dir=root / "model",
        train_file=root / "train.parquet",
        val_file=root / "val.parquet",
        reward_path=letters.__file__,
        reward_name="compute_score",
        info=info,
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
    info["weights_sha256"] = weights_sha256(tmp / "model")
    (tmp / "DONE.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log(f"asympo-plugin: task ready: {info}")
