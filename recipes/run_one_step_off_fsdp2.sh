#!/usr/bin/env bash
# One-step-off asynchronous training, FSDP2, ASymPO (behavior-free: no old-log-prob pass, no rollout
# log-probs). Config: one_step_off_fsdp2.yaml + math_common.yaml.
#
#   MODEL=qwen3-1.7b-base | qwen3-4b-base | llama3.2-3b-instruct     (default qwen3-1.7b-base)
#   MODEL_PATH=/path/to/local/model (default $HOME/models/<name>)     LOSS=asympo|spo|... (default asympo)
#
# GPUs: 1 node x 8 GPUs (80 GB, e.g. H100): 4 train the model (FSDP2), 4 serve vLLM rollouts (TP=1).
#   MODEL=qwen3-4b-base DATA_DIR=~/data/asympo_math bash recipes/run_one_step_off_fsdp2.sh trainer.logger=[console,wandb]
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

MODEL="${MODEL:-qwen3-1.7b-base}"
case "$MODEL" in
  qwen3-1.7b-base)      name=Qwen3-1.7B-Base;       max_tokens=24576 ;;
  qwen3-4b-base)        name=Qwen3-4B-Base;         max_tokens=16384 ;;
  llama3.2-3b-instruct) name=Llama-3.2-3B-Instruct; max_tokens=16384 ;;
  *) echo "MODEL=$MODEL: use qwen3-1.7b-base, qwen3-4b-base or llama3.2-3b-instruct" >&2; exit 2 ;;
esac
MODEL_PATH="${MODEL_PATH:-$HOME/models/$name}"

launch one-step-off one_step_off_fsdp2 \
  algorithm.loss="${LOSS:-asympo}" \
  actor_rollout_ref.model.path="$MODEL_PATH" \
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$max_tokens" \
  trainer.experiment_name="one_step_off_fsdp2_${MODEL}_${LOSS:-asympo}" \
  "$@"
