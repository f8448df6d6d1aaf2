#!/usr/bin/env bash
# Turn a local math dataset file into verl's parquet files (no hub access at run time).
#
#   bash recipes/prepare_math_data.sh INPUT_FILE [extra data_prep options]
#
#   INPUT_FILE  local .jsonl/.json/.parquet/.csv with a question and an answer per row
#               (MATH: --question-key problem --solution-key solution; GSM8K: --question-key
#               question --answer-key answer; DeepScaleR/DAPO: --question-key problem --answer-key answer)
#   DATA_DIR    output folder (default $HOME/data/asympo_math): train.parquet, test.parquet
#
# Runs on a CPU; the reward (asympo_plugin/verl/math_reward.py) needs `pip install math-verify==0.9.0`.
set -euo pipefail
INPUT="${1:?usage: prepare_math_data.sh INPUT_FILE [--question-key K --answer-key K --test-size N ...]}"
shift
exec "${PYTHON:-python}" -m asympo_plugin.verl.data_prep --input "$INPUT" --output-dir "${DATA_DIR:-$HOME/data/asympo_math}" "$@"
