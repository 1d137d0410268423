#!/usr/bin/env python3
"""build_corpus.py — the tokenizer test corpus: deterministic (seeded), >= 5 MB.

    python3 build_corpus.py OUT.bin [--seed N] [--mb 5.5] [--small]

Categories (the number is the category byte in the file):
  0 code        source files from /usr/share, /usr/lib, /usr/include (many
                languages; sorted file lists + seeded choice); synthetic code
                tops it up on a machine that has little
  1 prose       translations (.mo catalogs in /usr/share/locale) in many
                scripts, plus built-in sentences in 12 scripts so every script
                is present even on a minimal machine
  2 nfd         prose in NFD, stacked / reordered combining marks, Hangul jamo
  3 whitespace  long space runs, tabs, \\r\\n, \\r, NBSP, U+3000, U+2028, U+0085,
                U+FEFF, vertical tab / form feed, trailing spaces
  4 special     text containing the added-token strings (<|im_end|> ...),
                partial and nested ones, and marks right after them
  5 emoji       emoji with ZWJ sequences, skin tones, flags, keycaps, VS16
  6 fuzz_text   random code points assigned in Unicode 14 (Python's tables),
                mixed with ASCII structure (apostrophes, digits, spaces)
  7 fuzz_bytes  random bytes and damaged UTF-8 (truncated, overlong,
                surrogates, > U+10FFFF)
  8 ids         random id sequences for the decoder (partial UTF-8 bytes,
                special tokens), not text
  9 unicode15   characters new in Unicode 15.0 (CJK Ext H, Kawi, Nag Mundari,
                Kaktovik numerals...): letters/numbers to Hugging Face (Unicode
                16 tables) and to diffu (utf8proc's 15.0), unknown to PCRE2
                10.42's own tables (14.0) and to Python 3.11's

Record format: see oracle.js. The code and prose found depend on the machine;
for one machine the output is byte-identical for a given seed.
"""
import argparse
import gettext
import os
import random
import struct
import sys
import unicodedata

CATS = ["code", "prose", "nfd", "whitespace", "special", "emoji", "fuzz_text", "fuzz_bytes", "ids", "unicode15"]

CODE_EXT = {
    ".py", ".pl", ".pm", ".sh", ".bash", ".c", ".h", ".cc", ".cpp", ".hpp", ".hh", ".js", ".mjs", ".ts", ".rb",
    ".lua", ".tcl", ".el", ".scm", ".lisp", ".java", ".go", ".rs", ".hs", ".ml", ".php", ".awk", ".cmake",
    ".mk", ".m4", ".pas", ".pp", ".inc", ".adb", ".ads", ".cob", ".cbl", ".f90", ".f", ".sql", ".xml", ".html",
    ".css", ".json", ".yaml", ".yml", ".toml", ".ini", ".md", ".rst", ".tex", ".vim", ".am", ".in", ".cfg",
    ".s", ".S", ".asm", ".v", ".vhd", ".r", ".R", ".jl", ".swift", ".kt", ".scala", ".clj", ".erl", ".ex",
    ".exs", ".d", ".nim", ".zig", ".dart", ".groovy", ".gradle", ".proto", ".thrift", ".graphql", ".bat", ".ps1",
}

