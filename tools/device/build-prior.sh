#!/usr/bin/env bash
# Build one prior from a recipe on a lent GPU machine (issue 11), as one prepared device call.
#
# Source nets, harvest, VAE fit and the transfer evaluation all run on the GPU (dwp-hub build --device), WORKERS source
# nets at a time. The built version folder (weights, card, recipe, pictures: 6 files) comes back flat under
# FILES_AT/prior/, with the build log; copy it into a scratch registry here (REGISTRY/NAME/VERSION/) to validate it
# before anything is published, and record the device in the closing note (the card records the build's time).
#
# Here, once per machine (the data never enters git; .data/ is git-ignored):
#   mkdir -p .data && cp -r ../shared/data/mnist ../shared/data/notmnist .data/
# The device call: command "RECIPE=tools/recipes/NAME.yaml bash tools/device/build-prior.sh", carry [".data"],
# timeout_s 590. A build cut off leaves nothing back but its log (a version folder is written only when complete).
set -u
: "${RECIPE:?set RECIPE to a recipe YAML in the repository, e.g. tools/studies/candidates/notmnist-7x7-h128.yaml}"
export DWP_HUB_DATA="${DWP_HUB_DATA:-$PWD/.data}" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
PY="${PY:-python3}"
DEVICE="${DEVICE:-cuda}"
OUTD="${OUT:-/tmp/dwp-device-out}"
mkdir -p "$OUTD/prior"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"; nproc; } > "$OUTD/machine.txt"
REG="$(mktemp -d)"
timeout --signal=INT "${BUDGET_S:-560}" "$PY" -c "import sys; from dwp_hub.cli import main; sys.argv[0] = 'dwp-hub'; main()" \
  build "$RECIPE" --to "$REG" --work-dir runs/device-build -j "${WORKERS:-12}" --device "$DEVICE" -q \
  > "$OUTD/build.log" 2>&1
echo "build exit $?" >> "$OUTD/build.log"
find "$REG" -mindepth 3 -maxdepth 3 -type f -exec cp {} "$OUTD/prior/" \;
tail -n 30 "$OUTD/build.log"
ls -la "$OUTD/prior"
