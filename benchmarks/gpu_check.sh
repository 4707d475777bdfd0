#!/usr/bin/env bash
# One GPU session's checks (issues 18 and 19), run on a lent GPU machine by the device tool:
#   1. SBC of the hierarchical model, 1,000 fits, batched on the GPU (resumable: progress.jsonl);
#   2. SBC of the matchup model, 1,000 fits, batched: fits per minute against the CPU loop;
#   3. the default matchup job (`train`) on the GPU, vectorised chains, 4 and 32 chains.
# Each step has its own time limit so that the ones after it still run; what a step finished
# comes back in $OUT. The machine's image holds JAX 0.11.2 (CUDA); the packages it lacks travel as
# wheels in .whl, and the design's possessions in .gpu (both ignored by git):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl numpyro==0.22.0 arviz==0.23.4 xarray-einstats==0.9.1 \
#     h5netcdf==1.8.2 platformdirs==4.3.8
#   mkdir -p .gpu && cp ../shared/data/quick_sample_10k.csv .gpu/
set -u
OUT=${OUT:-/tmp/gpu-out}
HIER_S=${HIER_S:-330}
MATCH_S=${MATCH_S:-150}
TRAIN_S=${TRAIN_S:-45}
HIER_BATCH=${HIER_BATCH:-500}
MATCH_BATCH=${MATCH_BATCH:-1000}
FITS=${FITS:-1000}
PLATFORM=${PLATFORM:-gpu}  # a dry run here: PLATFORM=cpu FITS=4 HIER_BATCH=4 MATCH_BATCH=4 PY=.venv/bin/python
PY=${PY:-python3}
SBC_ARGS=${SBC_ARGS:-}  # e.g. "--warmup 30 --draws 30 --thin-to 9" for a dry run
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

source benchmarks/gpu_env.sh  # the wheels the image lacks; versions and devices
CLI=("$PY" -m lineup_numpyro.cli)
read -r -a EXTRA <<<"$SBC_ARGS"
DATA=.gpu/quick_sample_10k.csv

sbc() {  # model, batch, seconds
    local start=$SECONDS
    timeout "$3" "${CLI[@]}" sbc --platform "$PLATFORM" --model "$1" --fits "$FITS" --batch "$2" "${EXTRA[@]}" \
        --data "$DATA" --out "$OUT/$1"
    echo "== sbc $1: exit $? after $((SECONDS - start)) s; fits saved: $(($(wc -l <"$OUT/$1/progress.jsonl") - 1)) batches"
    rm -f "$OUT/$1/ranks.csv"  # 8 files come back at most; ranks.csv follows from progress.jsonl
}
sbc hierarchical "$HIER_BATCH" "$HIER_S"
sbc matchup "$MATCH_BATCH" "$MATCH_S"

{
    for chains in 4 4 32; do
        start=$(date +%s.%N)
        timeout "$TRAIN_S" "${CLI[@]}" train --model matchup --platform "$PLATFORM" --chain-method vectorized --chains $chains \
            --out /tmp/train-$chains --overwrite >/dev/null 2>&1
        rc=$?
        end=$(date +%s.%N)
        echo "train chains=$chains rc=$rc wall_s=$("$PY" -c "print(round($end - $start, 2))")"
        "$PY" -c "import json; d = json.load(open('/tmp/train-$chains/diagnostics.json')); \
print({k: d[k] for k in ('device', 'timing', 'min_ess_bulk', 'max_rhat', 'divergences', 'mean_step_size')})"
    done
} 2>&1 | tee "$OUT/train.txt"
