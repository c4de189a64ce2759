#!/bin/bash
# The ladder (and whatever bench_sim.py scenarios are named) on a lent 16-core machine: run from
# the repository root *there*, with the dependencies it lacks carried as wheels in ./.whl (see
# benchmarks/README.md, "On a lent machine").  Builds the compiled core in place with all cores,
# then runs bench_sim.py with one scenario process per core.  Output under $OUT (or ./lent_out).
#
#   bash benchmarks/lent_ladder.sh [REPEAT=3] [JOBS=8] [ONLY=ladder]
set -o pipefail
REP=${1:-3}; JOBS=${2:-8}; ONLY=${3:-ladder}
OUT=${OUT:-lent_out}; mkdir -p "$OUT"
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || { echo "lent_ladder: installing .whl/*.whl failed"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c "import simpy, hydra, omegaconf, pandas, numpy" 2>/dev/null \
    || { echo "lent_ladder: simpy, hydra-core, omegaconf, pandas or numpy missing: carry their wheels in .whl"; exit 1; }
{ lscpu | head -25; nproc; python3 -V; } > "$OUT/machine.txt" 2>&1
t0=$(date +%s)
python3 setup.py build_ext --inplace -j "$(nproc)" > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
if grep -q '\*\*\*' "$OUT/build.log"; then grep '\*\*\*' "$OUT/build.log"; echo "lent_ladder: the compiled core was not built"; exit 1; fi
echo "build: $(( $(date +%s) - t0 )) s, dpsim.net $(python3 -c 'import dpsim.net as n; print(n.IMPLEMENTATION)')"
PYTHONUNBUFFERED=1 python3 benchmarks/bench_sim.py --only "$ONLY" --no-ref --repeat "$REP" --jobs "$JOBS" \
    --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt" | tail -40
