#!/usr/bin/env bash
# Train one lineup-numpyro run on a pod: configured by environment variables, written to the
# mounted volume, and resumed from its checkpoint when the pod (re)starts. See runpod/README.md.
#
# Every (re)start asks `lineup-numpyro status` about $VOLUME/runs/$RUN_NAME and does one of three things:
#   complete                              -> train nothing, show the summary
#   running, stopped, interrupted, failed -> lineup-numpyro train --resume RUN_DIR
#   none, or started (it stopped before   -> lineup-numpyro train ... --out RUN_DIR --overwrite
#   sampling began)
set -euo pipefail

MODEL="${MODEL:-matchup}"                 # simplified | matchup | hierarchical
DATA="${DATA:-}"                          # CSV/Parquet; relative paths are under $VOLUME; empty: built-in season
DATA_RECEIVE_CODE="${DATA_RECEIVE_CODE:-}" # runpodctl one-time code: receive DATA first if it is missing
VOLUME="${VOLUME:-/workspace}"            # the pod's persistent volume
RUN_NAME="${RUN_NAME:-$MODEL}"            # the run directory is $VOLUME/runs/$RUN_NAME
CHAINS="${CHAINS:-4}"
WARMUP="${WARMUP:-1000}"
DRAWS="${DRAWS:-1000}"
SEED="${SEED:-0}"
TARGET_ACCEPT="${TARGET_ACCEPT:-}"           # empty: the model's default (0.9; 0.97 for hierarchical)
CHECKPOINT_EVERY="${CHECKPOINT_EVERY:-250}" # draws per chain between checkpoints
PLATFORM="${PLATFORM:-cpu}"               # cpu | gpu
CHAIN_METHOD="${CHAIN_METHOD:-parallel}"  # parallel (one chain per core) | vectorized (GPU) | sequential
EXTRA_ARGS="${EXTRA_ARGS:-}"              # more `train` options, split on spaces (new runs only)
SEND_RESULTS="${SEND_RESULTS:-0}"         # 1: pack the run directory and `runpodctl send` it
WHEN_DONE="${WHEN_DONE:-exit}"            # exit | sleep (keep the container up) | stop (stop this pod)
LINEUP_NUMPYRO="${LINEUP_NUMPYRO:-lineup-numpyro}"

log() {
    printf '%s [runpod-entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

die() {
    log "error: $*"
    exit 2
}

# state RUN_DIR: none, started, running, stopped, interrupted, failed or complete
# (`lineup-numpyro status`, which also tells a dead run from a live one).
run_state() {
    "$LINEUP_NUMPYRO" status "$1" --get state
}

# The error a failed run recorded, if any.
run_error() {
    "$LINEUP_NUMPYRO" status "$1" --get error
}

# What to do once the work is over: exit with CODE, keep the container up, or stop the pod
# (a pod restarts a container that exits, which would only show the summary again).
finish() {
    local code="$1"
    case "$WHEN_DONE" in
        exit) ;;
        stop)
            if command -v runpodctl >/dev/null && [[ -n "${RUNPOD_POD_ID:-}" ]]; then
                log "stopping pod $RUNPOD_POD_ID (its volume, and the run on it, are kept)"
                # `pod stop` is runpodctl v2; `stop pod` is v1 (and a deprecated alias in v2)
                runpodctl pod stop "$RUNPOD_POD_ID" || runpodctl stop pod "$RUNPOD_POD_ID" ||
                    log "could not stop the pod; stop it yourself"
            else
                log "WHEN_DONE=stop needs runpodctl and RUNPOD_POD_ID (set on RunPod pods); stop the pod yourself"
            fi
            log "waiting to be stopped"
            sleep infinity
            ;;
        sleep)
            log "done (exit code $code); sleeping until the pod is stopped"
            sleep infinity
            ;;
    esac
    exit "$code"
}

