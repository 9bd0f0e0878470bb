#!/usr/bin/env bash
# Prepare .gpu-carry/ (git-ignored) for bench/gpu_check.sh on the lent GPU machine: no internet,
# its own Python 3.12, torch, Lightning, torchmetrics, pytest, matplotlib, PyYAML, scikit-image
# and numpy (../shared/NOTES-gpu.md, /work/.library/device/KINDS.md). It lacks only what is
# carried here (about 29 MB in all, against 48 MB when Lightning, pytest, matplotlib and
# PyYAML wheels and the sample photos went along too). Needs PyPI here. Writes:
#   .gpu-carry/site/      the pure-Python packages it lacks, installed flat (for PYTHONPATH):
#                         hydra-core, omegaconf, antlr4 (the config), captum (RIG's captum
#                         interface), pyautoattack without its 45 MB example model (AutoAttack)
#   .gpu-carry/cifar10-jpeg.tar.gz   the CIFAR-10 copy
# wandb is not carried (its core is compiled): the check uses logger=csv, and src/ imports wandb
# only inside functions on the W&B paths. The launcher plugins are not needed (launcher=basic).
# Usage: bash bench/prepare_gpu_carry.sh [PYTHON]   (default .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
CARRY=.gpu-carry
rm -rf "$CARRY"
mkdir -p "$CARRY/site"

# Pure Python, same files on any Python 3: installed here, imported there.
"$PY" -m pip install -q --no-deps --no-compile --target "$CARRY/site" \
    hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 \
    captum==0.9.0 pyautoattack==0.2.0
rm -rf "$CARRY"/site/pyautoattack/examples "$CARRY"/site/bin
find "$CARRY/site" -name __pycache__ -prune -exec rm -rf {} +

if [ -f "$DATA" ]; then
    cp "$DATA" "$CARRY/"
else
    echo "warning: no CIFAR-10 copy at $DATA (set DATA=...): gpu_check.sh will need DATA" >&2
fi
du -sh "$CARRY" "$CARRY"/*
size=$(du -sm "$CARRY" | cut -f1)
if [ "$size" -ge 60 ]; then
    echo "error: $CARRY is ${size} MiB; the device carry allows 64 MiB with the work tree" >&2
    exit 1
fi
echo "ready: run on the device with carry=['.gpu-carry']: bash bench/gpu_check.sh"
