#!/usr/bin/env bash
# bench_gemm.sh — the GEMM-layer table (issue #12) in ONE run, side by side:
# diffu's forward in fp32 / bf16 / int8 (model/gemm.h) at 256 and 512 tokens on 1 and 2
# threads, each configuration followed at once by llama.cpp's Dream port
# (llama-diffusion-cli) on the same model, the core's measured peak per dtype, the
# per-core rates saved for `diffu plan`, and the DiffuCoder-7B HumanEval estimate.
# Run it on a quiet machine; it prints a Markdown section for docs/BENCHMARKS.md.
#
# usage: benchmarks/bench_gemm.sh [--reps K (default 5)] [--quick] [--e2e] [--e2e-steps S]
#   --e2e  also the end-to-end generation throughput: the main job (deploy/main_job.sh: the
#          embedded toy model, mpirun --pp 2) in fp32 and bf16 alternated, 3 runs each, and
#          benchmarks/bench_generate.py (16 requests, one process x 2 threads and --pp 2) in fp32
#          and then bf16 (two runs of that script, one per precision; long: ~15+ min on 2 cores)
#   --e2e-steps S  bench_generate.py's denoising steps (default 64 = 4 tokens per step; fp32 on
#          OpenBLAS's AVX2 kernels takes ~30 min per layout at 64: 16 steps cut every run by 4)
# environment:
#   DIFFU_BIN   diffu binary (default build/bin/diffu)
#   MODEL       the small model (default /tmp/m_small; made with
#               `diffu mkmodel --preset small --seed 1 --out $MODEL` when missing: BF16, Qwen2.5-0.5B shape)
#   LLAMA_DIR   llama.cpp work tree built with its CPU backend (default /work/thirdparty/llama.cpp;
#               build: cmake -S . -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF && cmake --build build --target llama-diffusion-cli)
#   GGUF        the same model converted by llama.cpp's convert_hf_to_gguf.py (default $MODEL/model-bf16.gguf)
#   RATES       where the per-core rates go (default ~/.cache/diffu/rates.txt)
# Per forward, llama.cpp: its "time per step" (one forward of -ub tokens + its sampling) over
# STEPS diffusion steps; diffu: the median of K forwards (lm_head on every row, as llama.cpp).
# GFLOP/s for both from diffu's FLOP count of that forward (diffu_forward_flops).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${DIFFU_BIN:-$ROOT/build/bin/diffu}"
MODEL="${MODEL:-/tmp/m_small}"
LLAMA_DIR="${LLAMA_DIR:-/work/thirdparty/llama.cpp}"
GGUF="${GGUF:-$MODEL/model-bf16.gguf}"
RATES="${RATES:-$HOME/.cache/diffu/rates.txt}"
REPS=5
STEPS=8
E2E=0
E2E_STEPS=64
ARGS="$*"
read -r -a TOKENS <<<"${BENCH_TOKENS:-256 512}"   # overrides for a smoke run only
read -r -a THREADS <<<"${BENCH_THREADS:-1 2}"
while (($#)); do
    case "$1" in
    --reps) REPS="$2"; shift 2 ;;
    --quick) REPS=2; STEPS=3; shift ;;
    --e2e) E2E=1; shift ;;
    --e2e-steps) E2E_STEPS="$2"; shift 2 ;;
    *) echo "usage: $0 [--reps K] [--quick] [--e2e] [--e2e-steps S]" >&2; exit 2 ;;
    esac
done
[[ -x "$BIN" ]] || { echo "bench_gemm: $BIN not built (cmake --build build)" >&2; exit 1; }
[[ -f "$MODEL/config.json" ]] || "$BIN" mkmodel --preset small --seed 1 --out "$MODEL" >&2
mkdir -p "$(dirname "$RATES")"
W="$(mktemp -d "${TMPDIR:-/tmp}/bench-gemm.XXXXXX")"
trap 'rm -rf "$W"' EXIT

# the GGUF: llama.cpp's own converter (its DreamModel class), run on Debian's python3 with the
# stand-ins of benchmarks/llama_shim (no python3-transformers/sentencepiece/tqdm on Debian;
# the tokenizer's encode goes through diffu's HF-exact tokenizer for the pre-tokenizer hash)
if [[ ! -f "$GGUF" && -f "$LLAMA_DIR/convert_hf_to_gguf.py" ]]; then
    echo "== converting $MODEL to $GGUF with llama.cpp's convert_hf_to_gguf.py" >&2
    DIFFU_BIN="$BIN" PYTHONPATH="$ROOT/benchmarks/llama_shim:$LLAMA_DIR/gguf-py" /usr/bin/python3 \
        "$LLAMA_DIR/convert_hf_to_gguf.py" "$MODEL" --outtype bf16 --outfile "$GGUF" >"$W/convert.log" 2>&1 ||
        { tail -5 "$W/convert.log" >&2; rm -f "$GGUF"; }