case "$WHEN_DONE" in exit | sleep | stop) ;; *) die "WHEN_DONE must be exit, sleep or stop, not '$WHEN_DONE'" ;; esac
[[ "$RUN_NAME" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
    die "RUN_NAME must be letters, digits, '.', '_' or '-' (got '$RUN_NAME')"
command -v "$LINEUP_NUMPYRO" >/dev/null || die "'$LINEUP_NUMPYRO' not found (set LINEUP_NUMPYRO)"

RUN_DIR="$VOLUME/runs/$RUN_NAME"
data_path=""
if [[ -n "$DATA" ]]; then
    if [[ "$DATA" = /* ]]; then data_path="$DATA"; else data_path="$VOLUME/$DATA"; fi
fi
mkdir -p "$VOLUME/runs"
log "run directory $RUN_DIR; model $MODEL; data ${data_path:-built-in simulated season}"

[[ -z "$DATA_RECEIVE_CODE" || -n "$data_path" ]] || die "DATA_RECEIVE_CODE needs DATA: where the received file will be"
if [[ -n "$data_path" && ! -e "$data_path" && -n "$DATA_RECEIVE_CODE" ]]; then
    command -v runpodctl >/dev/null || die "DATA_RECEIVE_CODE is set but runpodctl is not installed"
    log "receiving the data with runpodctl into $(dirname "$data_path")"
    mkdir -p "$(dirname "$data_path")"
    (cd "$(dirname "$data_path")" && runpodctl receive "$DATA_RECEIVE_CODE")
    [[ -e "$data_path" ]] || die "received the code's file(s), but $data_path is not among them"
fi

state="$(run_state "$RUN_DIR")"
code=0
if [[ "$state" == complete ]]; then
    log "decision: already complete; not training again (delete $RUN_DIR or pick another RUN_NAME to refit)"
    "$LINEUP_NUMPYRO" summary "$RUN_DIR" || code=$?
elif [[ "$state" != none && "$state" != started ]]; then
    if [[ "$state" == failed ]]; then
        log "the previous attempt failed: $(run_error "$RUN_DIR")"
    fi
    log "decision: resume the $state run from its checkpoint, with the settings it was started with"
    [[ -z "$EXTRA_ARGS" ]] || log "EXTRA_ARGS is ignored when resuming"
    "$LINEUP_NUMPYRO" train --resume "$RUN_DIR" || code=$?
else
    if [[ "$state" == started ]]; then
        log "decision: start over; the last attempt stopped before sampling began"
    else
        log "decision: new run"
    fi
    [[ -z "$data_path" || -e "$data_path" ]] || die "DATA: $data_path does not exist"
    args=(train --model "$MODEL" --out "$RUN_DIR" --overwrite
        --chains "$CHAINS" --warmup "$WARMUP" --draws "$DRAWS" --seed "$SEED"
        --checkpoint-every "$CHECKPOINT_EVERY" --platform "$PLATFORM" --chain-method "$CHAIN_METHOD")
    [[ -z "$TARGET_ACCEPT" ]] || args+=(--target-accept "$TARGET_ACCEPT")
    [[ -z "$data_path" ]] || args+=(--data "$data_path")
    read -r -a extra <<<"$EXTRA_ARGS"
    args+=(${extra[@]+"${extra[@]}"})
    log "running: $LINEUP_NUMPYRO ${args[*]}"
    "$LINEUP_NUMPYRO" "${args[@]}" || code=$?
fi

if [[ "$code" -ne 0 ]]; then
    log "lineup-numpyro failed (exit code $code); run status: $(run_state "$RUN_DIR"). A restart resumes the run if it got as far as sampling."
    finish "$code"
fi
log "run complete: $RUN_DIR"

if [[ "$SEND_RESULTS" == 1 ]]; then
    archive="$VOLUME/runs/$RUN_NAME.tar.gz"
    tar -czf "$archive" -C "$VOLUME/runs" "$RUN_NAME"
    if command -v runpodctl >/dev/null; then
        log "sending $archive: run 'runpodctl receive CODE' on your machine with the code below"
        runpodctl send "$archive" || log "runpodctl send failed; the results stay in $RUN_DIR"
    else
        log "runpodctl is not installed; the results stay in $archive"
    fi
fi
finish 0
