# Fully-async trainer check (docs/STUDY_METHOD.md, "Fully-async trainer check"): the command line of the
# matrix cell staleness2/asympo/seed$SEED, on verl's fully-async trainer instead of one-step-off with a
# 1-sync delay: staleness_threshold=1 (samples at most 2 versions old), trigger_parameter_sync_step=1,
# 16 prompts per trainer step, 150 trainer steps (2400 prompts). Run from the repository root, venv active:
#
#   export RAY_AUTH_MODE=disabled SEED=1 OUTDIR=$PWD/runs/fully_async/seed1
#   mkdir -p $OUTDIR && source docs/study/fully_async/argv.sh
#   python -m asympo_plugin.study.train --sync-delay 0 --save-config $OUTDIR/config.yaml "${ARGV[@]}"
#   asympo-compare compare runs/matrix150/staleness2/asympo/seed1 $OUTDIR
#
# The same command line now comes from the sweep (tests/test_study_matrix_on_cpu.py checks they are equal):
#   asympo-compare run --fully-async --methods asympo --staleness 2 --seeds 1,2,3 --steps 150 --lr 2e-4 --out runs/fully_async
: "${SEED:?set SEED}" "${OUTDIR:?set OUTDIR (absolute)}"
eval "$(python -c 'from asympo_plugin.task import prepare; t = prepare(log=lambda *a: None); print(f"T={t.root} REWARD={t.reward_path}")')"
ARGV=(
--pipeline=fully-async
algorithm.loss=asympo trainer.device=cpu algorithm.adv_estimator=grpo algorithm.use_kl_in_reward=False
data.train_files=$T/train.parquet data.val_files=$T/val.parquet
data.train_batch_size=0 data.gen_batch_size=1
data.max_prompt_length=40 data.max_response_length=16
actor_rollout_ref.model.path=$T/model actor_rollout_ref.model.enable_gradient_checkpointing=False
actor_rollout_ref.actor.optim.lr=0.0002 actor_rollout_ref.actor.ppo_mini_batch_size=16
actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=128 actor_rollout_ref.actor.use_kl_loss=False
actor_rollout_ref.actor.entropy_coeff=0 actor_rollout_ref.rollout.n=8
actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=128
reward.custom_reward_function.path=$REWARD
reward.custom_reward_function.name=compute_score
trainer.logger=[console,file] trainer.project_name=asympo-cpu trainer.experiment_name=fa_seed$SEED
trainer.total_epochs=1 trainer.total_training_steps=150 trainer.test_freq=10 trainer.save_freq=-1
trainer.default_local_dir=$OUTDIR/checkpoints trainer.resume_mode=disable
actor_rollout_ref.hybrid_engine=False actor_rollout_ref.rollout.name=hf
data.seed=$SEED actor_rollout_ref.actor.data_loader_seed=$SEED
"+ray_kwargs.ray_init.runtime_env.env_vars.ASYMPO_ROLLOUT_SEED='$SEED'"
trainer.val_before_train=False
+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH=$OUTDIR/metrics.jsonl
async_training.staleness_threshold=1 async_training.trigger_parameter_sync_step=1
async_training.require_batches=1 rollout.total_rollout_steps=2400
)
