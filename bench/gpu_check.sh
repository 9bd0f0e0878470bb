#!/usr/bin/env bash
# The GPU check (one GPU, <= 8 minutes, from the repo root): the GPU tests, PreActResNet-18
# natural (12 epochs) and FGSM-RS (eps 8/255, 15 epochs) on the CIFAR-10 copy with PGD-20, the
# rank sweep and RIG, then the benchmarks; ends with one table of figures and the card's name.
#
# Made for a machine without internet whose Python / torch / Lightning are its own: run
# bench/prepare_gpu_carry.sh first and carry .gpu-carry/ along. Its pure-Python packages go on
# PYTHONPATH; its fallback wheels are installed (--no-deps --target) only where the device lacks
# the distribution, so the device's own Lightning (whatever version) is used when present.
# wandb is not needed: logger=csv.
#
# Usage: bash bench/gpu_check.sh [--cpu-dry-run]
#   --cpu-dry-run: the same stages on the CPU with tiny sizes (trainer=cpu with bf16-mixed and
#   channels_last, small_cnn, RANKROBUST_TEST_DEVICE=cpu for tests/test_gpu.py): checks the
#   script, the carry and the overrides where no GPU is.
# Environment: PYTHON (default python3, or .venv/bin/python for the dry run), DATA (default
# .gpu-carry/cifar10-jpeg.tar.gz, else ../shared/data/...), GPU_CHECK_OUT or OUT (the folder the
# device run hands back; default outputs/gpu_check), GPU_CHECK_BUDGET_S (default 480).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0
[ "${1:-}" = "--cpu-dry-run" ] && DRY=1
CARRY=$ROOT/.gpu-carry
OUT_DIR=$(realpath -m "${GPU_CHECK_OUT:-${OUT:-outputs/gpu_check}}")
BUDGET=${GPU_CHECK_BUDGET_S:-480}
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ "$DRY" = 1 ] && [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
DATA=${DATA:-}
for d in "$CARRY/cifar10-jpeg.tar.gz" ../shared/data/cifar10-jpeg.tar.gz; do
    [ -z "$DATA" ] && [ -f "$d" ] && DATA=$(realpath "$d")
done
[ -n "$DATA" ] || { echo "no CIFAR-10 copy: set DATA=... (see prepare_gpu_carry.sh)" >&2; exit 2; }
mkdir -p "$OUT_DIR/logs" "$OUT_DIR/bench"
: > "$OUT_DIR/stages.tsv"

# --- environment: carried packages, then any missing fallback wheel --------------------------
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
[ -d "$CARRY/site" ] && export PYTHONPATH="$PYTHONPATH:$CARRY/site"
export RANKROBUST_CACHE=${RANKROBUST_CACHE:-$OUT_DIR/.cache}  # decoded images, not carried back
export WANDB_MODE=disabled MPLBACKEND=Agg PYTHONUNBUFFERED=1
[ -f "$CARRY/photos.npz" ] && export RANKROBUST_PHOTOS="$CARRY/photos.npz"  # no scikit-image there
if [ -d "$CARRY/wheels" ]; then
    "$PYTHON" - "$CARRY/wheels" "$CARRY/extra" <<'EOF'
import importlib.metadata as md, subprocess, sys, zipfile
from pathlib import Path
wheels, target = Path(sys.argv[1]), Path(sys.argv[2])
missing = []
for w in sorted(wheels.glob("*.whl")):
    try:
        md.distribution(w.name.split("-")[0])
    except md.PackageNotFoundError:
        missing.append(w)
print("fallback wheels to install:", [w.name for w in missing] or "none")
if missing:
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
           "--target", str(target), *map(str, missing)]
    if subprocess.run(cmd).returncode != 0:  # no pip: a wheel is a zip of site-packages
        for w in missing:
            zipfile.ZipFile(w).extractall(target)
EOF
    [ -d "$CARRY/extra" ] && export PYTHONPATH="$PYTHONPATH:$CARRY/extra"
fi
"$PYTHON" - "$OUT_DIR/env.json" <<'EOF'
import json, platform, sys
import torch
try:
    import pytorch_lightning as pl
    lightning = pl.__version__
except ImportError as err:
    lightning = f"missing ({err})"
cuda = torch.cuda.is_available()
env = {"device": torch.cuda.get_device_name() if cuda else f"cpu ({platform.processor()})",
       "python": platform.python_version(), "torch": torch.__version__, "lightning": lightning,
       "cuda": torch.version.cuda, "bf16": bool(cuda and torch.cuda.is_bf16_supported())}
