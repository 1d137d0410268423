/* tokenizer_json.c — the tokenizer.json reader (Hugging Face tokenizers'
 * own file): model (BPE vocab and merges), added tokens, normalizer,
 * pre-tokenizer and decoder into a tok_builder (tokenizer_int.h), which
 * tok_build turns into the tables. Anything it does not support is refused
 * with a one-line "unsupported" error naming the file and field. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "tokenizer_int.h"

static int type_is(const diffu_json *o, const char *t) {
    const diffu_json *v = diffu_json_get(o, "type");
    return v && v->type == DJ_STR && strcmp(v->u.str.s, t) == 0;
}

static const char *type_of(const diffu_json *o) {
    const diffu_json *v = diffu_json_get(o, "type");
    return v && v->type == DJ_STR ? v->u.str.s : "(none)";
}

static int bool_field(const diffu_json *o, const char *key, int dflt, const char *file, const char *where, int *out,
                      diffu_err *err) {
    *out = dflt;
    int r = diffu_json_get_bool(o, key, out, err);
    if (r < 0) {
        const diffu_json *v = diffu_json_get(o, key);
        if (v && v->type == DJ_NULL) {
            *out = dflt;
            return 0;
        }
        return diffu_err_prefix(err, "%s: %s", file, where);
    }
    return 0;
}

static int read_normalizer(tok_builder *bd, const diffu_json *nz, const char *file, diffu_err *err) {
    if (!nz || nz->type == DJ_NULL) return 0;
    if (type_is(nz, "NFC")) {
        bd->nfc = 1;
        return 0;
    }
    if (type_is(nz, "Sequence")) {
        const diffu_json *seq = diffu_json_get(nz, "normalizers");
        if (!seq || seq->type != DJ_ARR)
            return diffu_err_set(err, "%s: field 'normalizer.normalizers': expected an array", file);
        for (size_t i = 0; i < seq->u.kids.n; i++)
            if (read_normalizer(bd, seq->u.kids.items[i], file, err) < 0) return -1;
        return 0;
    }
    return diffu_err_set(err, "%s: field 'normalizer': type '%s' is not supported (only NFC or none)", file,
                         type_of(nz));
}

static int add_prestep(diffu_tokenizer *tok, const diffu_json *p, const char *file, diffu_err *err) {
    if (type_is(p, "Sequence")) {
        const diffu_json *seq = diffu_json_get(p, "pretokenizers");
        if (!seq || seq->type != DJ_ARR)
            return diffu_err_set(err, "%s: field 'pre_tokenizer.pretokenizers': expected an array", file);
        for (size_t i = 0; i < seq->u.kids.n; i++)
            if (add_prestep(tok, seq->u.kids.items[i], file, err) < 0) return -1;
        return 0;
    }
    if (tok->n_pre == TOK_MAX_PRESTEPS)
        return diffu_err_set(err, "%s: field 'pre_tokenizer': more than %d steps", file, TOK_MAX_PRESTEPS);
    tok_prestep *st = &tok->pre[tok->n_pre];
    memset(st, 0, sizeof *st);
    if (type_is(p, "Split")) {
        st->kind = PRE_SPLIT;
        const diffu_json *pat = diffu_json_get(p, "pattern");
        const diffu_json *re = pat ? diffu_json_get(pat, "Regex") : NULL;
        const diffu_json *lit = pat ? diffu_json_get(pat, "String") : NULL;
        const diffu_json *src = re ? re : lit;
        if (!src || src->type != DJ_STR)
            return diffu_err_set(err, "%s: field 'pre_tokenizer.pattern': expected {\"Regex\": ...} or {\"String\": ...}",
                                 file);
        const diffu_json *beh = diffu_json_get(p, "behavior");
        const char *b = beh && beh->type == DJ_STR ? beh->u.str.s : "";
        if (!strcmp(b, "Isolated")) st->behavior = SPLIT_ISOLATED;
        else if (!strcmp(b, "Removed")) st->behavior = SPLIT_REMOVED;
        else
            return diffu_err_set(err, "%s: field 'pre_tokenizer.behavior': '%s' is not supported (Isolated, Removed)",
                                 file, b);
        int invert = 0;
        if (bool_field(p, "invert", 0, file, "pre_tokenizer", &invert, err) < 0) return -1;
        if (invert) return diffu_err_set(err, "%s: field 'pre_tokenizer.invert': true is not supported", file);
        st->re = tok_regex_compile(src->u.str.s, src->u.str.len, src == lit, err);
        if (!st->re) return diffu_err_prefix(err, "%s: field 'pre_tokenizer.pattern'", file);
        tok->n_pre++;
        return 0;
    }
    if (type_is(p, "ByteLevel")) {
        st->kind = PRE_BYTELEVEL;
        int use_regex = 1;
        if (bool_field(p, "add_prefix_space", 1, file, "pre_tokenizer", &st->add_prefix_space, err) < 0) return -1;
        if (bool_field(p, "use_regex", 1, file, "pre_tokenizer", &use_regex, err) < 0) return -1;
        if (use_regex) {
            static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
            st->re = tok_regex_compile(gpt2, sizeof gpt2 - 1, 0, err);
            if (!st->re) return diffu_err_prefix(err, "%s: ByteLevel regex", file);
        }
        tok->n_pre++;
        return 0;
    }
    return diffu_err_set(err, "%s: field 'pre_tokenizer': type '%s' is not supported (Split, ByteLevel, Sequence)",
                         file, type_of(p));
}

static int read_added_tokens(tok_builder *bd, const diffu_json *arr, const char *file, diffu_err *err) {
    if (!arr || arr->type == DJ_NULL) return 0;
    if (arr->type != DJ_ARR) return diffu_err_set(err, "%s: field 'added_tokens': expected an array", file);
    bd->added = diffu_xcalloc(arr->u.kids.n + 1, sizeof(tok_added));
    bd->added_file = file;
    for (size_t i = 0; i < arr->u.kids.n; i++) {
        const diffu_json *t = arr->u.kids.items[i];
        int64_t id;
        const char *content = NULL;
        if (t->type != DJ_OBJ) return diffu_err_set(err, "%s: field 'added_tokens[%zu]': expected an object", file, i);
        int r = diffu_json_get_int(t, "id", 0, INT32_MAX - 1, &id, err);
        if (r) {
            if (r > 0) diffu_err_set(err, "field 'id' is missing");
            return diffu_err_prefix(err, "%s: added_tokens[%zu]", file, i);
        }
        r = diffu_json_get_str(t, "content", &content, err);
        if (r) {
            if (r > 0) diffu_err_set(err, "field 'content' is missing");
            return diffu_err_prefix(err, "%s: added_tokens[%zu]", file, i);
        }
        const diffu_json *cj = diffu_json_get(t, "content");
        if (cj->u.str.len == 0)
            return diffu_err_set(err, "%s: field 'added_tokens[%zu].content': empty token", file, i);
        int special = 0, normalized = 1, lstrip = 0, rstrip = 0, single = 0;
        if (bool_field(t, "special", 0, file, "added_tokens", &special, err) < 0 ||
            bool_field(t, "normalized", !special, file, "added_tokens", &normalized, err) < 0 ||
            bool_field(t, "lstrip", 0, file, "added_tokens", &lstrip, err) < 0 ||
            bool_field(t, "rstrip", 0, file, "added_tokens", &rstrip, err) < 0 ||
            bool_field(t, "single_word", 0, file, "added_tokens", &single, err) < 0)
            return -1;
        tok_added *a = &bd->added[bd->n_added++];
        a->content = tok_xmemdup(content, cj->u.str.len);
        a->len = cj->u.str.len;
        a->id = (int32_t)id;
        a->flags = (special ? ADDED_SPECIAL : 0) | (normalized ? ADDED_NORMALIZED : 0) | (lstrip ? ADDED_LSTRIP : 0) |
                   (rstrip ? ADDED_RSTRIP : 0) | (single ? ADDED_SINGLE_WORD : 0);
    }
    return 0;
}

static int read_model(tok_builder *bd, const diffu_json *m, const char *file, diffu_err *err) {
    if (!m || m->type == DJ_NULL) return diffu_err_set(err, "%s: field 'model' is missing", file);
    if (m->type != DJ_OBJ) return diffu_err_set(err, "%s: field 'model': expected an object", file);
    const diffu_json *t = diffu_json_get(m, "type");
    if (t && !type_is(m, "BPE"))
        return diffu_err_set(err, "%s: field 'model.type': '%s' is not supported (only BPE)", file, type_of(m));
    if (tok_read_vocab_object(bd, diffu_json_get(m, "vocab"), file, "model.vocab", err) < 0) return -1;
    const diffu_json *mg = diffu_json_get(m, "merges");
    if (!mg) return diffu_err_set(err, "%s: field 'model.merges' is missing", file);
    if (mg->type != DJ_ARR) return diffu_err_set(err, "%s: field 'model.merges': expected an array", file);
    bd->merges = diffu_xmalloc((mg->u.kids.n + 1) * sizeof(tok_merge_str));
    bd->n_merges = mg->u.kids.n;
    for (size_t i = 0; i < mg->u.kids.n; i++) {
        const diffu_json *x = mg->u.kids.items[i];
        tok_merge_str *ms = &bd->merges[i];
        if (x->type == DJ_STR) {
            /* legacy "a b": split at the first space (tokenizers'
             * convert_merges_to_hashmap wants exactly two parts) */
            const char *sp = memchr(x->u.str.s, ' ', x->u.str.len);
            if (!sp || memchr(sp + 1, ' ', x->u.str.len - (size_t)(sp + 1 - x->u.str.s)))
                return diffu_err_set(err, "%s: field 'model.merges[%zu]': expected \"left right\"", file, i);
            ms->a = x->u.str.s;
            ms->an = (size_t)(sp - x->u.str.s);
            ms->b = sp + 1;
            ms->bn = x->u.str.len - ms->an - 1;
        } else if (x->type == DJ_ARR && x->u.kids.n == 2 && x->u.kids.items[0]->type == DJ_STR &&
                   x->u.kids.items[1]->type == DJ_STR) {
            ms->a = x->u.kids.items[0]->u.str.s;
            ms->an = x->u.kids.items[0]->u.str.len;
            ms->b = x->u.kids.items[1]->u.str.s;
            ms->bn = x->u.kids.items[1]->u.str.len;
        } else {
            return diffu_err_set(err, "%s: field 'model.merges[%zu]': expected \"left right\" or [left, right]", file, i);
        }
    }
    bd->merges_file = file;
    bd->merges_field = "model.merges";
    double dropout = 0;
    const diffu_json *dj = diffu_json_get(m, "dropout");
    if (dj && dj->type == DJ_NUM) dropout = dj->u.num.d;
    if (dropout > 0) return diffu_err_set(err, "%s: field 'model.dropout': BPE dropout is not supported", file);
    int byte_fallback = 0;
    if (bool_field(m, "byte_fallback", 0, file, "model", &byte_fallback, err) < 0) return -1;
    if (byte_fallback) return diffu_err_set(err, "%s: field 'model.byte_fallback': true is not supported", file);
    if (bool_field(m, "ignore_merges", 0, file, "model", &bd->ignore_merges, err) < 0) return -1;
    if (bool_field(m, "fuse_unk", 0, file, "model", &bd->fuse_unk, err) < 0) return -1;
    static const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const diffu_json *a = diffu_json_get(m, affixes[k]);
        if (a && !(a->type == DJ_NULL || (a->type == DJ_STR && a->u.str.len == 0)))
            return diffu_err_set(err, "%s: field 'model.%s': only null or \"\" is supported", file, affixes[k]);
    }
    const diffu_json *unk = diffu_json_get(m, "unk_token");
    if (unk && unk->type == DJ_STR) {
        bd->unk = unk->u.str.s;
        bd->unk_n = unk->u.str.len;
    }
    return 0;
}

