#!/usr/bin/env bash
# Create a RunPod pod that runs one lineup-numpyro training job (runpod/entrypoint.sh) and
# print the commands to follow it, fetch its results and stop it. See runpod/README.md.
# Uses runpodctl v2 (`runpodctl pod create`); v1's `create pod` cannot create CPU pods.
# Written for bash 3.2 too (macOS).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: runpod/launch.sh [--cpu | --gpu] --image IMAGE [options]

Create a RunPod pod that trains one lineup-numpyro run and resumes it after a restart.

Pod:
  --cpu                  CPU pod (default; the right choice for the suffstats likelihood)
  --gpu                  GPU pod (image built from runpod/Dockerfile.gpu)
  --image IMAGE          image pushed to a registry RunPod can pull from
                         (default: lineup-numpyro:cpu, or lineup-numpyro:gpu with --gpu)
  --name NAME            pod name (default: lineup-RUN_NAME)
  --gpu-type ID          GPU type, as `runpodctl gpu list` names it (default: NVIDIA GeForce RTX 4090)
  --volume-size GB       persistent volume at /workspace (default: 5)
  --container-disk GB    container disk (default: 20)
  --network-volume ID    attach this network volume at /workspace instead (e.g. holding your data)
  --cloud-type TYPE      SECURE or COMMUNITY (default: SECURE)
  --registry-auth ID     registry credentials for a private image (`runpodctl registry list`)

Run (passed to the pod as environment variables; see the README's table):
  --model MODEL          simplified, matchup or hierarchical (default: matchup)
  --data PATH            possessions file on the volume, relative to /workspace
                         (default: the built-in simulated season of 96,837 possessions)
  --data-code CODE       one-time code of `runpodctl send FILE` on your machine: the pod
                         receives the file as --data before training (--data names the file)
  --run-name NAME        run directory /workspace/runs/NAME (default: the model's name)
  --chains N --warmup N --draws N --seed N --target-accept X --checkpoint-every N
  --extra-args 'ARGS'    further `lineup-numpyro train` options
  --when-done ACTION     stop (default: stop the pod once the results are fetched), sleep or exit
  --no-send              do not offer the results with `runpodctl send` when the run is done
  --env KEY=VALUE        any other environment variable (repeatable)

  --dry-run              print the commands instead of running them (runpodctl not needed)
  -h, --help             this message
EOF
}

die() {
    printf 'launch.sh: %s\n' "$*" >&2
    exit 2
}

# A word as a shell would need it typed: bare if it is safe, else in single quotes.
quote() {
    case "$1" in
        '' | *[!A-Za-z0-9_./:=,@%+-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
        *) printf '%s' "$1" ;;
    esac
}

# Print a command, quoted so that it can be pasted into a shell.
show() {
    local out="" word
    for word in "$@"; do out="$out $(quote "$word")"; done
    printf '%s\n' "${out# }"
}

# A string as a JSON string literal (runpodctl v2 takes --env as a JSON object).
json_string() {
    local s="$1"
    case "$s" in *[[:cntrl:]]*) die "control characters are not allowed in environment values" ;; esac
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "$s"
}

need_value() {
    [ "$#" -ge 2 ] || die "$1 needs a value"
}

kind=cpu
image=""
pod_name=""
gpu_type="NVIDIA GeForce RTX 4090"
volume_size=5
container_disk=20
network_volume=""
cloud_type=SECURE
registry_auth=""
dry_run=0
send_results=1
when_done=stop
run_name=""
data=""
data_code=""
env_keys=(MODEL)
env_values=(matchup)