open(sys.argv[1], "w").write(json.dumps(env, indent=2))
print(env)
EOF

# --- stages: each timed, logged, bounded by the time left ------------------------------------
START=$SECONDS
FAILED=0
stage() {  # stage NAME MAX_SECONDS COMMAND...
    local name=$1 max=$2 left status t0
    shift 2
    left=$((BUDGET - (SECONDS - START)))
    [ "$max" -gt "$left" ] && max=$left
    if [ "$max" -lt 10 ]; then
        printf '%s\tskipped (budget)\t0\n' "$name" >> "$OUT_DIR/stages.tsv"
        return
    fi
    echo "=== $name (<= ${max} s)"
    t0=$SECONDS
    timeout --signal=TERM --kill-after=10 "$max" "$@" > "$OUT_DIR/logs/$name.log" 2>&1
    status=$?
    if [ $status -eq 0 ]; then status=ok
    elif [ $status -eq 124 ]; then status="timeout"; FAILED=1
    else status="failed ($status)"; FAILED=1; fi
    printf '%s\t%s\t%s\n' "$name" "$status" $((SECONDS - t0)) >> "$OUT_DIR/stages.tsv"
    echo "    $status in $((SECONDS - t0)) s"
    [ "$status" = ok ] || tail -n 25 "$OUT_DIR/logs/$name.log"
}

COMMON=(dataset=image_folder "dataset.root=$DATA" logger=csv rig.enabled=true
        trainer.enable_progress_bar=false)
if [ "$DRY" = 1 ]; then
    COMMON+=(trainer=cpu trainer.precision=bf16-mixed module.channels_last=true model=small_cnn
             dataset.n_train=512 dataset.n_test=128 dataset.batch_size=64 eval.n_robust=32
             sweep.n_images=64 "sweep.ranks=[2,8]" analysis.n_images=16 rig.n_images=2
             rig.steps_per_rank=2 rig.baseline_steps=4)
    NATURAL=(trainer.max_epochs=1) ROBUST=(trainer.max_epochs=1)
    TESTS=(env RANKROBUST_TEST_DEVICE=cpu "$PYTHON" -m pytest -q -p no:cacheprovider
           tests/test_gpu.py -k "not preact_resnet18")
    BENCH_TRAIN=(--quick --precision bf16-mixed --steps 3 --repeats 1)
    BENCH_SVD=(--n 32) BENCH_RIG=(--no-cuda --images 2 --repeats 1 --ranks 1 8 32 --steps-per-rank 2)
else
    COMMON+=(trainer=gpu)
    NATURAL=(trainer.max_epochs=12) ROBUST=(trainer.max_epochs=15)
    TESTS=("$PYTHON" -m pytest -q -p no:cacheprovider tests/test_gpu.py)
    BENCH_TRAIN=() BENCH_SVD=() BENCH_RIG=()
fi

stage gpu_tests 120 "${TESTS[@]}"
stage train_natural 150 "$PYTHON" run.py experiment=cifar10_natural "${COMMON[@]}" \
    "${NATURAL[@]}" "hydra.run.dir=$OUT_DIR/natural"
stage train_fgsm_rs 210 "$PYTHON" run.py experiment=cifar10_robust "${COMMON[@]}" \
    "${ROBUST[@]}" "hydra.run.dir=$OUT_DIR/robust"
stage bench_train 60 "$PYTHON" bench/bench_train.py --data "$DATA" "${BENCH_TRAIN[@]}" \
    --out "$OUT_DIR/bench/train.json"
stage bench_train_fgsm_rs 90 "$PYTHON" bench/bench_train.py --data "$DATA" --attack fgsm_rs \
    "${BENCH_TRAIN[@]}" --out "$OUT_DIR/bench/train_fgsm_rs.json"
stage bench_svd 45 "$PYTHON" bench/bench_svd.py --data "$DATA" "${BENCH_SVD[@]}" \
    --out "$OUT_DIR/bench/svd.json"
stage bench_rig 45 "$PYTHON" bench/bench_rig.py "${BENCH_RIG[@]}" --out "$OUT_DIR/bench/rig.json"

echo
"$PYTHON" bench/gpu_check_table.py "$OUT_DIR"
rm -rf "$RANKROBUST_CACHE"
exit $FAILED