# Built-in prose: the scripts the issue names, a few sentences each.
PROSE = {
    "fr": "Où est la bibliothèque ? Le cœur a ses raisons que la raison ne connaît point. Ça coûte très cher, "
          "n'est-ce pas ? Les élèves étudient l'œuvre de Molière à l'école.",
    "de": "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich. Die Straße ist nass; "
          "Müller's Bäckerei öffnet um 7 Uhr.",
    "vi": "Tiếng Việt có nhiều dấu thanh: sắc, huyền, hỏi, ngã, nặng. Hà Nội là thủ đô của Việt Nam.",
    "pl": "Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.",
    "el": "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Η γλώσσα μου έδωσαν ελληνική· το σπίτι φτωχικό στις αμμουδιές του Ομήρου.",
    "ru": "Съешь же ещё этих мягких французских булок, да выпей чаю. Москва — столица России; в 2024 году было тепло.",
    "uk": "Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів! Україна — країна зі славною історією.",
    "zh": "我能吞下玻璃而不伤身体。中华人民共和国成立于1949年。人工智能正在改变世界，代码生成模型越来越强大。",
    "ja": "いろはにほへと ちりぬるを。私はガラスを食べられます。それは私を傷つけません。東京は日本の首都です。",
    "ko": "다람쥐 헌 쳇바퀴에 타고파. 한국어는 한글로 씁니다. 서울은 대한민국의 수도입니다.",
    "ar": "نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق. اللغة العربية جميلة، أليس كذلك؟",
    "he": "דג סקרן שט בים מאוכזב ולפתע מצא חברה. עברית נכתבת מימין לשמאל.",
    "hi": "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम। हिन्दी भारत की भाषा है।",
    "th": "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    "bn": "আমি কাঁচ খেতে পারি, তাতে আমার কোনো ক্ষতি হয় না।",
    "ta": "யாமறிந்த மொழிகளிலே தமிழ்மொழி போல் இனிதாவது எங்கும் காணோம்.",
    "ka": "ვეპხის ტყაოსანი შოთა რუსთაველი. საქართველო ლამაზი ქვეყანაა.",
    "am": "ሰማይ አይታረስ ንጉሥ አይከሰስ። አማርኛ ቋንቋ ነው።",
    "hy": "Կրնամ ապակի ուտել և ինծի անհանգիստ չըներ։",
}

EMOJI = [
    "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "👍🏽", "👋🏿", "🧑🏻‍🚀", "❤️‍🔥", "🇫🇷", "🇯🇵", "1️⃣", "#️⃣", "✌🏼", "🤷‍♀️",
    "👩🏾‍❤️‍💋‍👨🏻", "🫱🏼‍🫲🏿", "😀", "🎉", "🐍", "🚀", "©️", "™", "☺️", "🏃🏽‍♂️‍➡️", "🧔‍♂", "👁️‍🗨️", "🐕‍🦺",
]

ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|box_start|>", "<|vision_pad|>",
         "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
         "<|repo_name|>", "<|file_sep|>", "<|beginoftext|>", "<|mask|>", "<|dlm_pad|>"]


def walk_code(rng, target):
    roots = ["/usr/share", "/usr/lib", "/usr/include", "/etc"]
    by_ext = {}
    seen = 0
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            if "/locale" in dirpath or "/fonts" in dirpath or "/icons" in dirpath or "/node_modules/." in dirpath:
                dirnames[:] = []
                continue
            for f in sorted(filenames):
                ext = os.path.splitext(f)[1]
                if ext in CODE_EXT:
                    by_ext.setdefault(ext, []).append(os.path.join(dirpath, f))
                    seen += 1
            if seen > 400000:
                break
    docs = []
    total = 0
    exts = sorted(by_ext)
    per_ext = max(20000, target // max(1, len(exts)))
    for ext in exts:
        files = by_ext[ext]
        rng.shuffle(files)
        got = 0
        for p in files[:400]:
            if got >= per_ext or total >= target:
                break
            try:
                if os.path.islink(p) or os.path.getsize(p) == 0:
                    continue
                with open(p, "rb") as fh:
                    b = fh.read(48 * 1024)
                b.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if b"\0" in b:
                continue
            docs.append(b)
            got += len(b)
            total += len(b)
    return docs, total, len(exts)


def synth_code(rng, n):
    kw = ["def", "return", "if", "else", "for", "while", "int", "static", "const", "class", "import", "fn", "let",
          "var", "function", "struct", "void", "pub", "async", "await", "lambda", "yield", "try", "except"]
    out = []
    while sum(map(len, out)) < n:
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(1, 12)))
        ind = " " * (4 * rng.randint(0, 4))
        line = f"{ind}{rng.choice(kw)} {name}({rng.randint(0, 99999)}, '{name}s') {{ x += {rng.random():.5f}; }} // {name}\n"
        out.append(line)
    return "".join(out).encode()


