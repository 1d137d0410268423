#!/usr/bin/env bash
# train/setup.sh — the opt-in set-up of the training tools (never needed to run diffu):
# Debian's python3-torch (1.13) and python3-matplotlib (figures), plus what the data and
# tokenizer steps use (python3-numpy, nodejs/npm and the tokenizer oracle packages that
# deploy/fetch_vocab.sh puts in the diffu cache).
#   bash train/setup.sh          install what is missing (as root; otherwise prints the apt-get line)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKGS=(python3 python3-numpy python3-torch python3-matplotlib nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if command -v node >/dev/null && command -v npm >/dev/null; then
    keep=(); for p in "${missing[@]+"${missing[@]}"}"; do [[ "$p" == nodejs || "$p" == npm ]] || keep+=("$p"); done
    missing=("${keep[@]+"${keep[@]}"}")
fi
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "[train-setup] installing: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "train/setup.sh: missing Debian packages; install them with:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
bash "$ROOT/deploy/fetch_vocab.sh" >/dev/null
/usr/bin/python3 -c "import torch, matplotlib; print('[train-setup] torch', torch.__version__, 'matplotlib', matplotlib.__version__)" >&2
