#!/usr/bin/env bash
# One-step-off asynchronous training, Megatron-core, ASymPO. Config: one_step_off_megatron.yaml.
#
#   SIZE=8b   (default; e.g. Qwen3-8B-Base)   2 nodes x 8 GPUs (80 GB):
#             trainer 8 GPUs = TP 4 x PP 1 x CP 2 (DP 1); rollout 8 GPUs = 4 vLLM replicas of TP 2
#   SIZE=32b  (e.g. Qwen2.5-32B / Qwen3-32B)  4 nodes x 8 GPUs (80 GB):
#             trainer 16 GPUs = TP 4 x PP 2 x CP 2 (DP 1); rollout 16 GPUs = 4 vLLM replicas of TP 4
#   MODEL_PATH=/path/to/local/hf/model   LOSS=asympo|spo|...
#
# Needs verl's Megatron stack on the GPU nodes (megatron-core, mbridge, TransformerEngine).
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

SIZE="${SIZE:-8b}"
case "$SIZE" in
  8b)  tp=4; pp=1; cp=2; train_nodes=1; rollout_nodes=1; rollout_tp=2; default_model=Qwen3-8B-Base ;;
  32b) tp=4; pp=2; cp=2; train_nodes=2; rollout_nodes=2; rollout_tp=4; default_model=Qwen3-32B ;;
  *) echo "SIZE=$SIZE: use 8b or 32b" >&2; exit 2 ;;
esac
MODEL_PATH="${MODEL_PATH:-$HOME/models/$default_model}"

launch one-step-off one_step_off_megatron \
  algorithm.loss="${LOSS:-asympo}" \
  actor_rollout_ref.model.path="$MODEL_PATH" \
  actor_rollout_ref.actor.megatron.tensor_model_parallel_size="$tp" \
  actor_rollout_ref.actor.megatron.pipeline_model_parallel_size="$pp" \
  actor_rollout_ref.actor.megatron.context_parallel_size="$cp" \
  actor_rollout_ref.ref.megatron.tensor_model_parallel_size="$tp" \
  actor_rollout_ref.ref.megatron.pipeline_model_parallel_size="$pp" \
  actor_rollout_ref.ref.megatron.context_parallel_size="$cp" \
  actor_rollout_ref.rollout.tensor_model_parallel_size="$rollout_tp" \
  trainer.nnodes="$train_nodes" trainer.n_gpus_per_node=8 \
  rollout.nnodes="$rollout_nodes" rollout.n_gpus_per_node=8 \
  trainer.experiment_name="one_step_off_megatron_${SIZE}_${LOSS:-asympo}" \
  "$@"
