#!/usr/bin/env bash
# Many SBC fits on a lent GPU with the chees kernel (issue 19): fits per minute by batch size.
# Run by the device tool from the repository root; what a step finished comes back in $OUT.
# The machine's image holds JAX (CUDA); the packages it lacks travel as wheels in .whl and the
# design's possessions in .gpu (both ignored by git), as benchmarks/gpu_check.sh's header says.
# A dry run here: PLATFORM=cpu PY=.venv/bin/python BATCHES="4:8" SBC_ARGS="--warmup 40 --draws 40 --thin-to 9"
set -u
OUT=${OUT:-/tmp/gpu-out}
PLATFORM=${PLATFORM:-gpu}
PY=${PY:-python3}
BATCHES=${BATCHES:-"100:100 500:1000"}  # batch:fits, each its own SBC run
STEP_S=${STEP_S:-200}                   # time limit of each run
SBC_ARGS=${SBC_ARGS:-}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

source benchmarks/gpu_env.sh  # the wheels the image lacks; versions and devices
read -r -a EXTRA <<<"$SBC_ARGS"
for spec in $BATCHES; do
    batch=${spec%%:*}
    fits=${spec##*:}
    dir="$OUT/b$batch"
    start=$SECONDS
    timeout "$STEP_S" "$PY" -m lineup_numpyro.cli sbc --platform "$PLATFORM" --model matchup --kernel chees --init plugin \
        --fits "$fits" --batch "$batch" "${EXTRA[@]}" --data .gpu/quick_sample_10k.csv --out "$dir"
    rc=$?
    saved=$(($(wc -l <"$dir/progress.jsonl") - 1))
    echo "== chees sbc batch $batch: exit $rc after $((SECONDS - start)) s (process start to exit); batches saved: $saved"
    rm -f "$dir/ranks.csv" "$dir/progress.jsonl"  # 8 files come back at most
done
