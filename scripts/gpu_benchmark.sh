#!/usr/bin/env bash
# The GPU speed table of the README, in one run (eager and compiled, 2D and 3D), MONAI peers measured beside ours.
# Usage: bash scripts/gpu_benchmark.sh OUT_DIR [MODELS...]
# Writes OUT_DIR/{2d_eager,2d_compiled,3d_eager,3d_compiled}.json and prints the markdown tables.
set -euo pipefail
out=${1:?usage: gpu_benchmark.sh OUT_DIR [MODELS...]}
shift || true
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(monai_unet $(python3 -c "from lightseg_monai.benchmark import MODELS; print(' '.join(m for m in MODELS if not m.startswith('monai_')))"))
fi
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -m lightseg_monai.benchmark --device cuda --models "${models[@]}" --json "$out/2d_eager.json"
python3 -m lightseg_monai.benchmark --device cuda --models "${models[@]}" --compile --json "$out/2d_compiled.json"
python3 -m lightseg_monai.benchmark --device cuda --spatial-dims 3 --size 96 --in-channels 1 --out-channels 14 \
  --batch 4 --train-batch 2 --models monai_unet lgmsnet --json "$out/3d_eager.json"
python3 -m lightseg_monai.benchmark --device cuda --spatial-dims 3 --size 96 --in-channels 1 --out-channels 14 \
  --batch 4 --train-batch 2 --models monai_unet lgmsnet --compile --json "$out/3d_compiled.json"
