#!/usr/bin/env bash
# Prepare .gpu-carry/ (git-ignored) for bench/gpu_check.sh on a GPU machine without internet whose
# Python (3.12) and torch differ from this venv and lack hydra, omegaconf, antlr4, captum and
# pyautoattack. Needs PyPI here. Writes:
#   .gpu-carry/site/      pure-Python packages the run needs, installed flat (for PYTHONPATH);
#                         pyautoattack without its 45 MB example model
#   .gpu-carry/wheels/    fallbacks installed there only if missing (Lightning, pytest, tqdm,
#                         matplotlib and PyYAML for CPython 3.12 manylinux)
#   .gpu-carry/cifar10-jpeg.tar.gz   the CIFAR-10 copy
# wandb is not carried (its core is compiled): the check uses logger=csv, and src/ imports wandb
# only inside functions on the W&B paths.
# Usage: bash bench/prepare_gpu_carry.sh [PYTHON]   (default .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
CARRY=.gpu-carry
rm -rf "$CARRY"
mkdir -p "$CARRY/site" "$CARRY/wheels"

# Pure Python, same files on any Python 3: installed here, imported there.
"$PY" -m pip install -q --no-deps --no-compile --target "$CARRY/site" \
    hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 \
    captum==0.9.0 pyautoattack==0.2.0 \
    hydra-joblib-launcher==1.2.0 hydra-submitit-launcher==1.2.0 submitit==1.5.4 joblib==1.6.0 \
    cloudpickle==3.1.3
rm -rf "$CARRY"/site/pyautoattack/examples "$CARRY"/site/bin
find "$CARRY/site" -name __pycache__ -prune -exec rm -rf {} +

# Fallbacks, only installed where the device lacks them (pure wheels, then CPython 3.12 ones).
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d "$CARRY/wheels" \
    pytorch-lightning==2.6.6 torchmetrics==1.9.0 lightning-utilities==0.15.3 \
    pytest==9.0.3 pluggy iniconfig tqdm==4.70.1 \
    cycler==0.12.1 pyparsing==3.3.3 python-dateutil==4.0.0 six
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --abi cp312 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$CARRY/wheels" \
    matplotlib==3.11.2 contourpy==1.3.3 kiwisolver==1.5.1 fonttools==4.68.0 PyYAML==6.0.4

# the real 224x224 photos bench_svd.py uses (scikit-image is not on the device)
PYTHONPATH=src "$PY" -c "from rankrobust.data.photos import save_photos; save_photos('$CARRY/photos.npz')"

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
