/* tokenizer_legacy.c — the older file set: vocab.json + merges.txt (+
 * added_tokens.json) with the Qwen2 pre-tokenizer, into a tok_builder
 * (tokenizer_int.h), which tok_build turns into the tables. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "tokenizer_int.h"

static char *read_whole(const char *path, size_t *n, diffu_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        diffu_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0, r;
    char *buf = diffu_xmalloc(cap + 1);
    while ((r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) buf = diffu_xrealloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    buf[len] = 0;
    *n = len;
    return buf;
}

/* merges.txt: "left right" per line (tokenizers strips lines, skips "#version" on line 1 and blanks). */
static int read_merges(tok_builder *bd, char *mtext, size_t mlen, const char *mpath, diffu_err *err) {
    size_t cap = 1024, line = 0;
    bd->merges = diffu_xmalloc(cap * sizeof(tok_merge_str));
    char *p = mtext, *end = mtext + mlen;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line++;
        /* tokenizers strips the line, skips "#version" on line 1 and blanks */
        char *s = p, *e = le;
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
        p = nl ? nl + 1 : end;
        if (s == e || (line == 1 && e - s >= 8 && !memcmp(s, "#version", 8))) continue;
        char *sp = memchr(s, ' ', (size_t)(e - s));
        if (!sp || memchr(sp + 1, ' ', (size_t)(e - sp - 1))) {
            diffu_err_set(err, "%s: line %zu: expected \"left right\"", mpath, line);
            return -1;
        }
        if (bd->n_merges == cap) bd->merges = diffu_xrealloc(bd->merges, (cap *= 2) * sizeof(tok_merge_str));
        bd->merges[bd->n_merges++] = (tok_merge_str){s, sp + 1, (size_t)(sp - s), (size_t)(e - sp - 1)};
    }
    return 0;
}

/* Added tokens: added_tokens.json (content -> id), flags from the config's added_tokens_decoder when it has
 * them; else from added_tokens_decoder alone. *adoc keeps added_tokens.json's strings. */
static int read_added(tok_builder *bd, const diffu_json_doc *cfg_doc, const char *cfg_path, const char *apath,
                      diffu_json_doc **adoc, diffu_err *err) {
    const diffu_json *decoder = NULL;
    if (cfg_doc) decoder = diffu_json_get(diffu_json_root(cfg_doc), "added_tokens_decoder");
    const diffu_json *src = NULL;
    if (tok_file_exists(apath)) {
        *adoc = diffu_json_parse_file(apath, err);
        if (!*adoc) return -1;
        src = diffu_json_root(*adoc);
        if (src->type != DJ_OBJ) {
            diffu_err_set(err, "%s: expected an object of \"token\": id", apath);
            return -1;
        }
        bd->added_file = apath;
    } else if (decoder && decoder->type == DJ_OBJ) {
        bd->added_file = cfg_path;
    }
    size_t n = src ? src->u.kids.n : decoder && decoder->type == DJ_OBJ ? decoder->u.kids.n : 0;
    bd->added = diffu_xcalloc(n + 1, sizeof(tok_added));
    for (size_t i = 0; i < n; i++) {
        const char *content;
        size_t clen;
        int64_t id;
        const diffu_json *props = NULL;
        if (src) {
            const diffu_json *x = src->u.kids.items[i];
            content = src->u.kids.keys[i];
            clen = src->u.kids.klen[i];
            if (x->type != DJ_NUM || !x->u.num.is_int || x->u.num.i < 0 || x->u.num.i >= INT32_MAX - 1) {
                diffu_err_set(err, "%s: field '%s': expected an id", apath, content);
                return -1;
            }
            id = x->u.num.i;
            if (decoder && decoder->type == DJ_OBJ) {
                char key[32];
                snprintf(key, sizeof key, "%lld", (long long)id);
                props = diffu_json_get(decoder, key);
            }
        } else {
            char *endp;
            id = strtoll(decoder->u.kids.keys[i], &endp, 10);
            props = decoder->u.kids.items[i];
            const diffu_json *c = diffu_json_get(props, "content");
            if (*endp || id < 0 || id >= INT32_MAX - 1 || !c || c->type != DJ_STR) {
                diffu_err_set(err, "%s: field 'added_tokens_decoder.%s': expected an id with a content", cfg_path,
                              decoder->u.kids.keys[i]);
                return -1;
            }
            content = c->u.str.s;
            clen = c->u.str.len;
        }
        int special = 0;
        for (int k = 0; k < 5; k++)
            if (bd->named[k] && strlen(bd->named[k]) == clen && !memcmp(bd->named[k], content, clen)) special = 1;
        int normalized = !special, lstrip = 0, rstrip = 0, single = 0;
        if (props && props->type == DJ_OBJ) {
            diffu_json_get_bool(props, "special", &special, err);
            normalized = !special;
            diffu_json_get_bool(props, "normalized", &normalized, err);
            diffu_json_get_bool(props, "lstrip", &lstrip, err);
            diffu_json_get_bool(props, "rstrip", &rstrip, err);
            diffu_json_get_bool(props, "single_word", &single, err);
        }
        tok_added *a = &bd->added[bd->n_added++];
        a->content = tok_xmemdup(content, clen);
        a->len = clen;
        a->id = (int32_t)id;
        a->flags = (special ? ADDED_SPECIAL : 0) | (normalized ? ADDED_NORMALIZED : 0) |
                   (lstrip ? ADDED_LSTRIP : 0) | (rstrip ? ADDED_RSTRIP : 0) | (single ? ADDED_SINGLE_WORD : 0);
    }
    return 0;
}