fi
LLAMA_BIN="$LLAMA_DIR/build/bin/llama-diffusion-cli"
llama_why=""
if [[ ! -x "$LLAMA_BIN" ]]; then
    llama_why="llama.cpp not built: $LLAMA_BIN missing"
elif [[ ! -f "$GGUF" ]]; then
    llama_why="no GGUF of the model at $GGUF (convert with llama.cpp's convert_hf_to_gguf.py --outtype bf16)"
fi

echo "== peak" >&2
"$BIN" bench peak --threads 2 --seconds 1 | tee "$W/peak.txt" >&2

row() { # tokens threads -> one table row on stdout of this function's file
    local t="$1" th="$2" save=()
    [[ "$t" == "${TOKENS[0]}" && "$th" == "${THREADS[-1]}" ]] && save=(--save "$RATES")
    echo "== diffu $t tokens, $th thread(s)" >&2
    "$BIN" bench forward --model "$MODEL" --tokens "$t" --threads "$th" --reps "$REPS" --precision fp32,bf16,int8 \
        --peak --no-sgemm "${save[@]}" 2>"$W/err.$t.$th" | tee "$W/diffu.$t.$th" >&2
    local lms="n/a"
    if [[ -z "$llama_why" ]]; then
        echo "== llama.cpp $t tokens, $th thread(s)" >&2
        if "$LLAMA_BIN" -m "$GGUF" -p "def fibonacci(n):" -ub "$t" -c "$t" -b "$t" -t "$th" --diffusion-steps "$STEPS" \
            --diffusion-eps 0.001 --diffusion-algorithm 1 --temp 0 --seed 1 >"$W/llama.$t.$th" 2>&1; then
            lms=$(grep -o 'time per step: [0-9.]*ms' "$W/llama.$t.$th" | grep -o '[0-9.]*' | head -1)
            [[ -n "$lms" ]] || lms="n/a"
        else
            tail -5 "$W/llama.$t.$th" >&2
        fi
    fi
    python3 - "$W/diffu.$t.$th" "$t" "$th" "$lms" >>"$W/rows.md" <<'EOF'
import re, sys
txt = open(sys.argv[1]).read()
t, th, lms = sys.argv[2], sys.argv[3], sys.argv[4]
ms, gf, pk, gp = {}, {}, {}, {}
for m in re.finditer(r"forward: (\w+) median ([0-9.]+) ms over \d+ reps, ([0-9.]+) GFLOP per forward, ([0-9.]+) GFLOP/s; GEMMs [0-9.]+% of the time at ([0-9.]+)", txt):
    ms[m.group(1)] = float(m.group(2)); flop = float(m.group(3)); gf[m.group(1)] = float(m.group(4)); gp[m.group(1)] = float(m.group(5))
for m in re.finditer(r"forward: (\w+) peak ([0-9.]+) G", txt):
    pk[m.group(1)] = float(m.group(2))
def cell(p):
    if p not in ms: return "n/a | n/a | n/a"
    frac = f"{100 * gp[p] / pk[p]:.0f}%" if pk.get(p) else "n/a"
    return f"{ms[p]:.0f} | {gf[p]:.0f} | {frac}"
if lms != "n/a":
    l = float(lms); lcell = f"{l:.0f} | {flop * 1e3 / l:.0f}"
    ratio = f"{l / ms['bf16']:.2f}x" if "bf16" in ms else "n/a"
else:
    lcell, ratio = "n/a | n/a", "n/a"
i8 = f"{ms['bf16'] / ms['int8']:.2f}x" if "bf16" in ms and "int8" in ms else "n/a"
print(f"| {t} | {th} | {cell('fp32')} | {cell('bf16')} | {cell('int8')} | {lcell} | {ratio} | {i8} |")
EOF
}

: >"$W/rows.md"
for t in "${TOKENS[@]}"; do
    for th in "${THREADS[@]}"; do row "$t" "$th"; done
done

if ((E2E)); then
    : >"$W/main.tsv"
    for rep in 1 2 3; do
        for p in fp32 bf16; do
            echo "== end to end: the main job, $p, run $rep" >&2
            DIFFU_PRECISION=$p DIFFU_OUTPUT="$W/main.$p.$rep.jsonl.gz" DIFFU_BUILD="$(dirname "$(dirname "$BIN")")" \
                bash "$ROOT/deploy/main_job.sh" >/dev/null 2>"$W/main.$p.$rep.err" || tail -5 "$W/main.$p.$rep.err" >&2
            tps=$(grep -o '[0-9.]* generated tokens/s' "$W/main.$p.$rep.err" | grep -o '^[0-9.]*' | tail -1)
            gw=$(grep -o 'generate [0-9.]* s:' "$W/main.$p.$rep.err" | grep -o '[0-9.]*' | tail -1)
            printf '%s\t%s\t%s\t%s\n' "$p" "$rep" "${tps:-nan}" "${gw:-nan}" >>"$W/main.tsv"
        done
    done
    for p in fp32 bf16; do
        echo "== end to end: bench_generate.py, $p" >&2
        /usr/bin/python3 "$ROOT/benchmarks/bench_generate.py" --bin "$BIN" --model "$MODEL" --requests 16 \
            --steps "$E2E_STEPS" --configs 1x2,pp2 --reps 1 --extra "--precision $p" >"$W/e2e.$p" 2>&1 || tail -5 "$W/e2e.$p" >&2
    done
