#!/usr/bin/env bash
# tests/tokenizer/bench.sh DIFFU_BIN [MODEL_DIR] — encoder throughput on one
# thread, diffu beside the references, in one run on one machine:
#   diffu bench tokenize (C: PCRE2 JIT + utf8proc + BPE with word cache)
#   @lenml/tokenizers 3.7.2 (JavaScript) and tokenizers 0.23.2 (Rust, Node bindings)
# on the code part (~2.5 MB) and the prose part (~1.4 MB, 20+ scripts) of the
# test corpus. MODEL_DIR defaults to a Dream tokenizer written from the cached
# vocabulary (deploy/fetch_vocab.sh). Medians of 5 runs; results on stdout.
set -euo pipefail
DIFFU="$1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
MODEL="${2:-}"
if [[ -z "$MODEL" ]]; then
    VOCAB="$(bash "$HERE/../../deploy/fetch_vocab.sh")"
    MODEL="$WORK/dream"
    mkdir -p "$MODEL"
    # the same files `diffu mkmodel` gives its models
    "$(dirname "$DIFFU")/../tests/tokenizer/tok_write_dream" "$VOCAB" "$MODEL"
fi
python3 "$HERE/build_corpus.py" "$WORK/corpus.bin" --code-txt "$WORK/code.txt" --prose-txt "$WORK/prose.txt" 2>/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for part in code prose; do
    echo "== $part: $(wc -c < "$WORK/$part.txt") bytes"
    "$DIFFU" bench tokenize --model "$MODEL" --runs 5 "$WORK/$part.txt" | tail -n 1
    node "$HERE/oracle.js" "$MODEL" --bench "$WORK/$part.txt" | grep median
done
