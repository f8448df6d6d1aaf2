#!/usr/bin/env bash
# Fully asynchronous training with a staleness bound, FSDP2, ASymPO. Config: fully_async_fsdp2.yaml.
#
#   STALENESS_K=2   trained samples are at most about K policy versions old (default 2; 1 is
#                   one-step-off-like); sets async_training.staleness_threshold=K-1
#   MODEL_PATH=...  (default $HOME/models/Qwen3-1.7B-Base)   LOSS=asympo|spo|...
#
# GPUs: 1 node x 8 GPUs (80 GB): 4 trainer (FSDP2), 4 vLLM rollout.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

STALENESS_K="${STALENESS_K:-2}"
if ! [[ "$STALENESS_K" =~ ^[1-9][0-9]*$ ]]; then
  echo "STALENESS_K=$STALENESS_K: a whole number of policy versions >= 1" >&2
  exit 2
fi

launch fully-async fully_async_fsdp2 \
  algorithm.loss="${LOSS:-asympo}" \
  actor_rollout_ref.model.path="${MODEL_PATH:-$HOME/models/Qwen3-1.7B-Base}" \
  async_training.staleness_threshold="$((STALENESS_K - 1))" \
  trainer.experiment_name="fully_async_k${STALENESS_K}_${LOSS:-asympo}" \
  "$@"
