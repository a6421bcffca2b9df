#!/usr/bin/env bash
# Sourced by a corpus run.sh with its command line: the options every corpus recipe takes; the rest go to palign.sh.
#   . utils/recipe.sh "$@"   sets llm (--llm tiny: the smoke run), each variable named in recipe_vars
#                            (--<name> VALUE, e.g. recipe_vars=test_session) and the array args (the rest)
#   run_recipe OPTION ...    palign.sh with these data options, then the real-scale options of the array opts
#                            (with --llm: the smoke run's, from utils/smoke.sh, in ${smoke_exp:-exp/smoke}), then args
# -h/--help prints the run.sh header comment and palign.sh's options, with no side effects.
llm=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --llm) llm=$2; shift 2 ;;
        -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exec ./palign.sh --help ;;
        *)
            if [[ " ${recipe_vars:-} " == *" ${1#--} "* ]] && [ $# -ge 2 ]; then
                printf -v "${1#--}" '%s' "$2"; shift 2
            else
                args+=("$1"); shift
            fi ;;
    esac
done

run_recipe() {
    if [ -n "${llm}" ]; then . utils/smoke.sh "${llm}" "${smoke_exp:-exp/smoke}"; opts=("${smoke_opts[@]}"); fi
    ./palign.sh "$@" "${opts[@]}" "${args[@]}"
}
