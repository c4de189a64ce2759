#!/usr/bin/env bash
# The whole new-GPU-node pipeline on ONE machine, in one go (used for calibration/reports/h200):
#   offline install (when a wheelhouse is there) -> calibration (calibration/device_run.sh, every
#   stage) -> fit -> HIL replays of round robin and DualPath, 3 each, priced from the profile
#   just fitted (hw/hil_device_run.sh).
# Usage: bash calibration/node_pipeline.sh OUTDIR [extra `python -m dpsim.calibration.hil` arguments]
#   (run in the checkout's root; extra arguments come after the defaults below, so they win:
#   e.g. `--turns 300` for the full replay scenario, `--device cpu` for a GPU-less check)
# Why one machine: the model prices storage from the profile, and storage is the machine's own
# disk.  On the lent VMs the disk differs by 15-25 % from one instance to the next
# (calibration/reports/h200/REPORT.md), more than the 5 % the comparison is judged at: a profile
# measured on one instance and replays on another compare the two instances, not the model.
#
# Environment (all optional):
#   DEADLINE_S  seconds the whole pipeline may take (e.g. 570 inside a 10-minute call).  The
#               calibration stages (not `fit`) must end HIL_RESERVE_S + FIT_RESERVE_S before it
#               (device_run.sh's UNTIL; the storage and PCIe stages run first), and the replays get
#               what is left minus PACK_S (hw/hil_device_run.sh's HIL_TIMEOUT).  Replays alternate
#               between the systems, so a run cut short keeps as many of each.
#   HIL_RESERVE_S (240), FIT_RESERVE_S (25), PACK_S (15)
#   CAL_STAGES  device_run.sh's stages (default: all)
#   HIL_ARGS    the replay's arguments before the extra ones (default below: one GPU, both
#               systems, 3 replays each, the first 9 rounds of the 16 agents -- `--turns 144`, 67
#               requests, ~28 s a replay -- so that calibration and six replays fit in 10 minutes;
#               the full 16-agent scenario, `--turns 300`, takes ~80 s a replay)
#   WHEELHOUSE  (calibration/wheelhouse) installed with `pip install --no-index --find-links` into
#               $PYTHON when it is there and INSTALL is not 0
#   WORK        (/tmp/dpsim_pipeline) scratch directory; PYTHON (python3; the scripts add -P, so
#               the installed dpsim runs, not the checkout's dpsim/ folder); CHECKOUT: the commit
#               to print where the checkout is a `git archive` copy (no .git)
# OUTDIR receives five files: pipeline.log (everything printed, with each step's time),
# profile.yaml (the fitted profile the model was priced with), hil_summary.json (per system: the
# replays, their median JCT / mean TTFT, the model's and the errors, the replay spread, the
# profile's sha256), calibration.tgz (the raw tables run.tgz, profile.yaml and the fit report) and
# hil.tgz (every replay's REPORT.md, CSVs, plot, probe profile).
set -u
OUT=${1:?usage: node_pipeline.sh OUTDIR [extra dpsim.calibration.hil args]}
shift
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
T0=$(date +%s)
WORK=${WORK:-/tmp/dpsim_pipeline}
PY=${PYTHON:-python3}
WH=${WHEELHOUSE:-calibration/wheelhouse}
HIL_ARGS=${HIL_ARGS:-"--devices 0 --systems round_robin,dualpath --replays 3 --turns 144 --max-wall-s 120"}
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
exec > >(tee -a "$OUT/pipeline.log") 2>&1
TEE=$!
el() { echo $(( $(date +%s) - T0 )); }
pack() {
  [ -d "$WORK/cal" ] && tar czf "$OUT/calibration.tgz" -C "$WORK" cal
  [ -f "$WORK/cal/profile.yaml" ] && cp "$WORK/cal/profile.yaml" "$OUT/profile.yaml"
  [ -f "$WORK/hil/hil.tgz" ] && cp "$WORK/hil/hil.tgz" "$OUT/hil.tgz"
  [ -f "$WORK/hil/hil_summary.json" ] && cp "$WORK/hil/hil_summary.json" "$OUT/hil_summary.json"
  echo "=== pipeline packed at +$(el) s: $(cd "$OUT" && ls | tr '\n' ' ')"
  exec >&- 2>&-
  wait "$TEE" 2>/dev/null
}
trap pack EXIT
rm -rf "$WORK"
mkdir -p "$WORK"
echo "=== pipeline start $(date -u +%FT%TZ) on $(hostname) in $(pwd): DEADLINE_S=${DEADLINE_S:-none}"
# a `git archive` copy has no .git: CHECKOUT names its commit
git_rev=${CHECKOUT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
echo "=== checkout $git_rev"

# 1. offline install (calibration/README.md step 2)
if [ "${INSTALL:-1}" != 0 ] && [ -d "$WH" ]; then
  echo "=== install (+$(el) s): $PY -m pip install --no-index --find-links $WH dpsim-dualpath"
  $PY -m pip install --no-index --find-links "$WH" dpsim-dualpath >"$WORK/install.log" 2>&1
  irc=$?
  grep -v "^Requirement already satisfied" "$WORK/install.log"
  [ "$irc" = 0 ] || { echo "=== install failed (rc $irc)"; exit 4; }
fi
$PY -P -c 'import dpsim.calibration, dpsim.hw, hydra, simpy; print("dpsim", dpsim.__file__)' || { echo "=== dpsim is not importable by $PY"; exit 4; }

# 2. calibration and fit (step 3)
if [ -n "${DEADLINE_S:-}" ]; then
  export UNTIL=$(( T0 + DEADLINE_S - ${HIL_RESERVE_S:-240} - ${FIT_RESERVE_S:-25} ))
  echo "=== calibration stages must end by +$(( UNTIL - T0 )) s"
fi
echo "=== calibration (+$(el) s): bash calibration/device_run.sh $WORK/cal ${CAL_STAGES:-(every stage)}"
if [ -n "${CAL_STAGES:-}" ]; then
  PYTHON=$PY bash calibration/device_run.sh "$WORK/cal" "$CAL_STAGES"
else
  PYTHON=$PY bash calibration/device_run.sh "$WORK/cal"
fi
unset UNTIL
[ -f "$WORK/cal/profile.yaml" ] || { echo "=== no profile was fitted: stopping before the replays"; exit 5; }
echo "=== profile (+$(el) s): sha256 $(sha256sum "$WORK/cal/profile.yaml" | cut -d' ' -f1)"

# 3. HIL replays priced from that profile (step 4), on this same machine
if [ -n "${DEADLINE_S:-}" ]; then
  export HIL_TIMEOUT=$(( T0 + DEADLINE_S - ${PACK_S:-15} - $(date +%s) ))
  [ "$HIL_TIMEOUT" -lt 30 ] && { echo "=== ${HIL_TIMEOUT}s left: no time for the replays"; exit 6; }
fi
echo "=== replays (+$(el) s, limit ${HIL_TIMEOUT:-540} s): bash hw/hil_device_run.sh $WORK/hil $HIL_ARGS --profile $WORK/cal/profile.yaml $*"
# shellcheck disable=SC2086
HIL_SMOKE=${HIL_SMOKE:-0} PYTHON=$PY bash hw/hil_device_run.sh "$WORK/hil" $HIL_ARGS --profile "$WORK/cal/profile.yaml" "$@"
rc=$?
echo "=== pipeline done rc=$rc at +$(el) s"
exit $rc
