#!/usr/bin/env bash
# The prepared GPU checks, as one call for a lent GPU.
#
# Run from the repository root on a machine with CUDA and PyTorch (nothing else of the
# package's dependencies beyond numpy, scipy, pandas and pyyaml is needed):
#   bash benchmarks/gpu_check.sh            # results under $OUT, else results/gpu_check
# Four steps, each capped by `timeout` so that the whole stays under 10 minutes; a step
# that fails or runs out of time is logged and the next one runs:
#   1. bench_cn_ensemble.py on the GPU: sequential vs batched-ensemble CN slabs, the
#      default and the paper settings on the default spheres data (as on the CPU);
#   2. bench_cn_gpu.py, P22 360^3 at the paper's settings: anchor, 16 chunk slabs each way,
#      the whole-volume time extrapolated (the paper: 19.6 min on a Quadro RTX 8000), and
#      the whole reconstruction with its metrics if it fits the deadline;
#   3. bench_learned_gpu.py, P22 360^3 at the paper preset's IsoNet and DeepDeWedge
#      settings: one full-length IsoNet epoch, two DeepDeWedge epochs, both predictions,
#      each whole run extrapolated (P22 simulated once, shared with step 2);
#   4. bench_cn_gpu.py, spheres 256 x 1024 x 1024: anchor and 8 chunk slabs each way.
# Six files come back: gpu.txt, steps.log (every step's output) and one JSON per step.
set -uo pipefail
out=${OUT:-results/gpu_check}
mkdir -p "$out"
tmp=$(mktemp -d)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export BENCH_SIM_CACHE=${BENCH_SIM_CACHE:-$tmp/sim}
python=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: run, append its output to $out/steps.log
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "=== $name (limit $limit s)" >>"$out/steps.log"
    timeout "$limit" "$@" >"$tmp/$name.log" 2>&1
    local rc=$?
    cat "$tmp/$name.log" >>"$out/steps.log"
    echo "$name: exit $rc after $((SECONDS - t0)) s (limit $limit s)" | tee -a "$out/steps.log"
    tail -n 25 "$tmp/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    | tee -a "$out/gpu.txt"
step ensemble 90 "$python" benchmarks/bench_cn_ensemble.py --device cuda \
    --settings default paper --repeats 3 --out "$out/ensemble.json"
step p22 240 "$python" benchmarks/bench_cn_gpu.py --dataset p22 --device cuda --slabs 16 \
    --full --deadline 210 --out "$out/p22.json"
step learned 170 "$python" benchmarks/bench_learned_gpu.py --dataset p22 --device cuda \
    --out "$out/learned.json"
step spheres 90 "$python" benchmarks/bench_cn_gpu.py --dataset spheres --device cuda \
    --slabs 8 --out "$out/spheres.json"
