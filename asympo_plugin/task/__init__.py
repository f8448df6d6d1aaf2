"""A built-in RL task and model that need no network: the CPU demo and the CPU tests train on them.

* ``letters.py``: the task (spell a digit string in letters, ``3071`` -> ``dahb``), its verl parquet files and the
  verifiable reward ``compute_score`` (loaded by verl through ``reward.custom_reward_function``).
* ``tokenizer.py``: a character-level tokenizer with a ChatML chat template, built with ``tokenizers``.
* ``model.py``: a tiny random-init Qwen2-style causal LM and a short supervised warm start, so the
  first RL rewards are neither all 0 nor all 1.

:func:`prepare` builds everything once and caches it under ``cache_dir`` (default
``$ASYMPO_CACHE_DIR`` or ``~/.cache/asympo-plugin``); later calls only check the files exist.
"""

from .prepare import TaskArtifacts, default_cache_dir, prepare

__all__ = ["TaskArtifacts", "default_cache_dir", "prepare"]
