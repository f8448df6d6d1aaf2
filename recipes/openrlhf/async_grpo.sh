#!/usr/bin/env bash
# Async GRPO-style run of OpenRLHF 0.11.2 on one node of 8 GPUs (4 DeepSpeed actor ranks + 4 vLLM engines).
# Usage: recipes/openrlhf/async_grpo.sh {asympo|spo|ppo} {Qwen/Qwen3-1.7B-Base|Qwen/Qwen3-4B-Base} PROMPTS REWARD_PY
# NOT RUN on a GPU yet (this project had no GPU for it): the flags are OpenRLHF's own plus the plugin's.
set -euo pipefail
LOSS=${1:?asympo|spo|ppo}; MODEL=${2:?model}; PROMPTS=${3:?prompt dataset}; REWARD=${4:?reward function .py}
case "$LOSS" in
  asympo) LOSS_FLAGS=(--actor.policy_loss_type asympo --actor.asympo_eps 0.01) ;;  # loss_agg_mode defaults to seq-mean-token-mean
  spo) LOSS_FLAGS=(--actor.policy_loss_type spo --actor.spo_neg_scale 0.5 --actor.loss_agg_mode seq-mean-token-mean) ;;
  ppo) LOSS_FLAGS=(--actor.policy_loss_type ppo --actor.loss_agg_mode seq-mean-token-mean) ;;  # baseline: old-log-prob forward runs
  *) echo "unknown loss $LOSS" >&2; exit 2 ;;
esac
exec asympo-openrlhf "${LOSS_FLAGS[@]}" \
  --actor.model_name_or_path "$MODEL" --actor.num_nodes 1 --actor.num_gpus_per_node 4 \
  --vllm.num_engines 4 --vllm.tensor_parallel_size 1 --vllm.gpu_memory_utilization 0.8 \
  --train.async_enable \
  --algo.advantage.estimator group_norm --algo.kl.init_coef 0 \
  --rollout.n_samples_per_prompt 8 --rollout.batch_size 128 --rollout.micro_batch_size 8 \
  --train.batch_size 1024 --train.micro_batch_size 8 --rollout.max_new_tokens 2048 --data.max_len 4096 \
  --data.prompt_dataset "$PROMPTS" --data.input_key prompt --data.apply_chat_template \
  --reward.remote_url "$REWARD" \
  --actor.adam.lr 1e-6 --ds.zero_stage 2 --ds.param_dtype bf16 --actor.gradient_checkpointing_enable \
  --ckpt.output_dir "outputs/openrlhf-$LOSS-$(basename "$MODEL")" --logger.tensorboard_dir "runs/openrlhf-$LOSS-$(basename "$MODEL")"
