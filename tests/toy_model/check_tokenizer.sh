#!/usr/bin/env bash
# check_tokenizer.sh MODEL_DIR TOK_COMPARE WORK PY — the toy tokenizer against HF's Rust library on held-out data
set -euo pipefail
MODEL="$1"; CMP="$2"; W="$3"; PY="$4"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${DIFFU_CACHE:-$HOME/.cache/diffu}"
if [[ ! -d "$CACHE/npm/tokenizers-0.23.2/package" ]] || ! command -v node >/dev/null 2>&1; then
    echo "toy tokenizer test: node or $CACHE/npm/tokenizers-0.23.2 is missing: run deploy/fetch_vocab.sh" >&2
    exit 1
fi
mkdir -p "$W"
"$PY" "$HERE/make_corpus.py" "$MODEL" "$W/toy_corpus.bin"
node "$HERE/../tokenizer/oracle.js" "$MODEL" "$W/toy_corpus.bin" "$W/toy_oracle.bin"
"$CMP" "$MODEL" "$W/toy_corpus.bin" "$W/toy_oracle.bin" --threads 2
