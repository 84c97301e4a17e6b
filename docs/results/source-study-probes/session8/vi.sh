#!/bin/bash
# usage: vi.sh NAME SPEC [SEEDS] [STEPS] [SIZES] -- validation VI rows of the dwp arm with SPEC (frozen worktree s8b)
set -e
name=$1; spec=$2; seeds=${3:-0-4}; steps=${4:-400}; sizes=${5:-50,100}
cd /work/frozen/s8b
PYTHONPATH=/work/frozen/s8b DWP_HUB_DATA=/work/shared/data DWP_HUB_REGISTRY=/work/runs/s8/registry:/work/frozen/s8b/priors OMP_NUM_THREADS=1 \
  .venv/bin/python tools/bf16_check.py --precisions fp32 --seeds $seeds --priors dwp --sizes $sizes --steps $steps \
  --dwp "$spec" --workers 1 --threads 1 --out-dir /work/runs/s8/vi/$name > /work/runs/s8/vi-$name.log 2>&1
