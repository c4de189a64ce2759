#!/usr/bin/env bash
# One-shot hardware-in-the-loop replay on a GPU machine (used for calibration/reports/hil, h200).
# Usage: bash hw/hil_device_run.sh OUTDIR [extra `python -m dpsim.calibration.hil` arguments]
#   e.g. bash hw/hil_device_run.sh OUT --devices 0 --systems round_robin,dualpath --replays 3 \
#            --profile calibration/profiles/h200_measured.yaml
# dpsim must be importable by $PYTHON (default python3): on a node without a package index, install
# it first from a wheelhouse (calibration/README.md, "Offline GPU node"):
#   python3 -m pip install --no-index --find-links calibration/wheelhouse dpsim-dualpath
# A quick smoke replay runs first (with the same --devices; HIL_SMOKE=0 skips it); OUTDIR/hil.tgz
# gets both result directories, hil_summary.json is also copied to OUTDIR.  HIL_TIMEOUT (s, default
# 540): the replay's time limit (its hil_summary.json is rewritten after every replay, so a run cut
# short keeps the replays it finished).
set -u
OUT=${1:?usage: hil_device_run.sh OUTDIR [args]}
shift
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# -P (Python >= 3.11): the working directory is not put on sys.path, so `dpsim` is the installed one
# (from the wheelhouse, or `pip install -e .`): run from the checkout's root, the checkout's own
# dpsim/ folder would shadow it and has no dpsim.calibration / dpsim.hw (setup.py maps hw/ and
# calibration/ into the installed package).
PY="${PYTHON:-python3} -P"
mkdir -p "$OUT"
rm -rf /tmp/hil_out /tmp/hil_smoke  # this run's results only
DEVARG=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --devices) DEVARG=(--devices "${args[i+1]:-}");;
    --devices=*) DEVARG=("${args[i]}");;
  esac
done
pack() {
  tar czf "$OUT/hil.tgz" -C /tmp $(cd /tmp && ls -d hil_smoke hil_out 2>/dev/null)
  [ -f /tmp/hil_out/hil_summary.json ] && cp /tmp/hil_out/hil_summary.json "$OUT/"
}
trap pack EXIT
echo "=== probe $(date -u +%T)"
nvidia-smi --query-gpu=index,name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv
nvidia-smi topo -m
$PY -c 'import sys, torch, simpy, hydra, omegaconf, pandas, pyarrow, dpsim, dpsim.calibration.hil; print(sys.version.split()[0], "torch", torch.__version__, torch.version.cuda, "gpus", torch.cuda.device_count(), "hydra", hydra.__version__, "dpsim", dpsim.__file__)' \
  || { echo "=== dpsim or a dependency is not importable by $PY: see calibration/README.md (Offline GPU node)"; exit 4; }
df -h /tmp; free -g | head -2; nproc
if [ "${HIL_SMOKE:-1}" != 0 ]; then
  echo "=== smoke $(date -u +%T)"
  timeout -k 10 150 $PY -m dpsim.calibration.hil --out /tmp/hil_smoke --quick --device cuda --no-probe ${DEVARG[@]+"${DEVARG[@]}"} || { echo "=== smoke failed"; exit 3; }
fi
echo "=== replay $(date -u +%T)"
timeout -k 10 ${HIL_TIMEOUT:-540} $PY -m dpsim.calibration.hil --out /tmp/hil_out --device cuda "$@"
rc=$?
echo "=== done rc=$rc $(date -u +%T)"
exit $rc
