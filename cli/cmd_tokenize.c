/* cmd_tokenize.c — `diffu tokenize`: text <-> Qwen2.5 / Dream token ids with
 * a checkpoint's tokenizer (exact to Hugging Face tokenizers; see
 * model/tokenizer.h), and the DiffuCoder chat prompt / reply rules
 * (model/chat.h). Results on stdout, errors on stderr. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "chat.h"
#include "commands.h"
#include "json.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu tokenize --model DIR [--jsonl] [--decode [--skip-special] [--reply]]\n"
            "                      [--chat [--system TEXT] [--prefill TEXT | --eval-prefill]]\n"
            "  Encodes the text on stdin to token ids (one line, space-separated), exactly as Hugging Face\n"
            "  tokenizers does with DIR/tokenizer.json (or vocab.json + merges.txt); no BOS is added.\n"
            "  --model DIR       checkpoint directory (or a tokenizer.json file)\n"
            "  --jsonl           stdin has one JSON object per line: {\"text\": ...} -> {\"ids\": [...]}\n"
            "                    (with --decode: {\"ids\": [...]} -> {\"text\": ...})\n"
            "  --decode          ids (whitespace/comma separated) on stdin -> text on stdout\n"
            "  --skip-special    with --decode: leave out special tokens (<|im_end|>, <|mask|>, ...)\n"
            "  --reply           with --decode: a generated reply: cut at <|endoftext|>/<|dlm_pad|>, strip <|im_end|>\n"
            "  --chat            wrap the text as the user turn of the DiffuCoder chat prompt\n"
            "  --system TEXT     system line of the chat prompt (default \"%s\")\n"
            "  --prefill TEXT    assistant prefill after the prompt (C escapes \\n \\t \\\\ are expanded)\n"
            "  --eval-prefill    the paper's prefill: \"Here is the code to solve this problem:\\n```python\\n\"\n",
            DIFFU_CHAT_DEFAULT_SYSTEM);
}

static char *read_all(FILE *f, size_t *n) {
    size_t cap = 1 << 16, len = 0, r;
    char *b = diffu_xmalloc(cap + 1);
    while ((r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) b = diffu_xrealloc(b, (cap *= 2) + 1);
    }
    b[len] = 0;
    *n = len;
    return b;
}

static char *unescape(const char *s) {
    char *r = diffu_xmalloc(strlen(s) + 1);
    arg_unescape(r, s);
    return r;
}

typedef struct {
    const diffu_tokenizer *tok;
    int chat, skip, reply;
    const char *system, *prefill;
} opts;

static int encode_one(const opts *o, const char *text, size_t n, diffu_ids *ids, diffu_err *err) {
    if (o->chat) return diffu_chat_prompt_ids(o->tok, o->system, text, n, o->prefill, ids, err);
    return diffu_tokenizer_encode(o->tok, text, n, ids, err);
}

static void decode_one(const opts *o, const int32_t *ids, size_t n, diffu_text *out) {
    if (o->reply) diffu_chat_reply(o->tok, ids, n, out);
    else diffu_tokenizer_decode(o->tok, ids, n, o->skip ? DIFFU_DECODE_SKIP_SPECIAL : 0, out);
}

/* Parse ids from s: integers separated by whitespace, commas or brackets. */
static int parse_ids(const char *s, size_t n, int32_t vocab, diffu_ids *out, diffu_err *err) {
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '[' || c == ']') {
            i++;
            continue;
        }
        char *end;
        long long v = strtoll(s + i, &end, 10);
        if (end == s + i) return diffu_err_set(err, "expected an integer id at '%.10s'", s + i);
        if (v < 0 || v >= vocab)
            return diffu_err_set(err, "id %lld is outside the vocabulary (0..%d)", v, vocab - 1);
        diffu_ids_push(out, (int32_t)v);
        i = (size_t)(end - s);
    }
    return 0;
}

static void put_json_string(FILE *f, const char *s, size_t n) {
    size_t need = diffu_json_escape(NULL, 0, s, n);
    char *b = diffu_xmalloc(need + 1);
    diffu_json_escape(b, need + 1, s, n);
    fwrite(b, 1, need, f);
    free(b);
}

