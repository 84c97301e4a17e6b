#!/bin/bash
# usage: vi.sh NAME SPEC [SEEDS] [STEPS] [SIZES] -- validation VI rows of the dwp arm with SPEC (frozen worktree)
set -e
name=$1; spec=$2; seeds=${3:-0-4}; steps=${4:-400}; sizes=${5:-50,100}
cd /work/frozen/s7
DWP_HUB_DATA=/work/shared/data DWP_HUB_REGISTRY=/work/runs/s7/registry:/work/frozen/s7/priors \
  .venv/bin/python tools/bf16_check.py --precisions fp32 --seeds $seeds --priors dwp --sizes $sizes --steps $steps \
  --dwp "$spec" --workers 1 --threads 1 --out-dir /work/runs/s7/vi/$name > /work/runs/s7/vi-$name.log 2>&1
