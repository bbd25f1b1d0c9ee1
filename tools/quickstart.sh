#!/usr/bin/env bash
# The embedded default, end to end on a CPU with nothing downloaded:
#   set-up -> synthetic nuScenes dataroot -> info files -> train BEVFormer -> test with the
#   official nuScenes metric (NDS / mAP table) -> pictures of the predictions.
# Idempotent: existing data is reused and an interrupted training resumes.
#   CONFIG=... WORK_DIR=... DATA_ROOT=... AMP=auto|0|1 tools/quickstart.sh [extra tools/train.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
PY=.venv/bin/python
# The quickstart loads its data in the main process (no workers), so torch gets every core:
# a training step (frozen-backbone recipe) took 0.57 s with 2 threads vs 1.03 s with 1 on an
# idle 2-core machine. On a busy machine a 2-thread torch stalls (several seconds a step): set
# OMP_NUM_THREADS=1 there.
CONFIG=${CONFIG:-configs/bevformer/bevformer_quickstart_synthetic.py}
DATA_ROOT=${DATA_ROOT:-data/nuscenes_synthetic}
WORK_DIR=${WORK_DIR:-work_dirs/$(basename "$CONFIG" .py)}
say() { echo "[quickstart] $*"; }
# bf16 autocast where the CPU computes bf16 natively (AVX512-BF16 / AMX; emulated bf16 would be
# slower): 1.4x per training step of this model. AMP=0 trains in float32, AMP=1 forces it.
AMP_ARGS=()
if [ "${AMP:-auto}" = 1 ] || { [ "${AMP:-auto}" = auto ] && grep -qsE 'avx512_bf16|amx_bf16' /proc/cpuinfo; }; then
  AMP_ARGS=(--amp)
fi

# 50 scenes in the v1.0-trainval layout (40 train / 10 val, 480 / 120 samples; about 40 s,
# the scenes rendered in parallel, one process per core).
# A dataroot of an earlier quickstart (v1.0-mini, 8 training scenes) is regenerated beside it:
# its info files are rewritten.
if [ ! -f "$DATA_ROOT/v1.0-trainval/sample.json" ]; then
  say "generating the synthetic nuScenes dataroot in $DATA_ROOT (50 scenes)"
  "$PY" tools/create_synthetic_nuscenes.py --root "$DATA_ROOT"
  rm -f "$DATA_ROOT/nuscenes_infos_train.pkl" "$DATA_ROOT/nuscenes_infos_val.pkl"
fi
if [ ! -f "$DATA_ROOT/nuscenes_infos_val.pkl" ]; then
  say "writing the info files"
  "$PY" tools/create_data.py nuscenes --root-path "$DATA_ROOT" --version v1.0-trainval \
      --out-dir "$DATA_ROOT"
fi

DATA_OPTS=(train_dataloader.dataset.data_root="$DATA_ROOT/" val_dataloader.dataset.data_root="$DATA_ROOT/"
           test_dataloader.dataset.data_root="$DATA_ROOT/" val_evaluator.data_root="$DATA_ROOT/"
           val_evaluator.ann_file="$DATA_ROOT/nuscenes_infos_val.pkl"
           test_evaluator.data_root="$DATA_ROOT/" test_evaluator.ann_file="$DATA_ROOT/nuscenes_infos_val.pkl")

# No validation inside training: the test below evaluates the same final checkpoint (and writes
# the results the pictures need), so validating it there too would only repeat it.
TRAIN_OPTS=(train_cfg.val_begin=1000000000)

say "training $CONFIG -> $WORK_DIR"
RESUMING=0
[ -f "$WORK_DIR/last_checkpoint" ] && RESUMING=1
if ! "$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --resume ${AMP_ARGS[@]+"${AMP_ARGS[@]}"} --cfg-options "${DATA_OPTS[@]}" "${TRAIN_OPTS[@]}" "$@"; then
  if [ "$RESUMING" = 1 ]; then
    # e.g. the work dir of an earlier quickstart version, whose model differs: not a case for
    # --partial-load, which would train on from mismatched weights
    say "training failed while resuming $(cat "$WORK_DIR/last_checkpoint"); if that run is of" \
        "another config or quickstart version, move $WORK_DIR away (or set WORK_DIR=...) to start afresh"
  fi
  exit 1
fi
CKPT=$(cat "$WORK_DIR/last_checkpoint")

say "testing $CKPT"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR" --out "$WORK_DIR/results.pkl" \
    --cfg-options "${DATA_OPTS[@]}" test_evaluator.jsonfile_prefix="$WORK_DIR/submission"

# The threshold is the score of maximum F1 over all validation samples (same class, centre
# within 2 m, as the nuScenes metric matches); --topk only caps a cluttered picture.
say "drawing two validation samples: predictions above the max-F1 score threshold, GT beside them"
"$PY" tools/analysis/visualize.py --info "$DATA_ROOT/nuscenes_infos_val.pkl" --data-root "$DATA_ROOT" \
    --pred "$WORK_DIR/results.pkl" --out-dir "$WORK_DIR/vis" --num 2 --score-thr auto --topk 25
say "pictures: $WORK_DIR/vis/<token>.png, six cameras + bird's-eye view; green = ground truth," \
    "red = predictions scoring >= the threshold printed above (label: class score); red on green" \
    "= a detection, red alone = a false alarm, green alone = a miss"
say "done: metrics above, submission JSON in $WORK_DIR/submission, pictures in $WORK_DIR/vis"
