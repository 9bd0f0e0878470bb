#!/usr/bin/env bash
# The GPU check (one GPU, from the repo root; docs/gpu.md says how to call it): the GPU tests,
# the SVD benchmark (CUDA sections first), PreActResNet-18 natural (12 epochs) and FGSM-RS
# (eps 8/255, 15 epochs) on the CIFAR-10 copy with PGD-20, the rank sweep and RIG, then the
# training and RIG benchmarks; with GPU_CHECK_FULL=1 also `make reproduce-cifar10-device`.
#
# Everything runs in a scratch folder; the folder handed back ($OUT) only ever holds 4 files,
# rewritten after every stage (so a check killed from outside still returns what it had):
#   summary.txt   every stage with its status and time, every figure and every error
#   stages.tsv    the stage table (name, status, seconds)
#   figures.json  every run's metrics (without its config) and every benchmark's JSON
#   logs.tar.gz   the small logs (stage logs, run.log, CSV logs, metrics.json, PNGs < 2 MB;
#                 never a checkpoint, an .npz or the decoded-image cache)
#
# Made for a machine without internet whose Python / torch / Lightning are its own: it lacks only
# hydra-core, omegaconf, antlr4, captum and pyautoattack, which bench/prepare_gpu_carry.sh puts in
# .gpu-carry/site (with the CIFAR-10 copy); carry .gpu-carry along. wandb is not needed: logger=csv.
#
# Usage: bash bench/gpu_check.sh [--cpu-dry-run]
#   --cpu-dry-run: the same stages on the CPU with tiny sizes (trainer=cpu with bf16-mixed and
#   channels_last, small_cnn, RANKROBUST_TEST_DEVICE=cpu for tests/test_gpu.py): checks the
#   script, the carry and the overrides where no GPU is.
# Environment: PYTHON (default .venv/bin/python for the dry run if present, else python3), DATA
# (default .gpu-carry/cifar10-jpeg.tar.gz, else ../shared/data/...), GPU_CHECK_OUT or OUT (the
# folder handed back; default outputs/gpu_check), GPU_CHECK_BUDGET_S (default 330; 540 with
# GPU_CHECK_FULL=1; 1500 and every stage limit x4 for the dry run), GPU_CHECK_SCRATCH (default a new folder under /tmp, removed at the end
# unless GPU_CHECK_KEEP=1).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0
[ "${1:-}" = "--cpu-dry-run" ] && DRY=1
FULL=${GPU_CHECK_FULL:-0}
CARRY=$ROOT/.gpu-carry
OUT_DIR=$(realpath -m "${GPU_CHECK_OUT:-${OUT:-outputs/gpu_check}}")
BUDGET=${GPU_CHECK_BUDGET_S:-$([ "$FULL" = 1 ] && echo 540 || echo 330)}
SCALE=1  # stage limits x SCALE: the dry run's CPU (2 shared cores here) is far slower
if [ "$DRY" = 1 ]; then SCALE=4; BUDGET=${GPU_CHECK_BUDGET_S:-1500}; fi
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ "$DRY" = 1 ] && [ -x .venv/bin/python ] && PYTHON=$ROOT/.venv/bin/python
fi
DATA=${DATA:-}
for d in "$CARRY/cifar10-jpeg.tar.gz" ../shared/data/cifar10-jpeg.tar.gz; do
    [ -z "$DATA" ] && [ -f "$d" ] && DATA=$(realpath "$d")