fi

echo "== sampler" >&2
"$BIN" bench sampler --rows 64 >"$W/sampler.txt"
cat "$W/sampler.txt" >&2

echo "== plan: DiffuCoder-7B on 16 nodes x 64 cores, HumanEval (164 x 512 tokens, 512 steps)" >&2
"$BIN" mkmodel --preset 7b --config-only --out "$W/m7" 2>/dev/null
"$BIN" plan --model "$W/m7" --config-only --nodes 16 --cores-per-node 64 --mem-per-node 256 --dataset 164 \
    --new-tokens 512 --steps 512 --prompt-tokens 150 --rates "$RATES" >"$W/plan.txt"

LAST="$W/diffu.${TOKENS[0]}.${THREADS[-1]}"
cpu=$(grep -m1 '^cpu:' "$LAST" | sed 's/^cpu: //')
echo "### GEMM paths per forward, small model (Qwen2.5-0.5B shape, BF16), $(date -u +%Y-%m-%d)"
echo
echo "CPU: $cpu. Command: \`benchmarks/bench_gemm.sh${ARGS:+ $ARGS}\` (one run; every configuration's diffu paths"
echo "alternate rep by rep, llama.cpp runs right after them). Kernel paths:"
grep -h '^forward:' "$LAST" | grep -o 'gemm [a-z0-9]* [^)]*)' | sort -u | sed 's/^/- /'
echo "- llama.cpp: ${llama_why:-llama-diffusion-cli ($(cd "$LLAMA_DIR" 2>/dev/null && grep -o 'GGML_NATIVE[^ ]*' build/CMakeCache.txt | head -1), CPU backend), time per step over $STEPS steps}"
echo
echo "| tokens | threads | fp32 ms | fp32 GFLOP/s | fp32 GEMM % of peak | bf16 ms | bf16 GFLOP/s | bf16 GEMM % of peak | int8 ms | int8 GOP/s | int8 GEMM % of peak | llama.cpp ms | llama.cpp GFLOP/s | bf16 speed-up vs llama.cpp | int8 vs bf16 |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
cat "$W/rows.md"
echo
echo "Peak of the core (diffu bench peak, same run):"
echo '```'
cat "$W/peak.txt"
echo '```'
echo "Per-core rates saved to $RATES:"
echo '```'
cat "$RATES"
echo '```'
echo "Sampler, the full-vocabulary softmax (diffu bench sampler, same run):"
echo '```'
cat "$W/sampler.txt"
echo '```'
if ((E2E)); then
    echo "End to end, the main job (\`deploy/main_job.sh\`: models/diffu-toy-code, 20 chat requests x 64 tokens,"
    echo "mpirun -np 2 --pp 2, 1 thread per rank), fp32 and bf16 alternated, 3 runs each (same run):"
    echo
    python3 - "$W/main.tsv" <<'EOF'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
med = {}
print("| precision | generated tokens/s (runs) | median | generation wall s (median) |")
print("|---|---|---|---|")
for p in ("fp32", "bf16"):
    tps = [float(r[2]) for r in rows if r[0] == p]
    gw = [float(r[3]) for r in rows if r[0] == p]
    med[p] = statistics.median(tps)
    print(f"| {p} | {', '.join(f'{x:.1f}' for x in tps)} | {med[p]:.1f} | {statistics.median(gw):.1f} |")
print()
print(f"bf16 / fp32 tokens/s: {med['bf16'] / med['fp32']:.2f}x")
print()
EOF
    for p in fp32 bf16; do
        echo "End to end, $p (benchmarks/bench_generate.py --requests 16 --steps $E2E_STEPS --configs 1x2,pp2 --extra \"--precision $p\"):"
        echo '```'
        grep -E "tokens/s|ratio" "$W/e2e.$p" || tail -20 "$W/e2e.$p"
        echo '```'
    done
fi
echo "DiffuCoder-7B, 16 nodes x 64 cores, HumanEval (164 prompts x 512 new tokens, 512 steps; prompt ~150 tokens):"
echo '```'
sed -n '/^estimate:/,$p' "$W/plan.txt"
echo '```'