def mo_prose(rng, target):
    """Translated strings from gettext catalogs, grouped per language directory."""
    base = "/usr/share/locale"
    docs, total = [], 0
    if not os.path.isdir(base):
        return docs
    langs = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d, "LC_MESSAGES")))
    rng.shuffle(langs)
    per_lang = max(4000, target // max(1, len(langs)))
    for lang in langs:
        d = os.path.join(base, lang, "LC_MESSAGES")
        texts = []
        for f in sorted(os.listdir(d))[:6]:
            if not f.endswith(".mo"):
                continue
            try:
                with open(os.path.join(d, f), "rb") as fh:
                    cat = gettext.GNUTranslations(fh)
                texts.extend(v for k, v in sorted(cat._catalog.items(), key=lambda kv: str(kv[0])) if k and v)
            except Exception:
                continue
        if not texts:
            continue
        rng.shuffle(texts)
        s = "\n".join(texts)
        b = s.encode("utf-8", "replace")[:per_lang]
        b = b.decode("utf-8", "ignore").encode()
        docs.append(b)
        total += len(b)
        if total >= target:
            break
    return docs


def builtin_prose(rng, n):
    keys = sorted(PROSE)
    docs = []
    for k in keys:
        words = PROSE[k].split(" ")
        if len(words) < 6:  # scripts written without spaces: cut into short runs
            t = PROSE[k]
            words = [t[i:i + 4] for i in range(0, len(t), 4)]
        out = [PROSE[k]]
        while sum(map(len, out)) < n // len(keys):
            w = words[:]
            rng.shuffle(w)
            out.append(" ".join(w[: rng.randint(3, len(w))]) + rng.choice([". ", "\n", "? ", "! ", ", ", "\n\n"]))
        docs.append("".join(out).encode())
    return docs


def nfd_docs(rng, prose):
    docs = []
    for b in prose[:60]:
        s = b.decode()
        docs.append(unicodedata.normalize("NFD", s).encode())
    marks = [chr(c) for c in range(0x300, 0x370)] + ["\u0591", "\u05b4", "\u064b", "\u0651", "\u093c", "\u0e31",
                                                     "\u0e48", "\u20d7", "\u302a", "\u3099", "\u309a"]
    for _ in range(400):
        out = []
        for _ in range(rng.randint(5, 80)):
            base = rng.choice("aeiouAEIOUnczsgkyw" + "αεηιοωАЕИОУ" + "かきくさはひふカキハ" + "ᄀᄁᄂ" + "한 ")
            out.append(base + "".join(rng.choice(marks) for _ in range(rng.randint(0, 4))))
            if rng.random() < 0.2:
                out.append(rng.choice([" ", "\n", "'s ", "1", "-"]))
        docs.append("".join(out).encode())
    # conjoining Hangul jamo that NFC composes into syllables
    jamo = []
    for _ in range(2000):
        jamo.append(chr(0x1100 + rng.randint(0, 18)) + chr(0x1161 + rng.randint(0, 20)) +
                    (chr(0x11A8 + rng.randint(0, 26)) if rng.random() < 0.5 else ""))
        if rng.random() < 0.2:
            jamo.append(" ")
    docs.append("".join(jamo).encode())
    return docs


def whitespace_docs(rng):
    ws = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\ufeff", "\x0b",
          "\x0c", "\u2003", "\u202f", "\u205f", "\u180e", "\u200b", "\u1680"]
    words = ["int", "x", "=", "1;", "return", "foo()", "'s", "é", "中文", "123", "//", "#", "{", "}", "café"]
    docs = [b" " * 5000, b"\t" * 3000, b"\n" * 2000, b"\r\n" * 1500, b" \n" * 1000, b"x" + b" " * 4000 + b"y",
            b"a\n\n\n   \n\t\n b", b"   leading and trailing   ", "\u00a0" .encode() * 500]
    for _ in range(600):
        out = []
        for _ in range(rng.randint(1, 60)):
            r = rng.random()
            if r < 0.5:
                out.append("".join(rng.choice(ws) for _ in range(rng.randint(1, 12))))
            elif r < 0.55:
                out.append(" " * rng.randint(10, 300))
            else:
                out.append(rng.choice(words))
        docs.append("".join(out).encode())
    return docs


