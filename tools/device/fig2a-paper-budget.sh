#!/usr/bin/env bash
# Fig. 2a at the paper's budget (issue 12) on a lent GPU machine, as one prepared device call; resumable across calls.
#
# The runs resume from the committed CSV (docs/results/fig2a-paper-budget/fig2a.csv): a call trains only the
# (size, arm, seed) rows still missing, WORKERS at a time on one GPU, and stops starting new ones BUDGET_S seconds in
# (a run cut off is redone by the next call: its checkpoints stay on the device machine, which is given back).
#
# Here, once per machine (the data never enters git; .data/ is git-ignored):
#   mkdir -p .data && cp -r ../shared/data/mnist ../shared/data/notmnist .data/
# The device call (the run tool): command "bash tools/device/fig2a-paper-budget.sh", carry [".data"], timeout_s 590.
# Back here: copy FILES_AT/pb/fig2a.csv over docs/results/fig2a-paper-budget/fig2a.csv, then rewrite the report with
#   python tools/fig2a.py --report-only --out-dir docs/results/fig2a-paper-budget --compare docs/results/fig2a.csv
# and commit both.
# The deep weight prior under the paper's exact estimator (about 17x the fast bound's step; its rows are an arm of
# their own in the report, see docs/results/vi-long-diagnosis, session 12):
#   EXTRA='--bound full --priors dwp,dwp-xavier-init' bash tools/device/fig2a-paper-budget.sh
# N = 200 / 500 / 1000 at the stated shorter budget (same results file):
#   CONFIG=tools/configs/fig2a-paper-budget-large.yaml bash tools/device/fig2a-paper-budget.sh
set -u
export DWP_HUB_DATA="${DWP_HUB_DATA:-$PWD/.data}" PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
PY="${PY:-python3}"
DEVICE="${DEVICE:-cuda}"
OUTD="${OUT:-/tmp/dwp-device-out}/pb"
mkdir -p "$OUTD"
cp docs/results/fig2a-paper-budget/fig2a.csv docs/results/fig2a-paper-budget/fig2a.commands.txt "$OUTD"/
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"; nproc; } > "$OUTD/machine.txt"
# every finished run rewrites $OUTD/fig2a.csv at once, so whatever finished comes back even if the call is cut off
timeout --signal=INT "${BUDGET_S:-540}" "$PY" -m tools.fig2a --config "${CONFIG:-tools/configs/fig2a-paper-budget.yaml}" \
  --device "$DEVICE" --workers "${WORKERS:-12}" --threads 1 --out-dir "$OUTD" \
  --work-dir runs/fig2a-paper-budget ${EXTRA:-} > "$OUTD/log.txt" 2>&1
echo "fig2a exit $?" >> "$OUTD/log.txt"
tail -n 40 "$OUTD/log.txt"
