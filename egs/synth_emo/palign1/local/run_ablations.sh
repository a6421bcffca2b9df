#!/usr/bin/env bash
# Ablations on top of a finished ./run.sh: each variant of conf/ablations.yaml (the main training config with
# some keys replaced) is trained, decoded and scored (stages 5-8) on the main run's data and teacher targets,
# in exp/ablations/<variant>_seed<N>/; then stage 12 writes the "Ablations" section of RESULTS.md.
#   local/run_ablations.sh [--llm smollm2] [--variants "main paper ..."] [--seeds 3] [--seed_list "0 1 2"]
# A finished variant/seed (its .done file) is skipped: rerunning resumes.
set -euo pipefail

llm=smollm2
variants="main paper kl kl_ce multitask no_pitch no_aux no_speaker_norm sorted_batches warm_start"
seeds=1
seed_list=""
while [ $# -gt 0 ]; do
    case "$1" in
        --llm) llm=$2; shift 2 ;;
        --variants) variants=$2; shift 2 ;;
        --seeds) seeds=$2; shift 2 ;;
        --seed_list) seed_list=$2; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run_ablations.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "${seed_list}" ] || seed_list=$(seq 0 $((seeds - 1)) | xargs)
. ./path.sh
log() { echo "$(date +%Y-%m-%dT%H:%M:%S) (run_ablations.sh) $*"; }

base=conf/train_${llm}.yaml
teacher=teacher_${llm}
abl=exp/ablations
[ -d "exp/${teacher}" ] || { log "exp/${teacher} is missing: run ./run.sh --llm ${llm} first (stages 1-4)"; exit 1; }
mkdir -p "${abl}/conf"
cp conf/ablations.yaml "${abl}/variants.yaml"  # what each variant changes, for RESULTS.md

# multitask needs the style and transcript targets: stage 4 adds them (replies already written are reused).
if [[ " ${variants} " == *" multitask "* ]] && [ ! -s "exp/${teacher}/train/style" ]; then
    log "stage 4 for the multitask variant's style and asr targets"
    ./run.sh --llm "${llm}" --stage 4 --stop_stage 4 \
        --teacher_tasks "response response_neutral emotion emotion_neutral style asr"
fi

for v in ${variants}; do
    python - "${base}" conf/ablations.yaml "${v}" "${abl}/conf/${v}.yaml" <<'PY'
import sys, yaml
base, variants, name, out = sys.argv[1:]
table = yaml.safe_load(open(variants))
if name not in table:
    sys.exit(f"run_ablations.sh: no variant '{name}' in {variants} (known: {' '.join(table)})")
def merge(a, b):
    return {**a, **{k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
                    for k, v in b.items()}}
conf = merge(yaml.safe_load(open(base)), table[name] or {})
open(out, "w").write(f"# {base} with the '{name}' variant of {variants}\n" + yaml.safe_dump(conf, sort_keys=False))
PY
    for s in ${seed_list}; do
        dir=${abl}/${v}_seed${s}
        if [ -e "${dir}/.done" ]; then log "${dir}: done before; skipped"; continue; fi
        mkdir -p "${dir}"
        ln -sfn "../../${teacher}" "${dir}/${teacher}"  # the main run's targets, read-only
        [ -d exp/judge ] && ln -sfn ../../judge "${dir}/judge"  # and its judge calibration
        log "variant ${v}, seed ${s} -> ${dir}"
        start=$(date +%s)
        ./run.sh --llm "${llm}" --stage 5 --stop_stage 8 --expdir "${dir}" --palign_config "${abl}/conf/${v}.yaml" \
            --palign_tag "${v}" --palign_args "--seed ${s}"
        echo $(( $(date +%s) - start )) > "${dir}/wall_seconds"
        touch "${dir}/.done"
    done
done
log "RESULTS.md with the ablation section"
./run.sh --llm "${llm}" --stage 12 --stop_stage 12
