# Corpus roots. Set them here or in the environment; local/data.sh of each recipe checks its own.
IEMOCAP=${IEMOCAP:-}          # .../IEMOCAP_full_release (holds Session1 ... Session5)
MSP_PODCAST=${MSP_PODCAST:-}  # .../MSP-PODCAST-Publish-1.x (holds Labels/, Audios/, Transcripts/)
EXPRESSO=${EXPRESSO:-}        # .../expresso (holds read_transcriptions.txt, audio_48khz/, splits/)

# require_db NAME: fail unless the corpus root NAME is set and is a directory.
require_db() {
    local name=$1 value=${!1:-}
    if [ -z "$value" ]; then
        echo "db.sh: $name is not set; set it in db.sh or export $name=/path/to/corpus" >&2
        return 1
    fi
    if [ ! -d "$value" ]; then
        echo "db.sh: $name=$value does not exist or is not a directory" >&2
        return 1
    fi
}