# set_env KEY VALUE: set (or replace) one of the pod's environment variables.
set_env() {
    local i
    for i in "${!env_keys[@]}"; do
        if [ "${env_keys[$i]}" = "$1" ]; then
            env_values[i]="$2"
            return
        fi
    done
    env_keys+=("$1")
    env_values+=("$2")
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --cpu) kind=cpu ;;
        --gpu) kind=gpu ;;
        --image) need_value "$@"; image="$2"; shift ;;
        --name) need_value "$@"; pod_name="$2"; shift ;;
        --gpu-type) need_value "$@"; gpu_type="$2"; shift ;;
        --volume-size) need_value "$@"; volume_size="$2"; shift ;;
        --container-disk) need_value "$@"; container_disk="$2"; shift ;;
        --network-volume) need_value "$@"; network_volume="$2"; shift ;;
        --cloud-type) need_value "$@"; cloud_type="$2"; shift ;;
        --registry-auth) need_value "$@"; registry_auth="$2"; shift ;;
        --model) need_value "$@"; set_env MODEL "$2"; shift ;;
        --data) need_value "$@"; data="$2"; set_env DATA "$2"; shift ;;
        --data-code) need_value "$@"; data_code="$2"; set_env DATA_RECEIVE_CODE "$2"; shift ;;
        --run-name) need_value "$@"; run_name="$2"; set_env RUN_NAME "$2"; shift ;;
        --chains) need_value "$@"; set_env CHAINS "$2"; shift ;;
        --warmup) need_value "$@"; set_env WARMUP "$2"; shift ;;
        --draws) need_value "$@"; set_env DRAWS "$2"; shift ;;
        --seed) need_value "$@"; set_env SEED "$2"; shift ;;
        --target-accept) need_value "$@"; set_env TARGET_ACCEPT "$2"; shift ;;
        --checkpoint-every) need_value "$@"; set_env CHECKPOINT_EVERY "$2"; shift ;;
        --extra-args) need_value "$@"; set_env EXTRA_ARGS "$2"; shift ;;
        --when-done) need_value "$@"; when_done="$2"; shift ;;
        --no-send) send_results=0 ;;
        --env)
            need_value "$@"
            case "$2" in [A-Za-z_]*=*) ;; *) die "--env takes KEY=VALUE, got '$2'" ;; esac
            set_env "${2%%=*}" "${2#*=}"
            shift
            ;;
        --dry-run) dry_run=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
    shift
done

case "$when_done" in stop | sleep | exit) ;; *) die "--when-done must be stop, sleep or exit" ;; esac
case "$cloud_type" in SECURE | COMMUNITY) ;; *) die "--cloud-type must be SECURE or COMMUNITY" ;; esac
[ -n "$image" ] || image="lineup-numpyro:$kind"
[ -n "$run_name" ] || run_name="${env_values[0]}"
case "$run_name" in
    [A-Za-z0-9]*) ;;
    *) die "--run-name must start with a letter or digit" ;;
esac
case "$run_name" in *[!A-Za-z0-9._-]*) die "--run-name may hold only letters, digits, '.', '_' and '-'" ;; esac
[ -z "$data_code" ] || [ -n "$data" ] || die "--data-code needs --data (where the received file will be)"
[ -n "$pod_name" ] || pod_name="lineup-$run_name"
set_env RUN_NAME "$run_name"
set_env SEND_RESULTS "$send_results"
set_env WHEN_DONE "$when_done"

env_json=""
for i in "${!env_keys[@]}"; do
    env_json="$env_json${env_json:+,}$(json_string "${env_keys[$i]}"):$(json_string "${env_values[$i]}")"
done
env_json="{$env_json}"

create=(runpodctl pod create --name "$pod_name" --image "$image" --cloud-type "$cloud_type"
    --container-disk-in-gb "$container_disk" --volume-mount-path /workspace --env "$env_json")
if [ "$kind" = gpu ]; then
    create+=(--compute-type GPU --gpu-id "$gpu_type" --gpu-count 1)
else
    create+=(--compute-type CPU)
fi
if [ -n "$network_volume" ]; then
    create+=(--network-volume-id "$network_volume")
else
    create+=(--volume-in-gb "$volume_size")
fi
[ -z "$registry_auth" ] || create+=(--registry-auth-id "$registry_auth")

if [ "$dry_run" = 1 ]; then
    echo "# dry run: the pod would be created with"
    show "${create[@]}"
else
    command -v runpodctl >/dev/null || die "runpodctl not found: install runpodctl v2 (see runpod/README.md) or use --dry-run"
    show "${create[@]}"
    "${create[@]}"
fi

archive="$run_name.tar.gz"
echo
echo "# then, with POD_ID from the output above (or: runpodctl pod list --name $(quote "$pod_name")):"
echo "# follow the training log (or the pod's Logs tab in the RunPod console)"
show runpodctl pod logs POD_ID --follow
if [ -n "$data_code" ]; then
    echo "# keep 'runpodctl send $(quote "$(basename "$data")")' running on your machine until the pod has received it"
fi
if [ "$send_results" = 1 ]; then
    echo "# when the log says 'sending', fetch the results with the one-time code it prints"
    show runpodctl receive CODE
    show tar -xzf "$archive"
fi
echo "# the run directory stays on the pod's volume: /workspace/runs/$run_name"
if [ "$when_done" = stop ]; then
    echo "# the pod stops itself when done; to stop it earlier (it resumes from its checkpoint on start)"
else
    echo "# stop the pod when done (it resumes from its checkpoint on start)"
fi
show runpodctl pod stop POD_ID
show runpodctl pod start POD_ID
echo "# delete the pod and its volume once you have the results"
show runpodctl pod delete POD_ID
