#!/usr/bin/env bash
# One-shot hardware-in-the-loop replay on a two-GPU machine (used for calibration/reports/hil).
# Usage: bash hw/hil_device_run.sh OUTDIR [extra `python -m calibration.hil` arguments]
# Needs dpsim's pure-Python dependencies missing from the device image (simpy, hydra, omegaconf,
# antlr4) under .whl/site (copied from a local install; the device has no package index).
# A quick smoke replay runs first; OUTDIR/hil.tgz gets both result directories.
set -u
OUT=${1:?usage: hil_device_run.sh OUTDIR [args]}
shift
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
PY=${PYTHON:-python3}
$PY -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 || true
export PYTHONPATH=$PWD:$PWD/.whl/site${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
pack() { tar czf "$OUT/hil.tgz" -C /tmp $(cd /tmp && ls -d hil_smoke hil_out 2>/dev/null); }
trap pack EXIT
echo "=== probe $(date -u +%T)"
nvidia-smi --query-gpu=index,name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv
nvidia-smi topo -m
$PY -c 'import sys, torch, simpy, hydra, omegaconf, pandas, pyarrow; print(sys.version.split()[0], "torch", torch.__version__, torch.version.cuda, "gpus", torch.cuda.device_count(), "hydra", hydra.__version__)'
df -h /tmp; free -g | head -2; nproc
echo "=== smoke $(date -u +%T)"
timeout -k 10 150 $PY -m calibration.hil --out /tmp/hil_smoke --quick --device cuda --no-probe || { echo "=== smoke failed"; exit 3; }
echo "=== replay $(date -u +%T)"
timeout -k 10 480 $PY -m calibration.hil --out /tmp/hil_out --device cuda "$@"
rc=$?
echo "=== done rc=$rc $(date -u +%T)"
exit $rc
