#!/usr/bin/env bash
# Ablations on top of a finished ./run.sh: each variant of conf/ablations.yaml (the main training config with
# some keys replaced) is trained, decoded and scored (stages 5-8; stage 3 first, for a variant whose
# frontend_conf needs its own feature dump) on the main run's data and teacher targets, in
# exp/ablations/<variant>_seed<N>/; then stage 12 writes the "Ablations" section of RESULTS.md.
#   local/run_ablations.sh [--llm smollm2] [--variants "main paper ..."] [--seeds 3] [--seed_list "0 1 2"]
#                          [--test_sets "test test_unseen"]
# A finished variant/seed (its .done file) is skipped: rerunning resumes. The main variant at the main run's
# seed reuses the main run's scores. A NOTE.md in exp/ablations is printed under the section's header.
set -euo pipefail

llm=smollm2
variants="main paper paper_semantic no_ctc_pretrain no_asr_task no_ctc no_whisper kl kl_ce multitask no_pitch no_aux no_speaker_norm sorted_batches warm_start"
seeds=1
seed_list=""
test_sets="test test_unseen"
while [ $# -gt 0 ]; do
    case "$1" in
        --llm) llm=$2; shift 2 ;;
        --variants) variants=$2; shift 2 ;;
        --seeds) seeds=$2; shift 2 ;;
        --seed_list) seed_list=$2; shift 2 ;;
        --test_sets) test_sets=$2; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
# What each variant changes, for RESULTS.md: conf/ablations.yaml, plus the variants of earlier runs in this
# dir that it no longer lists (their rows keep saying what they changed).
python - conf/ablations.yaml "${abl}/variants.yaml" <<'PY'
import sys, yaml
from pathlib import Path
new, out = Path(sys.argv[1]), Path(sys.argv[2])
table = yaml.safe_load(new.read_text()) or {}
old = (yaml.safe_load(out.read_text()) or {}) if out.exists() else {}
kept = {k: v for k, v in old.items() if k not in table}
text = new.read_text()
if kept:
    text += "\n# variants of earlier runs in this dir that conf/ablations.yaml no longer lists\n" + yaml.safe_dump(kept, sort_keys=False)
out.write_text(text)
PY

# multitask needs the style and transcript targets: stage 4 adds them (replies already written are reused).
if [[ " ${variants} " == *" multitask "* ]] && [ ! -s "exp/${teacher}/train/style" ]; then
    log "stage 4 for the multitask variant's style and asr targets"
    ./run.sh --llm "${llm}" --stage 4 --stop_stage 4 \
        --teacher_tasks "response response_neutral emotion emotion_neutral style asr"
fi

# The main variant at the main config's seed is the main run's own model (same data, config, seed): its
# scores are copied instead of training it again, as long as exp/palign_train_<llm> was trained from this config.
reuse_main_run() {  # $1 seed, $2 run dir
    local main=exp/palign_train_${llm}
    python - "${base}" "${main}" "$1" "$2" ${test_sets} <<'PY' || return 1
import shutil, sys, yaml
from pathlib import Path
base, main, seed, out, *sets = sys.argv[1:]
conf, main = yaml.safe_load(open(base)), Path(main)
trained = yaml.safe_load((main / "config.yaml").read_text()) if (main / "config.yaml").exists() else None
def differs(want, got, at=""):  # leaves of the recipe config the model's config.yaml holds with another value
    for k, v in want.items():
        if k not in got or (isinstance(v, str) and ("${" in v or v == "from_data")):
            continue  # keys ESPnet rewrites (resolved paths, derived options, labels read from the data)
        if isinstance(v, dict) and isinstance(got[k], dict):
            yield from differs(v, got[k], f"{at}{k}.")
        elif v != got[k]:
            yield f"{at}{k}"
why = ("no main run" if trained is None else f"seed {seed} is not the main run's ({conf.get('seed', 0)})"
       if int(seed) != conf.get("seed", 0) else ", ".join(differs(conf, trained)))
if why or not all((main / "decode" / d / "scores.json").exists() for d in sets):
    print(f"run_ablations.sh: main seed {seed} is trained here ({why or 'the main run has no scores'})")
    sys.exit(1)
for d in sets:
    (Path(out) / "palign_main" / "decode" / d).mkdir(parents=True, exist_ok=True)
    for f in ("scores.json", "system.yaml"):
        shutil.copy(main / "decode" / d / f, Path(out) / "palign_main" / "decode" / d / f)
times = [(int(ln.split()[0]), ln.split()[-1]) for ln in (main.parent / "stage_times").read_text().splitlines()]
start = next(t for t, n in times if n == "5")
end = next(t for t, n in times if t > start and (n == "Finished" or int(n) > 8))
(Path(out) / "wall_seconds").write_text(f"{end - start}\n")  # stages 5-8 of the main run
print(f"run_ablations.sh: main seed {seed} is the main run's {main} (scores copied, stages 5-8: {end - start} s)")
PY
}

for v in ${variants}; do
    python - "${base}" conf/ablations.yaml "${v}" "${abl}/conf/${v}.yaml" <<'PY'
import sys, yaml
from espnet_ext.bin.make_results import variant_config
base, variants, name, out = sys.argv[1:]
table = yaml.safe_load(open(variants))
if name not in table:
    sys.exit(f"run_ablations.sh: no variant '{name}' in {variants} (known: {' '.join(table)})")
conf, target = variant_config(yaml.safe_load(open(base)), table[name])  # target: what the encoder is aligned to
open(out, "w").write(f"# {base} with the '{name}' variant of {variants}\n" + yaml.safe_dump(conf, sort_keys=False))
open(out[:-len(".yaml")] + ".target", "w").write(target + "\n")
PY
    for s in ${seed_list}; do
        dir=${abl}/${v}_seed${s}
        if [ -e "${dir}/.done" ]; then log "${dir}: done before; skipped"; continue; fi
        mkdir -p "${dir}"
        if [ "${v}" = main ] && reuse_main_run "${s}" "${dir}"; then touch "${dir}/.done"; continue; fi
        ln -sfn "../../${teacher}" "${dir}/${teacher}"  # the main run's targets, read-only
        [ -d exp/judge ] && ln -sfn ../../judge "${dir}/judge"  # and its judge calibration
        log "variant ${v}, seed ${s} -> ${dir}"
        start=$(date +%s)
        # from stage 3: a variant with its own frontend_conf gets its own feature dump (others are up to date)
        ./run.sh --llm "${llm}" --stage 3 --stop_stage 8 --expdir "${dir}" --palign_config "${abl}/conf/${v}.yaml" \
            --palign_tag "${v}" --palign_args "--seed ${s}" \
            --palign_target "$(cat "${abl}/conf/${v}.target")"
        echo $(( $(date +%s) - start )) > "${dir}/wall_seconds"
        touch "${dir}/.done"
    done
done
log "RESULTS.md with the ablation section"
./run.sh --llm "${llm}" --stage 12 --stop_stage 12