diffu_tokenizer *tok_load_json(const char *file, const char *dir, diffu_err *err) {
    tok_builder bd = {0};
    bd.file = file;
    diffu_tokenizer *tok = NULL;
    diffu_json_doc *cfg_doc = NULL;
    char *cfg_path = NULL;
    diffu_json_doc *doc = diffu_json_parse_file(file, err);
    if (!doc) return NULL;
    const diffu_json *root = diffu_json_root(doc);
    if (root->type != DJ_OBJ) {
        diffu_err_set(err, "%s: expected a JSON object", file);
        goto out;
    }
    if (tok_load_config(&bd, dir, &cfg_doc, &cfg_path, err) < 0) goto out;
    if (read_model(&bd, diffu_json_get(root, "model"), file, err) < 0) goto out;
    if (read_added_tokens(&bd, diffu_json_get(root, "added_tokens"), file, err) < 0) goto out;
    if (read_normalizer(&bd, diffu_json_get(root, "normalizer"), file, err) < 0) goto out;
    const diffu_json *dec = diffu_json_get(root, "decoder");
    if (!dec || dec->type == DJ_NULL || !type_is(dec, "ByteLevel")) {
        diffu_err_set(err, "%s: field 'decoder': type '%s' is not supported (only ByteLevel)", file,
                      dec && dec->type == DJ_OBJ ? type_of(dec) : "null");
        goto out;
    }
    tok = tok_build(&bd, err);
    if (!tok) goto out;
    const diffu_json *pre = diffu_json_get(root, "pre_tokenizer");
    if (pre && pre->type != DJ_NULL && add_prestep(tok, pre, file, err) < 0) {
        diffu_tokenizer_free(&tok);
        goto out;
    }
    if (tok->n_pre == 0 || tok->pre[tok->n_pre - 1].kind != PRE_BYTELEVEL) {
        diffu_err_set(err, "%s: field 'pre_tokenizer': a byte-level BPE needs a ByteLevel pre-tokenizer step", file);
        diffu_tokenizer_free(&tok);
        goto out;
    }
out:
    tok_builder_free(&bd);
    diffu_json_free(doc);
    diffu_json_free(cfg_doc);
    free(cfg_path);
    return tok;
}
