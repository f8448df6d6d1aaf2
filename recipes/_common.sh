# Sourced by the launch scripts. Every recipe runs through asympo-train (algorithm.loss=..., verl's
# Hydra overrides); extra arguments to a script are passed on as overrides.
#
#   DATA_DIR      folder with train.parquet and test.parquet (recipes/prepare_math_data.sh writes them)
#   MODEL_PATH    local Hugging Face model folder (no hub access needed at run time)
#   DRY_RUN=1     compose, validate and print the resolved config; start nothing
#   ASYMPO_TRAIN  the launcher command (default: asympo-train)
#
# Multi-node: start a Ray cluster first (ray start --head on one node, ray start --address=... on
# the others) and run the script on the head node.

set -euo pipefail
RECIPES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA_DIR="${DATA_DIR:-$HOME/data/asympo_math}"
ASYMPO_TRAIN="${ASYMPO_TRAIN:-asympo-train}"

# launch PIPELINE CONFIG_NAME [overrides...]
launch() {
  local pipeline="$1" config_name="$2"
  shift 2
  # shellcheck disable=SC2086  # ASYMPO_TRAIN may be a command with arguments
  $ASYMPO_TRAIN ${DRY_RUN:+--dry-run} --pipeline "$pipeline" \
    --config-path "$RECIPES_DIR" --config-name "$config_name" \
    data.train_files="$DATA_DIR/train.parquet" data.val_files="$DATA_DIR/test.parquet" \
    "$@"
}
