#!/usr/bin/env node
// oracle.js — the references for diffu's tokenizer tests, run on the same
// tokenizer.json:
//   lenml   @lenml/tokenizers@3.7.2: a JavaScript port of the Hugging Face
//           tokenizers pipeline (from transformers.js): the independent oracle;
//   rust    tokenizers@0.23.2: Hugging Face's Rust tokenizers library itself
//           (its Node bindings, prebuilt): the ground truth where they differ.
//
//   node oracle.js TOKENIZER_DIR CORPUS.bin OUT.bin      ids / NFC / decodes for every record
//   node oracle.js TOKENIZER_DIR --encode [TEXT]         print ids of TEXT (or of stdin), lenml
//   node oracle.js TOKENIZER_DIR --bench FILE...         encode MB/s of both (median of 5 runs)
//   node oracle.js TOKENIZER_DIR --rust-jsonl            {"text": ...} lines on stdin -> {"ids": [...]}, Rust
//
// Both packages are loaded from the diffu cache filled by deploy/fetch_vocab.sh
// (${DIFFU_CACHE:-$HOME/.cache/diffu}/npm/<name>-<version>/package).
//
// lenml runs twice. "stock" is the package as published. "compat" differs
// only in the pre-tokenizer regex text, rewritten so that JavaScript's regex
// engine means what Oniguruma (the Rust library's engine) means: \s is
// Unicode White_Space (JavaScript's adds U+FEFF and lacks U+0085), and the
// case-insensitive contractions also match 'ſ (U+017F folds to s).
//
// Corpus format (little-endian): "DTKC\x01", then records of
//   kind u8 (1 text, 2 ids), category u8, length u32, payload
// (text: UTF-8 bytes, possibly invalid; ids: u32 each).
// Output: "DTKO\x02", then per record
//   text: ids (rust), ids (lenml compat), ids (lenml stock)   [u32 n + n*u32 each]
//         NFC(text) by ICU, decode(rust ids) by rust, decode(compat ids) by lenml,
//         the text as the pipeline sees it: added tokens as they are, every piece
//         between them in NFC (equal to NFC(text) unless a token's last character
//         would compose with what follows it)                 [u32 len + bytes each]
//   ids:  decode by rust, by rust skipping special tokens, by lenml, by lenml
//         skipping special tokens                             [u32 len + bytes each]
"use strict";
const fs = require("fs");
const path = require("path");
const os = require("os");

const cache = process.env.DIFFU_CACHE || path.join(os.homedir(), ".cache", "diffu");
const pkg = path.join(cache, "npm", "lenml-tokenizers-3.7.2", "package", "dist", "main.js");
if (!fs.existsSync(pkg)) {
  console.error(`oracle.js: ${pkg} is missing: run deploy/fetch_vocab.sh (it fetches @lenml/tokenizers@3.7.2 into the cache)`);
  process.exit(1);
}
const { TokenizerLoader } = require(pkg);
const rustPkg = path.join(cache, "npm", "tokenizers-0.23.2", "package", "index.js");
if (!fs.existsSync(rustPkg)) {
  console.error(`oracle.js: ${rustPkg} is missing: run deploy/fetch_vocab.sh (it fetches tokenizers@0.23.2 into the cache)`);
  process.exit(1);
}
const rust = require(rustPkg);

const WS = "\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

// Rewrite \s and \S (outside and inside classes) to Oniguruma's White_Space.
function onigWhitespace(re) {
  let out = "", inClass = false;
  for (let i = 0; i < re.length; i++) {
    const c = re[i];
    if (c === "\\" && i + 1 < re.length) {
      const e = re[i + 1];
      if (e === "s") { out += inClass ? WS : `[${WS}]`; i++; continue; }
      if (e === "S" && !inClass) { out += `[^${WS}]`; i++; continue; }
      out += c + e; i++; continue;
    }
    if (c === "[" && !inClass) { inClass = true; out += c; continue; }
    if (c === "]" && inClass) { inClass = false; out += c; continue; }
    out += c;
  }
  return out;
}

function load(dir, compat) {
  const json = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const cfgPath = path.join(dir, "tokenizer_config.json");
  const config = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
  if (compat) {
    const fix = (p) => {
      if (!p) return;
      if (p.type === "Sequence") return p.pretokenizers.forEach(fix);
      if (p.type === "Split" && p.pattern && p.pattern.Regex) {
        let r = p.pattern.Regex;
        r = r.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'(?:[sS\\u017f]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))");
        p.pattern.Regex = onigWhitespace(r);
      }
    };
    fix(json.pre_tokenizer);
  }
  const quiet = console.warn;
  console.warn = () => {};
  const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: config });
  console.warn = quiet;
  return tok;
}

