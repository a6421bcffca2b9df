# Job launchers for palign.sh, Kaldi style: "$train_cmd JOB=1:N LOG command ...".
# Backends of utils/launch.sh: "local" runs jobs in parallel on this machine; "slurm" submits one
# sbatch array per call and waits for it. Pick one with cmd_backend (env or edit here).
cmd_backend=${cmd_backend:-local}

if [ "$cmd_backend" = local ]; then
    export train_cmd="utils/launch.sh --backend local"
    export cuda_cmd="utils/launch.sh --backend local"
    export decode_cmd="utils/launch.sh --backend local"
elif [ "$cmd_backend" = slurm ]; then
    # Adjust partitions, memory and time to your cluster.
    export train_cmd="utils/launch.sh --backend slurm --mem 16G --time 24:00:00"
    export cuda_cmd="utils/launch.sh --backend slurm --mem 64G --time 48:00:00 --gpu 1"
    export decode_cmd="utils/launch.sh --backend slurm --mem 32G --time 12:00:00 --gpu 1"
else
    echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local or slurm)" >&2
    return 1 2>/dev/null || exit 1
fi
