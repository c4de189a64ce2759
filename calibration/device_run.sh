#!/usr/bin/env bash
# One-shot calibration run on a GPU machine (used for calibration/reports/h100 and h200).
# Usage: bash calibration/device_run.sh OUTDIR [STAGES]
#   STAGES: space-separated subset of (the order they run in: the storage and PCIe stages the HIL
#           replay's links come from first)
#           "probe file file_mixed cuda_sizes cuda_conc cuda_launch compute cuda_blocks cpu nccl verbs fit"
#   SMOKE=1 in the environment: tiny sizes and few trials (a ~1 minute check that every stage works).
#   DEVICES=0 (or 0,1): the GPUs the cuda stages use (default: the first two visible, or GPU 0 alone;
#           one GPU cannot measure p2p or nccl -- the fit report says so).
#   FILE_DIR: directory on the storage to test (default /tmp).
#   UNTIL: a time (seconds since the epoch) by which every stage but `fit` must end: each stage's
#           timeout is cut to what is left, a stage with under 10 s left is skipped (said in the
#           log), `fit` always runs (calibration/node_pipeline.sh uses this to keep its replays).
# The `file` stage measures storage at the sizes simulated reads use: single reads/writes up to
# 1 GiB and k = 1,2,3,4,6 concurrent transfers of 128 MiB, 512 MiB and 1 GiB (a Full-Block read of
# one request is its hit KV: DS 27B stores 21,720 B/token, so a 48K-token hit is ~1.0 GiB; the HIL
# replay's median read is ~0.7 GB), each as 1 MiB requests 4 deep (the replay's queue depth), from
# a 4 GiB read file (the replay's file size), each read starting where the last ended (the
# replay's access pattern; --opt offsets=random is the other choice).  `file_mixed`
# (calibration/mixed.py, ~45 s) times 2 x 4 GiB of reads alone and with a stream of 64 MiB writes
# at 0.3 / 0.6 / 0.9 GB/s (0.6 held out), paired, through the HIL replay's own file I/O: the
# storage write weight (links.file_write.storage_weight) that `fit` fits from it.  `cuda_launch` (events around the Python copy call)
# takes 60 trials per size: its launch jitter (IQR 30-70 %) makes the median of 7 trials move by
# ~13 %.  `fit` writes OUTDIR/profile.yaml and OUTDIR/report/.
# Every stage runs in its own process under `timeout`, so a failure or a hang
# loses only that stage.  Raw results land in /tmp/dpsim_cal/run and are packed
# into OUTDIR/run.tgz after every stage (a run cut short still returns what it did).
set -u
OUT=${1:?usage: device_run.sh OUTDIR [STAGES]}
STAGES=${2:-"probe file file_mixed cuda_sizes cuda_conc cuda_launch compute cuda_blocks cpu nccl verbs fit"}
DEV=${DEVICES:+--devices $DEVICES}
FD=${FILE_DIR:-/tmp}
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=/tmp/dpsim_cal/run
[ "${KEEP:-0}" = 1 ] || rm -rf "$R"
mkdir -p "$R" "$OUT"
# -P (Python >= 3.11): the working directory is not put on sys.path, so `dpsim` is the installed one
# (from the wheelhouse, or `pip install -e .`): run from the checkout's root, the checkout's own
# dpsim/ folder would shadow it and has no dpsim.calibration / dpsim.hw (setup.py maps hw/ and
# calibration/ into the installed package).
PY="${PYTHON:-python3} -P"
if [ "${SMOKE:-0}" = 1 ]; then
  S="--max-bytes 4MiB --trials 3 --warmup 1 --conc-sizes 1MiB --levels 1,2,3 --block-counts 1,8,61 --block-sizes 16KiB --max-block-total 4MiB"
  C="--quick"
  F="--max-bytes 8MiB --conc-sizes 4MiB,8MiB --levels 1,2,3 --heldout-levels 3"
  M="--read-bytes 32MiB --reads 2 --write-bytes 8MiB --file-bytes 256MiB --host-pool 256MiB --repeats 1 --settle-s 0.2 --first-settle-s 0.2"
else
  M=""
  S=""; C=""
  F="--max-bytes 1GiB --conc-sizes 128MiB,512MiB,1GiB --levels 1,2,3,4,6 --heldout-levels 3 --warmup 1"
fi
stage() {  # name timeout_s cmd...
  local name=$1 to=$2; shift 2
  case " $STAGES " in *" $name "*) ;; *) return 0;; esac
  if [ -n "${UNTIL:-}" ] && [ "$name" != fit ]; then
    local left=$(( UNTIL - $(date +%s) ))
    if [ "$left" -lt 10 ]; then echo "=== stage $name skipped: ${left}s left before UNTIL"; return 0; fi
    [ "$left" -lt "$to" ] && to=$left
  fi
  echo "=== stage $name (timeout ${to}s) $(date -u +%T)"
  local t0=$(date +%s)
  timeout -k 10 "$to" "$@"
  echo "=== stage $name rc=$? in $(( $(date +%s) - t0 )) s"
  tar czf "$OUT/run.tgz" -C "$(dirname "$R")" run
}
stage probe 40 bash -c "nvidia-smi; nvidia-smi topo -m; $PY -c 'import torch,sys; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.device_count(), [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]); print(\"nccl\", torch.cuda.nccl.version())'; $PY -c 'import cuda.bindings; print(\"cuda-bindings\", cuda.bindings.__version__)'; df -h /tmp; free -g; nproc"
stage file 300 $PY -m dpsim.calibration run --transport file --suite all --out "$R" --file-dir "$FD" --trials 5 --config-budget 0.5 --opt file_bytes=4294967296 --opt offsets=sequential --max-block-total 64MiB --block-counts 1,8,61,256,1024 $S $F
stage file_mixed 90 $PY -m dpsim.calibration.mixed --out "$R" --file-dir "$FD" $M
stage cuda_sizes 120 $PY -m dpsim.calibration run --transport cuda --suite sizes --out "$R" --name cuda_sizes $DEV $S
stage cuda_conc 100 $PY -m dpsim.calibration run --transport cuda --suite concurrency --out "$R" --name cuda_conc $DEV $S
stage cuda_launch 60 $PY -m dpsim.calibration run --transport cuda --suite sizes --out "$R" --name cuda_sizes_launch --opt gate=false --max-bytes 64MiB --trials 60 --config-budget 0.5 $DEV $S
stage compute 120 $PY -m dpsim.calibration compute --out "$R" $C
stage cuda_blocks 120 $PY -m dpsim.calibration run --transport cuda --suite blocks --out "$R" --name cuda_blocks --trials 7 $DEV $S
stage cpu 40 $PY -m dpsim.calibration run --transport cpu --suite all --out "$R" --max-bytes 256MiB --trials 7 --config-budget 1 --max-block-total 64MiB $S
stage nccl 120 $PY -m dpsim.calibration run --transport nccl --suite all --out "$R" --trials 7 $DEV $S
stage verbs 20 $PY -m dpsim.calibration run --transport verbs --suite all --out "$R"
stage fit 120 $PY -m dpsim.calibration fit "$R" --out "$OUT/profile.yaml" --report "$OUT/report"
ls -la "$R"