const encode = (tok, text) => tok.encode(text, { add_special_tokens: false });
const decode = (tok, ids, skip) => tok.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false });
const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }); // WHATWG: U+FFFD per maximal subpart

async function main() {
  const [dir, a1, ...rest] = process.argv.slice(2);
  if (!dir || !a1) {
    console.error("usage: oracle.js TOKENIZER_DIR CORPUS.bin OUT.bin | --encode TEXT | --bench FILE...");
    process.exit(2);
  }
  if (a1 === "--encode") {
    const text = rest.length ? rest.join(" ") : utf8.decode(fs.readFileSync(0));
    console.log(encode(load(dir, true), text).join(" "));
    return;
  }
  if (a1 === "--rust-jsonl") {
    const rt = rust.Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
    const lines = fs.readFileSync(0, "utf8").split("\n").filter((l) => l.length);
    const out = [];
    for (const l of lines) {
      const e = await rt.encode(JSON.parse(l).text, null, { addSpecialTokens: false });
      out.push(JSON.stringify({ ids: e.getIds(), decoded: await rt.decode(e.getIds(), false) }));
    }
    process.stdout.write(out.join("\n") + "\n");
    return;
  }
  if (a1 === "--bench") {
    const texts = rest.map((f) => fs.readFileSync(f, "utf8"));
    const bytes = rest.reduce((s, f) => s + fs.statSync(f).size, 0);
    const benches = [
      ["@lenml/tokenizers 3.7.2 (JavaScript)", load(dir, false), async (t, x) => encode(t, x).length],
      ["tokenizers 0.23.2 (Rust, Node bindings)", rust.Tokenizer.fromFile(path.join(dir, "tokenizer.json")),
       async (t, x) => (await t.encode(x, null, { addSpecialTokens: false })).getLength()],
    ];
    for (const [name, tok, enc] of benches) {
      const runs = [];
      for (let r = 0; r < 5; r++) {
        const t0 = process.hrtime.bigint();
        let n = 0;
        for (const t of texts) n += await enc(tok, t);
        const dt = Number(process.hrtime.bigint() - t0) / 1e9;
        runs.push(bytes / 1e6 / dt);
        console.log(`${name} run ${r + 1}: ${dt.toFixed(3)} s, ${(bytes / 1e6 / dt).toFixed(2)} MB/s, ${n} ids`);
      }
      runs.sort((x, y) => x - y);
      console.log(`${name}: median ${runs[2].toFixed(2)} MB/s over ${(bytes / 1e6).toFixed(2)} MB (node ${process.version})`);
    }
    return;
  }
  const out = rest[0];
  const compat = load(dir, true), stock = load(dir, false);
  const rt = rust.Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
  const buf = fs.readFileSync(a1);
  if (buf.toString("latin1", 0, 5) !== "DTKC\x01") throw new Error(`${a1}: not a diffu tokenizer corpus`);
  const chunks = [Buffer.from("DTKO\x02", "latin1")];
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; };
  const ids32 = (ids) => { const b = Buffer.alloc(4 + 4 * ids.length); b.writeUInt32LE(ids.length); ids.forEach((v, i) => b.writeUInt32LE(v, 4 + 4 * i)); return b; };
  const bytes = (s) => { const b = Buffer.from(s, "utf8"); return Buffer.concat([u32(b.length), b]); };
  let off = 5, n = 0, t0 = Date.now();
  while (off < buf.length) {
    const kind = buf[off], len = buf.readUInt32LE(off + 2);
    const payload = buf.subarray(off + 6, off + 6 + len);
    off += 6 + len;
    if (kind === 1) {
      const text = utf8.decode(payload);
      const ic = encode(compat, text), is = encode(stock, text);
      const ir = (await rt.encode(text, null, { addSpecialTokens: false })).getIds();
      const pieces = compat.added_tokens_splitter.split(text)
        .map((p) => (compat.added_tokens_map.has(p) ? p : p.normalize("NFC"))).join("");
      chunks.push(ids32(ir), ids32(ic), ids32(is), bytes(text.normalize("NFC")), bytes(await rt.decode(ir, false)),
        bytes(decode(compat, ic, false)), bytes(pieces));
    } else if (kind === 2) {
      const ids = [];
      for (let i = 0; i + 4 <= payload.length; i += 4) ids.push(payload.readUInt32LE(i));
      chunks.push(bytes(await rt.decode(ids, false)), bytes(await rt.decode(ids, true)),
        bytes(decode(compat, ids, false)), bytes(decode(compat, ids, true)));
    } else {
      throw new Error(`${a1}: bad record kind ${kind} at byte ${off}`);
    }
    n++;
  }
  fs.writeFileSync(out, Buffer.concat(chunks));
  console.error(`oracle.js: ${n} records in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
main().catch((e) => { console.error(`oracle.js: ${e.stack || e}`); process.exit(1); });