def special_docs(rng):
    docs = []
    tail = ["", " ", "\n", "x", "é", "\u0301", "\u0338", "中", "<", ">", "|", "'s", "123"]
    for _ in range(1500):
        out = []
        for _ in range(rng.randint(1, 12)):
            t = rng.choice(ADDED)
            r = rng.random()
            if r < 0.15:
                t = t[: rng.randint(1, len(t) - 1)]  # partial
            elif r < 0.2:
                t = "<" + t + ">"
            elif r < 0.25:
                t = t.upper()
            out.append(rng.choice(tail) + t + rng.choice(tail))
            if rng.random() < 0.3:
                out.append(rng.choice(["Hello", " world", "def f():", "\n\n", "  ", "<|", "|>"]))
        docs.append("".join(out).encode())
    docs.append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWrite a function.\n"
                "<|im_end|>\n<|im_start|>assistant\n".encode())
    docs.append(("<|mask|>" * 300 + "<|dlm_pad|>" * 100 + "<|endoftext|>").encode())
    return docs


def emoji_docs(rng):
    docs = []
    for _ in range(500):
        out = []
        for _ in range(rng.randint(1, 40)):
            out.append(rng.choice(EMOJI))
            if rng.random() < 0.4:
                out.append(rng.choice([" ", "", "\n", "ok", " 好", "é", "!", "1"]))
        docs.append("".join(out).encode())
    return docs


def assigned_codepoints():
    cps = []
    for c in range(0x20, 0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        if unicodedata.category(chr(c)) != "Cn":
            cps.append(c)
    # noncharacters are unassigned in every Unicode version
    cps += list(range(0xFDD0, 0xFDF0)) + [0xFFFE, 0xFFFF, 0x1FFFE, 0x10FFFF]
    return cps


def fuzz_text_docs(rng, n_bytes, cps):
    cps = sorted(cps)
    bmp = [c for c in cps if c < 0x10000]
    docs, total = [], 0
    while total < n_bytes:
        out = []
        for _ in range(rng.randint(1, 600)):
            r = rng.random()
            if r < 0.35:
                out.append(chr(rng.choice(bmp)))
            elif r < 0.45:
                out.append(chr(rng.choice(cps)))
            elif r < 0.55:
                out.append(rng.choice([" ", "  ", "\n", "\t", "\r\n"]))
            elif r < 0.62:
                out.append(rng.choice(["'s", "'S", "'t", "'RE", "'ve", "'M", "'ll", "'D", "'\u017f", "'x", "’s"]))
            elif r < 0.7:
                out.append(str(rng.randint(0, 10 ** rng.randint(1, 8))))
            elif r < 0.8:
                out.append(rng.choice("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~"))
            elif r < 0.83:
                out.append(chr(rng.randint(0, 0x1F)))
            else:
                out.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                                   for _ in range(rng.randint(1, 9))))
        b = "".join(out).encode()
        docs.append(b)
        total += len(b)
    return docs


def fuzz_bytes_docs(rng, n_bytes, cps, cps_set):
    docs, total = [], 0
    bad = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
           b"\xf4\x90\x80\x80", b"\xf5\x80", b"\xff", b"\xfe", b"\xe4\xb8", b"\xf0\x9f\x98", b"\xc3", b"\xe2\x82"]
    while total < n_bytes:
        r = rng.random()
        if r < 0.4:
            b = bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
        else:
            parts = []
            for _ in range(rng.randint(1, 80)):
                q = rng.random()
                if q < 0.3:
                    parts.append(rng.choice(bad))
                elif q < 0.6:
                    parts.append(rng.choice(["abc", " ", "é", "中文", "😀", "'s", "\n", "<|im_end|>"]).encode())
                else:
                    # a whole character only if Unicode 14 assigns it (newer
                    # letters are where the oracle's Unicode 17 and Hugging
                    # Face's differ); cut ones become U+FFFD anyway
                    c = rng.randint(0x80, 0x10FFFF) if rng.random() < 0.5 else rng.randint(0x80, 0x7FF)
                    e = chr(c).encode("utf-8", "surrogatepass")
                    cut = rng.randint(1, len(e))
                    if cut == len(e) and c not in cps_set:
                        e = chr(rng.choice(cps)).encode()
                        cut = len(e)
                    parts.append(e[:cut])
            b = b"".join(parts)
        docs.append(b)
        total += len(b)
    return docs


