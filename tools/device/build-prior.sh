#!/usr/bin/env bash
# Build priors from recipes on a lent GPU machine (issue 11), as one prepared device call.
#
# Source nets, harvest, VAE fit and the transfer evaluation all run on the GPU (dwp-hub build --device), WORKERS source
# nets at a time. RECIPES are built in order into one scratch registry, so recipes that share a source section (a
# 7x7 and a 5x5 prior from the same nets) train the nets once. The registry comes back as FILES_AT/priors.tar
# (NAME/VERSION/ folders), with the build log; unpack it into a scratch registry here to validate the priors before
# anything is published, and record the device in the closing note (the card records the build's time).
#
# Here, once per machine (the data never enters git; .data/ is git-ignored):
#   mkdir -p .data && cp -r ../shared/data/mnist ../shared/data/notmnist .data/
# The device call: command "RECIPES='a.yaml b.yaml' bash tools/device/build-prior.sh", carry [".data"], timeout_s 590.
# A build cut off leaves back only the priors finished before it and the log (a version folder is written only when
# complete).
set -u
: "${RECIPES:?set RECIPES to recipe YAMLs in the repository, e.g. tools/studies/candidates/notmnist-7x7-h128.yaml}"
export DWP_HUB_DATA="${DWP_HUB_DATA:-$PWD/.data}" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
PY="${PY:-python3}"
DEVICE="${DEVICE:-cuda}"
OUTD="${OUT:-/tmp/dwp-device-out}"
mkdir -p "$OUTD"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"; nproc; } > "$OUTD/machine.txt"
REG="$(mktemp -d)"
START=$(date +%s)
: > "$OUTD/build.log"
for RECIPE in $RECIPES; do
  LEFT=$(( ${BUDGET_S:-560} - ($(date +%s) - START) ))
  echo "=== $RECIPE ($LEFT s left)" >> "$OUTD/build.log"
  timeout --signal=INT "$LEFT" "$PY" -c "import sys; from dwp_hub.cli import main; sys.argv[0] = 'dwp-hub'; main()" \
    build "$RECIPE" --to "$REG" --work-dir runs/device-build -j "${WORKERS:-12}" --device "$DEVICE" -q \
    >> "$OUTD/build.log" 2>&1
  echo "build exit $?" >> "$OUTD/build.log"
  tar -C "$REG" -cf "$OUTD/priors.tar" --exclude=index.json --exclude=.lock . 2>>"$OUTD/build.log"  # after each: what finished comes back
done
tail -n 30 "$OUTD/build.log"
tar -tvf "$OUTD/priors.tar"
