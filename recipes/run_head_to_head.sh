#!/usr/bin/env bash
# The head-to-head matrix: one recipe (head_to_head.yaml + math_common.yaml), one loss per run,
# identical in every setting that is not about the loss.
#
#   bash recipes/run_head_to_head.sh VARIANT [overrides...]
#
#   asympo         ASymPO                      behavior-free, one-step-off
#   spo            SPO (fixed negative scale)  behavior-free, one-step-off
#   naive          gpg loss + GRPO advantages  behavior-free, one-step-off (the collapse the paper describes)
#   gpg            gpg loss + GPG advantages   behavior-free, one-step-off
#   ppo_bypass     PPO-clip, rollout log-probs as old log-probs (verl's one-step-off default)
#   ppo_recompute  PPO-clip, old log-probs recomputed by the actor
#   grpo_sync      synchronous on-policy GRPO (PPO-clip), verl's default trainer
#
# GPUs: 1 node x 8 GPUs (80 GB): 4 trainer + 4 rollout; grpo_sync colocates both on all 8.
# MODEL_PATH (default $HOME/models/Qwen3-1.7B-Base), SEED (default 1) apply to every variant.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

VARIANT="${1:?usage: run_head_to_head.sh asympo|spo|naive|gpg|ppo_bypass|ppo_recompute|grpo_sync [overrides...]}"
shift
pipeline=one-step-off
config=head_to_head
case "$VARIANT" in
  asympo)        loss=(algorithm.loss=asympo) ;;
  spo)           loss=(algorithm.loss=spo) ;;
  naive)         loss=(algorithm.loss=gpg algorithm.adv_estimator=grpo) ;;
  gpg)           loss=(algorithm.loss=gpg algorithm.adv_estimator=gpg) ;;
  ppo_bypass)    loss=(algorithm.loss=vanilla algorithm.rollout_correction.bypass_mode=true
                       actor_rollout_ref.rollout.calculate_log_probs=true) ;;
  ppo_recompute) loss=(algorithm.loss=vanilla algorithm.rollout_correction.bypass_mode=false
                       actor_rollout_ref.rollout.calculate_log_probs=false) ;;
  grpo_sync)     loss=(algorithm.loss=vanilla actor_rollout_ref.rollout.calculate_log_probs=false)
                 pipeline=sync; config=head_to_head_sync ;;
  *) echo "unknown VARIANT=$VARIANT; see the header of $0" >&2; exit 2 ;;
esac

launch "$pipeline" "$config" \
  "${loss[@]}" \
  actor_rollout_ref.model.path="${MODEL_PATH:-$HOME/models/Qwen3-1.7B-Base}" \
  actor_rollout_ref.actor.data_loader_seed="${SEED:-1}" data.seed="${SEED:-1}" \
  trainer.experiment_name="head_to_head_${VARIANT}_seed${SEED:-1}" \
  "$@"