# Assigned in Unicode 15.0 (checked against utf8proc 2.8's tables): letters,
# digits, numbers, punctuation, symbols. No combining marks: the Rust library
# normalizes with Unicode 9.0 tables, where new marks are unassigned starters
# (a documented deviation, see docs/BENCHMARKS-tokenizer.md).
UNICODE15 = [(0x31350, 0x323AF), (0x11F04, 0x11F10), (0x11F12, 0x11F33), (0x11F50, 0x11F59), (0x1E4D0, 0x1E4EB),
             (0x1E4F0, 0x1E4F9), (0x1E030, 0x1E06D), (0x1DF25, 0x1DF2A), (0x1D2C0, 0x1D2D3), (0x11B00, 0x11B09),
             (0x1123F, 0x11240), (0x13441, 0x13446), (0x1F6DC, 0x1F6DC), (0x1FA75, 0x1FA77)]


def unicode15_docs(rng, n):
    docs = []
    for _ in range(n):
        out = []
        for _ in range(rng.randint(1, 50)):
            lo, hi = rng.choice(UNICODE15)
            out.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 4))))
            if rng.random() < 0.5:
                out.append(rng.choice([" ", "'s", "!", "1", "x", "\n", "中", "é", "  "]))
        docs.append("".join(out).encode())
    return docs


def id_docs(rng, n):
    docs = []
    for _ in range(n):
        ids = []
        for _ in range(rng.randint(1, 60)):
            r = rng.random()
            if r < 0.5:
                ids.append(rng.randrange(256))  # single-byte tokens: partial UTF-8
            elif r < 0.85:
                ids.append(rng.randrange(151643))
            else:
                ids.append(rng.randrange(151643, 151668))
        docs.append(struct.pack(f"<{len(ids)}I", *ids))
    return docs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=20250610)
    ap.add_argument("--mb", type=float, default=5.5, help="approximate size of the text part")
    ap.add_argument("--small", action="store_true", help="a ~300 KB corpus (for the sanitizer build)")
    ap.add_argument("--code-txt", help="also write the code part as one plain text file (for benchmarks)")
    ap.add_argument("--prose-txt", help="also write the prose part as one plain text file (for benchmarks)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    size = int((0.3 if a.small else a.mb) * 1e6)

    records = []  # (kind, cat, payload)
    code, got, n_ext = walk_code(rng, int(size * 0.46))
    if got < size * 0.46:
        code.append(synth_code(rng, int(size * 0.46) - got))
    records += [(1, 0, b) for b in code]
    prose = builtin_prose(rng, int(size * 0.05)) + mo_prose(rng, int(size * 0.18))
    records += [(1, 1, b) for b in prose]
    nfd = nfd_docs(rng, prose)
    records += [(1, 2, b) for b in (nfd if not a.small else nfd[:80])]
    ws = whitespace_docs(rng)
    records += [(1, 3, b) for b in (ws if not a.small else ws[:100])]
    sp = special_docs(rng)
    records += [(1, 4, b) for b in (sp if not a.small else sp[:200])]
    em = emoji_docs(rng)
    records += [(1, 5, b) for b in (em if not a.small else em[:100])]
    cps = set(assigned_codepoints())
    records += [(1, 6, b) for b in fuzz_text_docs(rng, int(size * 0.12), cps)]
    records += [(1, 7, b) for b in fuzz_bytes_docs(rng, int(size * 0.03), sorted(cps), cps)]
    records += [(1, 9, b) for b in unicode15_docs(rng, 300 if not a.small else 30)]
    records += [(2, 8, b) for b in id_docs(rng, 3000 if not a.small else 300)]

    with open(a.out, "wb") as fh:
        fh.write(b"DTKC\x01")
        for kind, cat, b in records:
            fh.write(struct.pack("<BBI", kind, cat, len(b)))
            fh.write(b)
    for path, want in ((a.code_txt, 0), (a.prose_txt, 1)):
        if path:
            with open(path, "wb") as fh:
                for kind, cat, b in records:
                    if cat == want:
                        fh.write(b)
    per = {}
    for kind, cat, b in records:
        n, s = per.get(CATS[cat], (0, 0))
        per[CATS[cat]] = (n + 1, s + len(b))
    text = sum(s for c, (n, s) in per.items() if c != "ids")
    print(f"build_corpus.py: {a.out}: {len(records)} records, {text / 1e6:.2f} MB of text "
          f"(code from {n_ext} file extensions); " +
          ", ".join(f"{c} {n}/{s / 1e6:.2f}MB" for c, (n, s) in per.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
