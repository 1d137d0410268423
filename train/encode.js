#!/usr/bin/env node
// train/encode.js — tokenize the training data with Hugging Face's Rust tokenizers library
// (npm tokenizers@0.23.2 from the diffu cache, as tests/tokenizer/oracle.js loads it), so the
// ids the model is trained on are the reference tokenizer's:
//
//   node train/encode.js TOKENIZER_DIR DATA_DIR OUT_DIR [EVERY]
//
// EVERY (default 1): keep every EVERY-th train code file (a deterministic sample; the held-out
// split and the pairs are always whole).
//
// For split in train, val:
//   OUT/{split}_code.bin   uint16 LE: every file's ids followed by <|endoftext|>
//   OUT/{split}_pairs.jsonl {"p": prompt ids, "r": reply ids} where the prompt is DiffuCoder's
//                          chat prompt around the function's signature + docstring (model/chat.c's
//                          text) and the reply is the rest of the function followed by <|im_end|>
"use strict";
const fs = require("fs");
const path = require("path");
const os = require("os");
const readline = require("readline");

const cache = process.env.DIFFU_CACHE || path.join(os.homedir(), ".cache", "diffu");
const rustPkg = path.join(cache, "npm", "tokenizers-0.23.2", "package", "index.js");
if (!fs.existsSync(rustPkg)) {
  console.error(`encode.js: ${rustPkg} is missing: run deploy/fetch_vocab.sh`);
  process.exit(1);
}
const { Tokenizer } = require(rustPkg);
const [tokDir, dataDir, outDir] = process.argv.slice(2);
const every = parseInt(process.argv[5] || "1", 10);
const tok = Tokenizer.fromFile(path.join(tokDir, "tokenizer.json"));
const EOT = tok.tokenToId("<|endoftext|>");
fs.mkdirSync(outDir, { recursive: true });

// Python's str.strip() (whitespace as str.isspace)
const pyStrip = (s) => s.replace(/^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/gu, "");
const chat = (user) =>
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + pyStrip(user) +
  "\n<|im_end|>\n<|im_start|>assistant\n";

async function lines(file) {
  const out = [];
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  for await (const l of rl) if (l.trim()) out.push(JSON.parse(l));
  return out;
}

async function encodeAll(texts) {
  const ids = [];
  const B = 256;
  for (let i = 0; i < texts.length; i += B) {
    const enc = await tok.encodeBatch(texts.slice(i, i + B), { addSpecialTokens: false });
    for (const e of enc) ids.push(e.getIds());
  }
  return ids;
}

(async () => {
  const stats = {};
  for (const split of ["train", "val"]) {
    let code = await lines(path.join(dataDir, `${split}_code.jsonl`));
    if (split === "train" && every > 1) code = code.filter((_, i) => i % every === 0);
    const ids = await encodeAll(code.map((r) => r.text));
    let n = 0;
    for (const a of ids) n += a.length + 1;
    const buf = Buffer.alloc(n * 2);
    let o = 0;
    for (const a of ids) {
      for (const x of a) { buf.writeUInt16LE(x, o); o += 2; }
      buf.writeUInt16LE(EOT, o); o += 2;
    }
    fs.writeFileSync(path.join(outDir, `${split}_code.bin`), buf);
    const pairs = await lines(path.join(dataDir, `${split}_pairs.jsonl`));
    const p = await encodeAll(pairs.map((r) => chat(r.prompt)));
    const r = await encodeAll(pairs.map((r) => r.reply + "<|im_end|>"));
    const f = fs.openSync(path.join(outDir, `${split}_pairs.jsonl`), "w");
    let pt = 0;
    for (let i = 0; i < pairs.length; i++) {
      fs.writeSync(f, JSON.stringify({ p: Array.from(p[i]), r: Array.from(r[i]) }) + "\n");
      pt += p[i].length + r[i].length;
    }
    fs.closeSync(f);
    const bytes = code.reduce((s, r) => s + Buffer.byteLength(r.text), 0);
    stats[split] = { code_files: code.length, code_bytes: bytes, code_tokens: n, pairs: pairs.length, pair_tokens: pt,
                     bytes_per_token: +(bytes / n).toFixed(3) };
  }
  fs.writeFileSync(path.join(outDir, "tokens.json"), JSON.stringify(stats, null, 1));
  console.error(JSON.stringify(stats));
})();
