#!/usr/bin/env bash
# Run a command as one job or an array of jobs, on this machine or through Slurm (Kaldi's run.pl/slurm.pl).
#   launch.sh [options] [JOB=1:N] LOGFILE COMMAND ...
# "JOB" in LOGFILE and COMMAND becomes the job index. COMMAND runs under bash: give a pipe as one quoted
# argument; several arguments are kept as they are (spaces included).
# Options:
#   --backend local|slurm  local: jobs run in parallel here (default); slurm: one sbatch array, waited for
#   --max_jobs_run N       local: at most N jobs at once (default: all)
#   --gpu N                GPUs per job (slurm: --gres=gpu:N; local: each job gets N GPUs of its own through
#                          CUDA_VISIBLE_DEVICES, of those visible, and at most (visible / N) jobs run at once)
#   --mem SIZE             memory per job (slurm --mem), e.g. 16G
#   --num_threads N        CPUs per job (slurm --cpus-per-task; also OMP_NUM_THREADS)
#   --time T               slurm time limit (e.g. 24:00:00)
#   --partition P          slurm partition
# Each log file starts with the command and ends with "# Accounting: rc=N". Exit status is 1 if any job failed.
set -euo pipefail

backend=local; max_jobs_run=0; gpu=0; mem=""; num_threads=1; time_limit=""; partition=""
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend=$2; shift 2 ;;
        --max_jobs_run|--max-jobs-run) max_jobs_run=$2; shift 2 ;;
        --gpu) gpu=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --num_threads|--num-threads) num_threads=$2; shift 2 ;;
        --time) time_limit=$2; shift 2 ;;
        --partition) partition=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --*) echo "launch.sh: unknown option '$1'" >&2; usage; exit 2 ;;
        *) break ;;
    esac
done
first=1; last=1; array=false
if [[ $# -gt 0 && "$1" =~ ^JOB=([0-9]+):([0-9]+)$ ]]; then
    first=${BASH_REMATCH[1]}; last=${BASH_REMATCH[2]}; array=true; shift
    [ "$first" -le "$last" ] || { echo "launch.sh: empty job range JOB=$first:$last" >&2; exit 2; }
fi
[ $# -ge 2 ] || { echo "launch.sh: need LOGFILE and COMMAND" >&2; usage; exit 2; }
log=$1; shift
# One argument is a shell command line as written (pipes, redirections); several are one command whose
# arguments are kept intact (quoted), so a path with spaces stays one argument (Kaldi's run.pl does so).
if [ $# -eq 1 ]; then cmd=$1; else cmd=$(printf '%q ' "$@"); cmd=${cmd% }; fi

job_log() { $array && echo "${log//JOB/$1}" || echo "$log"; }
job_cmd() { $array && echo "${cmd//JOB/$1}" || echo "$cmd"; }

run_one() {  # index
    local l c rc
    l=$(job_log "$1"); c=$(job_cmd "$1")
    mkdir -p "$(dirname "$l")"
    {
        echo "# $c"
        echo "# Started at $(date) on $(hostname)"
    } > "$l"
    set +e
    OMP_NUM_THREADS=$num_threads bash -o pipefail -c "$c" >> "$l" 2>&1
    rc=$?
    set -e
    { echo "# Ended (rc=$rc) at $(date)"; echo "# Accounting: rc=$rc"; } >> "$l"
    return $rc
}

# local --gpu N: the visible GPUs dealt out N to a slot; a job runs in a free slot (as ESPnet's run.pl
# --gpu on one machine), so that parallel teacher or decoding jobs never share a GPU
gpu_slots() {
    local ids=()
    if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then IFS=, read -ra ids <<< "${CUDA_VISIBLE_DEVICES}"
    elif command -v nvidia-smi > /dev/null; then mapfile -t ids < <(nvidia-smi --query-gpu=index --format=csv,noheader)
    fi
    slots=()
    local s; for ((s = 0; s + gpu <= ${#ids[@]}; s += gpu)); do slots+=("$(IFS=,; echo "${ids[*]:s:gpu}")"); done
    [ ${#slots[@]} -gt 0 ] || { echo "launch.sh: --gpu ${gpu} per job, but ${#ids[@]} GPU(s) visible" \
        "(CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES:-}', nvidia-smi: $(command -v nvidia-smi || echo none))" >&2; exit 1; }
}
free_slot() {  # slot=the index of a slot whose job has ended (waits for one if all are busy; no subshell,
    local s running  # which could neither see nor wait for this shell's jobs)
    while true; do
        running=" $(jobs -rp | xargs) "
        for s in "${!slots[@]}"; do
            if [[ -z "${slot_pid[s]:-}" || "${running}" != *" ${slot_pid[s]} "* ]]; then slot=$s; return; fi
        done
        wait -n || true
    done
}

if [ "$backend" = local ]; then
    pids=(); failed=0; slot_pid=()
    [ "$gpu" -gt 0 ] && gpu_slots
    for i in $(seq "$first" "$last"); do
        if [ "$max_jobs_run" -gt 0 ]; then
            while [ "$(jobs -rp | wc -l)" -ge "$max_jobs_run" ]; do wait -n || true; done
        fi
        if [ "$gpu" -gt 0 ]; then
            free_slot
            CUDA_VISIBLE_DEVICES=${slots[slot]} run_one "$i" & pids+=("$!"); slot_pid[slot]=$!
        else
            run_one "$i" & pids+=("$!")
        fi
    done
    for idx in "${!pids[@]}"; do
        wait "${pids[$idx]}" || { failed=$((failed + 1)); l=$(job_log $((first + idx)))
            # the job's last words (its error) before the accounting lines
            echo "launch.sh: job $((first + idx)) failed, see ${l}: $(grep -v '^# ' "$l" | tail -n 1)" >&2; }
    done
    if [ "$failed" -gt 0 ]; then
        echo "launch.sh: $failed / $((last - first + 1)) failed" >&2; exit 1
    fi
elif [ "$backend" = slurm ]; then
    command -v sbatch >/dev/null || { echo "launch.sh: --backend slurm but sbatch is not on PATH" >&2; exit 1; }
    qdir=$(dirname "$(job_log "$first")")/q; mkdir -p "$qdir"
    script=$qdir/$(basename "${log//JOB/x}" .log).sh
    {
        echo "#!/usr/bin/env bash"
        echo "#SBATCH --array=$first-$last"
        echo "#SBATCH --cpus-per-task=$num_threads"
        echo "#SBATCH --output=$qdir/slurm-%A_%a.out"
        [ "$gpu" -gt 0 ] && echo "#SBATCH --gres=gpu:$gpu"
        [ -n "$mem" ] && echo "#SBATCH --mem=$mem"
        [ -n "$time_limit" ] && echo "#SBATCH --time=$time_limit"
        [ -n "$partition" ] && echo "#SBATCH --partition=$partition"
        echo "cd $(pwd)"
        # The inner launch.sh sees JOB=i:i and runs job i locally on the allocated node.
        printf 'exec %q --num_threads %q "JOB=$SLURM_ARRAY_TASK_ID:$SLURM_ARRAY_TASK_ID" %q %q\n' \
            "$(cd "$(dirname "$0")" && pwd)/$(basename "$0")" "$num_threads" "$log" "$cmd"
    } > "$script"
    sbatch --wait "$script" || {
        echo "launch.sh: slurm array failed; logs: $(job_log '*')" >&2; exit 1; }
else
    echo "launch.sh: unknown backend '$backend' (local or slurm)" >&2; exit 2
fi
