#!/usr/bin/env bash
# Everything the issues ask of a GPU, in one run that fits a short lease (PHASES picks the steps):
#   eager / eager_cl / eager3d / compiled: the benchmark tables (MONAI UNet first in each), 2D in contiguous and
#     channels-last layout, 3D, torch.compile'd; with the implementation variants of scripts/gpu_variants.py;
#   fold: 2D inference with batch norms folded into the convolutions (--fold-bn, as the bundles infer);
#   convs: the dominant conv shapes alone (scripts/gpu_convs.py); profile: torch.profiler tables (scripts/gpu_profile.py);
#   bundles: a real training run of each bundle on the MR sample dataset (lightseg quickstart, final checkpoint).
# Each step runs under a time limit taken from what is left of BUDGET_S, writes its log and results into WORK_DIR,
# and WORK_DIR is archived into ARCHIVE after every step (datasets and checkpoints left out), so a step cut short
# loses only itself.
#
# Usage: bash scripts/gpu_session.sh WORK_DIR ARCHIVE DATA_DIR [BUDGET_S]
#   DATA_DIR: a built MR sample dataset (python -m lightseg_monai sample-data DIR --modality MR --no-extras)
# Environment: PHASES (the steps, default "eager fold eager_cl convs eager3d profile compiled"; "bundles" adds the
#   training runs), DEVICE (cuda), SIZE (256), EPOCHS_2D (300), EPOCHS_3D (250), PIXDIM (1.0), QS_WORKERS (2),
#   BENCH_EXTRA (extra benchmark arguments, e.g. for a CPU dry run: "--warmup 0 --iters 1 --repeats 1"),
#   COMPILE_MODE (torch.compile mode of the compiled tables: default; reduce-overhead adds CUDA graphs),
#   COMPILED_MAX (seconds for the 2D compiled table, 120; raise it in a call that runs PHASES=compiled alone)
set -uo pipefail
W=${1:?usage: gpu_session.sh WORK_DIR ARCHIVE DATA_DIR [BUDGET_S]}
ARCHIVE=${2:?archive path}
DATA=${3:?sample dataset folder}
BUDGET=${4:-540}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-256}
SIZE3D=${SIZE3D:-96}
EPOCHS_2D=${EPOCHS_2D:-300}
EPOCHS_3D=${EPOCHS_3D:-250}
PIXDIM=${PIXDIM:-1.0}
QS_WORKERS=${QS_WORKERS:-2}
BENCH_EXTRA=${BENCH_EXTRA:-}
COMPILE_MODE=${COMPILE_MODE:-default}
COMPILED_MAX=${COMPILED_MAX:-120}
PHASES=${PHASES:-eager fold eager_cl convs eager3d profile compiled}
export PYTHONUNBUFFERED=1
mkdir -p "$W"
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((BUDGET - $(elapsed))); }
snap() { tar czf "$ARCHIVE.tmp" --exclude='./qs_*/data' --exclude='*.pt' --exclude='*.ts' -C "$W" . && mv "$ARCHIVE.tmp" "$ARCHIVE"; }

# run NAME MAX_S RESERVE_S CMD...: at most MAX_S, and never into the last RESERVE_S of the budget
run() {
  local name=$1 max=$2 reserve=$3
  shift 3
  local t=$(($(left) - reserve))
  ((t > max)) && t=$max
  if ((t < 20)); then
    echo "== $name: skipped, $t s left for it" | tee "$W/$name.log"
    return
  fi
  echo "== $name (limit $t s, at $(elapsed) s)"
  timeout --kill-after=5 "$t" "$@" >"$W/$name.log" 2>&1
  echo "== $name: exit $? at $(elapsed) s"
  grep -E '^\||FAILED|Error|error' "$W/$name.log" | tail -n 25
  snap
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python3 -c "import torch, monai, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'monai', monai.__version__, \
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
  nproc
} 2>&1 | tee "$W/env.log"

# the benchmark with the implementation variants of scripts/gpu_variants.py registered (NAME+IMPL)
B="python3 scripts/gpu_variants.py --device $DEVICE $BENCH_EXTRA"
# the fast networks first, so that a step cut short by its limit still has them (DLKUNet's rows take longest)
EAGER2D=${EAGER2D:-lgmsnet lsunet lsunet+dense lgmsnet+plain lsunet+plain rdiunet dlkunet_m dlkunet_m+dense dlkunet_m+whole dlkunet_m+nocudnn lgmsnet+nocudnn lsunet+nocudnn rdiunet_k3 dlkunet_s dlkunet_l}
EAGER2D_CL=${EAGER2D_CL:-lgmsnet rdiunet lsunet dlkunet_m}
FOLD2D=${FOLD2D:-lgmsnet lsunet rdiunet dlkunet_m}
EAGER3D=${EAGER3D:-lgmsnet lgmsnet+plain}
COMPILED2D=${COMPILED2D:-lgmsnet lsunet rdiunet dlkunet_m}
PROFILE_MODELS=${PROFILE_MODELS:-lsunet lgmsnet rdiunet}
B3D="--spatial-dims 3 --size $SIZE3D --in-channels 1 --out-channels 14 --batch 4 --train-batch 2"
has() { [[ " $PHASES " == *" $1 "* ]]; }