diffu_tokenizer *tok_load_legacy(const char *dir, diffu_err *err) {
    tok_builder bd = {0};
    diffu_tokenizer *tok = NULL;
    diffu_json_doc *vdoc = NULL, *adoc = NULL, *cfg_doc = NULL;
    char *cfg_path = NULL, *mtext = NULL;
    char *vpath = tok_path_join(dir, "vocab.json"), *mpath = tok_path_join(dir, "merges.txt"),
         *apath = tok_path_join(dir, "added_tokens.json");
    bd.file = vpath;
    bd.nfc = 1;
    if (tok_load_config(&bd, dir, &cfg_doc, &cfg_path, err) < 0) goto out;
    vdoc = diffu_json_parse_file(vpath, err);
    if (!vdoc || tok_read_vocab_object(&bd, diffu_json_root(vdoc), vpath, "(root)", err) < 0) goto out;
    size_t mlen;
    mtext = read_whole(mpath, &mlen, err);
    if (!mtext) goto out;
    if (read_merges(&bd, mtext, mlen, mpath, err)) goto out;
    bd.merges_file = mpath;
    bd.merges_field = "merges";
    if (read_added(&bd, cfg_doc, cfg_path, apath, &adoc, err)) goto out;
    tok = tok_build(&bd, err);
    if (!tok) goto out;
    /* Qwen2 / Dream: Split(regex, Isolated) then ByteLevel without its regex */
    tok->pre[0] = (tok_prestep){PRE_SPLIT, tok_regex_compile(TOK_QWEN2_PATTERN, strlen(TOK_QWEN2_PATTERN), 0, err),
                                SPLIT_ISOLATED, 0};
    if (!tok->pre[0].re) {
        diffu_tokenizer_free(&tok);
        goto out;
    }
    tok->pre[1] = (tok_prestep){PRE_BYTELEVEL, NULL, 0, 0};
    tok->n_pre = 2;
out:
    tok_builder_free(&bd);
    diffu_json_free(vdoc);
    diffu_json_free(adoc);
    diffu_json_free(cfg_doc);
    free(cfg_path);
    free(mtext);
    free(vpath);
    free(mpath);
    free(apath);
    return tok;
}