static int run_jsonl(const opts *o, int decode) {
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    diffu_ids ids = {0};
    diffu_text txt = {0};
    diffu_err err;
    int rc = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        size_t n = (size_t)len;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == n) continue;
        diffu_json_doc *doc = diffu_json_parse(line, n, &err);
        if (!doc) {
            fprintf(stderr, "diffu tokenize: error: stdin line %zu: %s\n", lineno, err.msg);
            rc = 1;
            break;
        }
        const diffu_json *root = diffu_json_root(doc);
        const diffu_json *v = diffu_json_get(root, decode ? "ids" : "text");
        ids.len = txt.len = 0;
        if (!decode) {
            if (!v || v->type != DJ_STR) {
                fprintf(stderr, "diffu tokenize: error: stdin line %zu: field 'text': expected a string\n", lineno);
                rc = 1;
            } else if (encode_one(o, v->u.str.s, v->u.str.len, &ids, &err) < 0) {
                fprintf(stderr, "diffu tokenize: error: stdin line %zu: %s\n", lineno, err.msg);
                rc = 1;
            } else {
                fputs("{\"ids\": [", stdout);
                for (size_t i = 0; i < ids.len; i++) printf(i ? ", %d" : "%d", ids.data[i]);
                fputs("]}\n", stdout);
            }
        } else {
            int ok = v && v->type == DJ_ARR;
            for (size_t i = 0; ok && i < v->u.kids.n; i++) {
                const diffu_json *x = v->u.kids.items[i];
                if (x->type != DJ_NUM || !x->u.num.is_int || x->u.num.i < 0 ||
                    x->u.num.i >= diffu_tokenizer_vocab_size(o->tok))
                    ok = 0;
                else
                    diffu_ids_push(&ids, (int32_t)x->u.num.i);
            }
            if (!ok) {
                fprintf(stderr,
                        "diffu tokenize: error: stdin line %zu: field 'ids': expected an array of ids in 0..%d\n",
                        lineno, diffu_tokenizer_vocab_size(o->tok) - 1);
                rc = 1;
            } else {
                decode_one(o, ids.data, ids.len, &txt);
                fputs("{\"text\": ", stdout);
                put_json_string(stdout, txt.data ? txt.data : "", txt.len);
                fputs("}\n", stdout);
            }
        }
        diffu_json_free(doc);
        if (rc) break;
    }
    free(line);
    diffu_ids_free(&ids);
    diffu_text_free(&txt);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option lo[] = {{"model", 1, 0, 'm'},        {"jsonl", 0, 0, 'j'},   {"decode", 0, 0, 'd'},
                                       {"skip-special", 0, 0, 's'}, {"reply", 0, 0, 'r'},   {"chat", 0, 0, 'c'},
                                       {"system", 1, 0, 'S'},       {"prefill", 1, 0, 'P'}, {"eval-prefill", 0, 0, 'E'},
                                       {"help", 0, 0, 'h'},         {0, 0, 0, 0}};
    const char *model = NULL;
    int jsonl = 0, decode = 0, c;
    char *prefill = NULL;
    opts o = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'j': jsonl = 1; break;
        case 'd': decode = 1; break;
        case 's': o.skip = 1; break;
        case 'r': o.reply = 1; break;
        case 'c': o.chat = 1; break;
        case 'S': o.system = optarg; break;
        case 'P': free(prefill); prefill = unescape(optarg); break;
        case 'E': free(prefill); prefill = diffu_xstrdup(DIFFU_CHAT_EVAL_PREFILL); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model || optind != argc) {
        if (!model) fprintf(stderr, "diffu tokenize: --model DIR is required\n");
        usage(stderr);
        free(prefill);
        return 2;
    }
    if ((decode && o.chat) || (!decode && (o.skip || o.reply)) || (!o.chat && (o.system || prefill))) {
        fprintf(stderr, "diffu tokenize: --chat/--system/--prefill go with encoding, --skip-special/--reply with "
                        "--decode\n");
        free(prefill);
        return 2;
    }
    o.prefill = prefill;
    diffu_err err;
    diffu_tokenizer *tok = diffu_tokenizer_load(model, &err);
    if (!tok) {
        fprintf(stderr, "diffu tokenize: error: %s\n", err.msg);
        free(prefill);
        return 1;
    }
    o.tok = tok;
    int rc = 0;
    if (jsonl) {
        rc = run_jsonl(&o, decode);
    } else {
        size_t n;
        char *in = read_all(stdin, &n);
        diffu_ids ids = {0};
        if (!decode) {
            if (encode_one(&o, in, n, &ids, &err) < 0) {
                fprintf(stderr, "diffu tokenize: error: %s\n", err.msg);
                rc = 1;
            } else {
                for (size_t i = 0; i < ids.len; i++) printf(i ? " %d" : "%d", ids.data[i]);
                printf("\n");
            }
        } else if (parse_ids(in, n, diffu_tokenizer_vocab_size(tok), &ids, &err) < 0) {
            fprintf(stderr, "diffu tokenize: error: stdin: %s\n", err.msg);
            rc = 1;
        } else {
            diffu_text t = {0};
            decode_one(&o, ids.data, ids.len, &t);
            fwrite(t.data ? t.data : "", 1, t.len, stdout);
            diffu_text_free(&t);
        }
        diffu_ids_free(&ids);
        free(in);
    }
    if (fflush(stdout) != 0) rc = 1;
    diffu_tokenizer_free(&tok);
    free(prefill);
    return rc;
}