done
[ -n "$DATA" ] || { echo "no CIFAR-10 copy: set DATA=... (see prepare_gpu_carry.sh)" >&2; exit 2; }
WORK=${GPU_CHECK_SCRATCH:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$WORK/logs" "$WORK/bench" "$OUT_DIR"
: > "$WORK/stages.tsv"
echo "scratch: $WORK   handed back: $OUT_DIR"

# --- environment: the carried pure-Python packages ---------------------------------------------
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
[ -d "$CARRY/site" ] && export PYTHONPATH="$PYTHONPATH:$CARRY/site"
export RANKROBUST_CACHE=$WORK/cache  # decoded images: scratch, never handed back
export WANDB_MODE=disabled MPLBACKEND=Agg PYTHONUNBUFFERED=1
"$PYTHON" - "$WORK/env.json" <<'EOF'
import json, platform, sys
import torch
def version(name):
    try:
        return __import__(name).__version__
    except Exception as err:  # noqa: BLE001 - say what is missing, do not stop
        return f"missing ({type(err).__name__}: {err})"
cuda = torch.cuda.is_available()
env = {"device": torch.cuda.get_device_name() if cuda else f"cpu ({platform.processor()})",
       "python": platform.python_version(), "torch": torch.__version__,
       "lightning": version("pytorch_lightning"), "hydra": version("hydra"),
       "captum": version("captum"), "cuda": torch.version.cuda,
       "bf16": bool(cuda and torch.cuda.is_bf16_supported())}
open(sys.argv[1], "w").write(json.dumps(env, indent=2))
print(env)
EOF

# --- what goes back: 4 files, rewritten after every stage --------------------------------------
publish() {
    "$PYTHON" bench/gpu_check_table.py "$WORK" "$OUT_DIR" > "$WORK/logs/summary.out" 2>&1 ||
        { echo "summary failed:"; cat "$WORK/logs/summary.out"; } > "$OUT_DIR/summary.txt"
    cp "$WORK/stages.tsv" "$OUT_DIR/stages.tsv"
    (cd "$WORK" && find . -type f \( -name '*.log' -o -name '*.out' -o -name '*.csv' \
        -o -name '*.json' -o -name '*.yaml' -o -name '*.tsv' -o -name '*.md' -o -name '*.png' \) \
        -size -2M -not -path './cache/*' -print0 |
        tar --null -czf "$OUT_DIR/logs.tar.gz.part" -T - 2>/dev/null) &&
        mv "$OUT_DIR/logs.tar.gz.part" "$OUT_DIR/logs.tar.gz"
    rm -f "$OUT_DIR/logs.tar.gz.part"
}
finish() {
    publish
    [ "${GPU_CHECK_KEEP:-0}" = 1 ] || [ -n "${GPU_CHECK_SCRATCH:-}" ] || rm -rf "$WORK"
}
trap finish EXIT
trap 'exit 143' TERM INT

# --- stages: each timed, logged, bounded by the time left -------------------------------------
START=$SECONDS
FAILED=0
stage() {  # stage NAME MAX_SECONDS COMMAND...
    local name=$1 max=$(($2 * SCALE)) left status t0
    shift 2
    left=$((BUDGET - (SECONDS - START)))
    [ "$max" -gt "$left" ] && max=$left
    if [ "$max" -lt 10 ]; then
        printf '%s\tskipped (budget)\t0\n' "$name" >> "$WORK/stages.tsv"
        FAILED=1
        publish
        return
    fi
    echo "=== $name (<= ${max} s)"
    t0=$SECONDS
    timeout --signal=TERM --kill-after=10 "$max" "$@" > "$WORK/logs/$name.log" 2>&1
    status=$?
    if [ $status -eq 0 ]; then status=ok
    elif [ $status -eq 124 ] || [ $status -eq 137 ]; then status="timeout (${max} s)"; FAILED=1
    else status="failed (exit $status)"; FAILED=1; fi
    printf '%s\t%s\t%s\n' "$name" "$status" $((SECONDS - t0)) >> "$WORK/stages.tsv"
    echo "    $status in $((SECONDS - t0)) s"
    [ "$status" = ok ] || tail -n 25 "$WORK/logs/$name.log"
    publish
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
           -v tests/test_gpu.py -k "not preact_resnet18 and not autoattack")
    # (the two PreActResNet-18 tests take minutes on shared CPU cores: GPU only)
    BENCH_TRAIN=(--quick --precision bf16-mixed --steps 3 --repeats 1)
    BENCH_SVD=(--quick --n 32 --n224 4 --repeats 1)
    BENCH_RIG=(--no-cuda --images 2 --repeats 1 --ranks 1 8 32 --steps-per-rank 2)
    FULL_ARGS=("CIFAR10_RANKS=2,8" "CIFAR10_EXTRA=trainer=cpu model=small_cnn
               dataset.n_train=512 dataset.n_test=128 dataset.batch_size=64 eval.n_robust=32
               sweep.n_images=64 sweep.ranks=[2,8] analysis.n_images=16 rig.n_images=2
               rig.steps_per_rank=2 rig.baseline_steps=4 trainer.max_epochs=1")
else
    COMMON+=(trainer=gpu)
    NATURAL=(trainer.max_epochs=12) ROBUST=(trainer.max_epochs=15)
    TESTS=("$PYTHON" -m pytest -q -p no:cacheprovider tests/test_gpu.py)
    BENCH_TRAIN=() BENCH_SVD=(--repeats 3 --n224 16) BENCH_RIG=() FULL_ARGS=()
fi

# the most wanted figures first: the CUDA truncated SVD only runs in the tests and bench_svd
stage gpu_tests 100 "${TESTS[@]}"
stage bench_svd 60 "$PYTHON" bench/bench_svd.py --data "$DATA" "${BENCH_SVD[@]}" \
    --out "$WORK/bench/svd.json"
stage train_natural 80 "$PYTHON" run.py experiment=cifar10_natural "${COMMON[@]}" \
    "${NATURAL[@]}" "hydra.run.dir=$WORK/natural"
stage train_fgsm_rs 100 "$PYTHON" run.py experiment=cifar10_robust "${COMMON[@]}" \
    "${ROBUST[@]}" "hydra.run.dir=$WORK/robust"
stage bench_train 45 "$PYTHON" bench/bench_train.py --data "$DATA" "${BENCH_TRAIN[@]}" \
    --out "$WORK/bench/train.json"
stage bench_train_fgsm_rs 60 "$PYTHON" bench/bench_train.py --data "$DATA" --attack fgsm_rs \
    "${BENCH_TRAIN[@]}" --out "$WORK/bench/train_fgsm_rs.json"
stage bench_rig 40 "$PYTHON" bench/bench_rig.py "${BENCH_RIG[@]}" --out "$WORK/bench/rig.json"
if [ "$FULL" = 1 ]; then
    stage reproduce_cifar10 420 make --no-print-directory reproduce-cifar10-device \
        "DEVICE_PY=$PYTHON" "DEVICE_DATA=$DATA" "RUNS=$WORK/cifar10" "${FULL_ARGS[@]}"
fi

echo
publish
cat "$OUT_DIR/summary.txt"
exit $FAILED
