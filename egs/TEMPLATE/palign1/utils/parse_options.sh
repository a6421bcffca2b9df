#!/usr/bin/env bash
# Kaldi-style option parsing, sourced by a script after it has set its defaults:
#   . utils/parse_options.sh
# Turns "--some-name value" / "--some_name value" / "--some_name=value" into some_name=value
# for every variable the script already defined; "--config FILE" sources FILE first;
# "--help" / "-h" prints $help_message and exits. Anything after the options stays in "$@".
# An unknown option or a missing value is an error that names it.

while true; do
    [ $# -eq 0 ] && break
    case "$1" in
        --help|-h)
            echo "${help_message:-No help found for $0.}" >&2
            exit 0 ;;
        --config)
            [ $# -ge 2 ] || { echo "$0: option '--config' needs a value" >&2; exit 1; }
            [ -f "$2" ] || { echo "$0: config file '$2' not found" >&2; exit 1; }
            # shellcheck disable=SC1090
            . "$2"
            shift 2 ;;
        --*=*)
            _name=${1%%=*}; _value=${1#*=}
            set -- "$_name" "$_value" "${@:2}" ;;
        --*)
            _name=$(echo "${1#--}" | tr '-' '_')
            if ! declare -p "$_name" >/dev/null 2>&1; then
                echo "$0: invalid option '$1'" >&2; exit 1
            fi
            [ $# -ge 2 ] || { echo "$0: option '$1' needs a value" >&2; exit 1; }
            # Boolean options only take true/false, like Kaldi.
            _old=$(eval "echo \"\$$_name\"")
            if [ "$_old" = true ] || [ "$_old" = false ]; then
                if [ "$2" != true ] && [ "$2" != false ]; then
                    echo "$0: option '$1' takes true or false, not '$2'" >&2; exit 1
                fi
            fi
            printf -v "$_name" '%s' "$2"
            shift 2 ;;
        *) break ;;
    esac
done
unset _name _value _old
true