# each step: at most MAX seconds, and it leaves RESERVE seconds of the budget to the steps after it. On an H200
# (docs/benchmarks/h200-2026-11-27/README.md) these limits were too short for the default model lists: eager 2D
# takes about 10 s per network, LGMSNet-3D more than 35 s, and torch.compile more than 90 s per model; narrow
# the lists (EAGER2D=..., COMPILED2D=...) or the PHASES to what the lease allows.
if has eager; then
  run bench_2d_eager 130 230 $B --size "$SIZE" --no-channels-last --models monai_unet $EAGER2D \
    --json "$W/2d_eager.json"
fi
if has fold; then
  # inference with the batch norms folded into their convolutions, as the bundles' inference.json runs it
  run bench_2d_eager_fold 45 200 $B --size "$SIZE" --no-channels-last --fold-bn --no-train \
    --models monai_unet $FOLD2D --json "$W/2d_eager_fold.json"
fi
if has eager_cl; then
  run bench_2d_eager_cl 45 185 $B --size "$SIZE" --channels-last --models monai_unet $EAGER2D_CL \
    --json "$W/2d_eager_cl.json"
fi
if has convs; then
  run convs 20 165 python3 scripts/gpu_convs.py --json "$W/convs.json"
  # DLKUNet's training profile is 74% cuDNN's depthwise weight-gradient kernel: forward + backward of its convs
  run convs_backward 20 145 python3 scripts/gpu_convs.py --backward --only dlkunet --json "$W/convs_backward.json"
fi
if has eager3d; then
  run bench_3d_eager 60 130 $B $B3D --no-channels-last --models monai_unet $EAGER3D --json "$W/3d_eager.json"
fi
if has profile; then
  run profile 35 95 python3 scripts/gpu_profile.py "$W/profiles" $PROFILE_MODELS --size "$SIZE" --device "$DEVICE"
fi
if has compiled; then
  run bench_2d_compiled "$COMPILED_MAX" 25 $B --size "$SIZE" --no-channels-last --compile --compile-mode "$COMPILE_MODE" \
    --models monai_unet $COMPILED2D \
    --json "$W/2d_compiled.json"
  run bench_3d_compiled 80 5 $B $B3D --no-channels-last --compile --compile-mode "$COMPILE_MODE" \
    --models monai_unet lgmsnet \
    --json "$W/3d_compiled.json"
fi

if has bundles; then
  # the four bundles' training runs, side by side on the one GPU (their speeds are shared-GPU figures; the
  # benchmark gives the clean ones); each evaluates its final checkpoint on its training and validation volumes
  qs_limit=$(($(left) - 15))
  ((qs_limit > 240)) && qs_limit=240
  echo "== bundles on the sample data (limit $qs_limit s, at $(elapsed) s)"
  pids=()
  for spec in lgmsnet:3:$EPOCHS_3D dlkunet:2:$EPOCHS_2D lsunet:2:$EPOCHS_2D rdiunet:2:$EPOCHS_2D; do
    IFS=: read -r b dims ep <<<"$spec"
    mkdir -p "$W/qs_$b" && cp -r "$DATA" "$W/qs_$b/data"
    # training stops at 60% of the step's time so that evaluation and inference fit in the rest
    timeout --kill-after=5 "$qs_limit" python3 -m lightseg_monai quickstart "$W/qs_$b" --bundle "$b" \
      --spatial-dims "$dims" --epochs "$ep" --val-interval "${VAL_INTERVAL:-50}" --pixdim "$PIXDIM" --device "$DEVICE" \
      --num-workers "$QS_WORKERS" --checkpoint final --time-limit $((qs_limit * 6 / 10)) --no-progress \
      >"$W/qs_$b.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    echo "bundle job $i: exit $?"
  done
  echo "== bundles done at $(elapsed) s"
  for b in lgmsnet dlkunet lsunet rdiunet; do
    echo "-- $b"
    grep -E '^(case|brain|breast|report)|Error|error' "$W/qs_$b.log" | tail -n 8
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print({k: s[k] for k in ('epochs_done','train_patches_per_s','train_peak_gpu_bytes','infer_peak_gpu_bytes','device')}, s['timings_s'], [round(v,3) for v in s['train_loss_per_epoch'][::max(1,len(s['train_loss_per_epoch'])//6)]])" "$W/qs_$b/summary.json" 2>/dev/null
  done
  snap
fi
echo "== done at $(elapsed) s"
