/* json.c — see json.h. Recursive descent over a byte buffer, nodes in an arena. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_block;

struct diffu_json_doc {
    arena_block *blocks;
    diffu_json *root;
};

typedef struct {
    const char *p, *end, *start;
    int line;
    const char *line_start;
    diffu_json_doc *doc;
    diffu_err *err;
    int depth;
} parser;

static void *arena_alloc(diffu_json_doc *d, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_block *b = d->blocks;
    if (!b || b->used + n > b->cap) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        b = diffu_xmalloc(sizeof *b + cap);
        b->used = 0;
        b->cap = cap;
        b->next = d->blocks;
        d->blocks = b;
    }
    void *r = b->data + b->used;
    b->used += n;
    return r;
}

static int fail(parser *ps, const char *what) {
    int col = (int)(ps->p - ps->line_start) + 1;
    return diffu_err_set(ps->err, "line %d col %d: %s", ps->line, col, what);
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == '\n') {
            ps->line++;
            ps->p++;
            ps->line_start = ps->p;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ps->p++;
        } else {
            break;
        }
    }
}

static diffu_json *new_node(parser *ps, diffu_json_type t) {
    diffu_json *n = arena_alloc(ps->doc, sizeof *n);
    memset(n, 0, sizeof *n);
    n->type = t;
    n->line = ps->line;
    return n;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of a valid UTF-8 sequence starting at p (1..4), or 0 if invalid. */
static int utf8_valid_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    int n;
    unsigned cp;
    if (c < 0x80) return 1;
    else if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (end - p < n) return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return n;
}

static int parse_string_raw(parser *ps, char **out, size_t *outlen) {
    /* ps->p at opening quote */
    const char *q = ps->p + 1;
    /* first pass: find end, bound output size */
    const char *s = q;
    while (s < ps->end && *s != '"') {
        if (*s == '\\') s++;
        s++;
    }
    if (s >= ps->end) return fail(ps, "unterminated string");
    char *o = arena_alloc(ps->doc, (size_t)(s - q) + 1);
    size_t n = 0;
    const char *p = q;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) { ps->p = p; return fail(ps, "control character in string"); }
        if (c == '\\') {
            p++;
            switch (*p) {
            case '"': o[n++] = '"'; p++; break;
            case '\\': o[n++] = '\\'; p++; break;
            case '/': o[n++] = '/'; p++; break;
            case 'b': o[n++] = '\b'; p++; break;
            case 'f': o[n++] = '\f'; p++; break;
            case 'n': o[n++] = '\n'; p++; break;
            case 'r': o[n++] = '\r'; p++; break;
            case 't': o[n++] = '\t'; p++; break;
            case 'u': {
                unsigned cp;
                if (ps->end - p < 5 || hex4(p + 1, &cp)) { ps->p = p; return fail(ps, "bad \\u escape"); }
                p += 5;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (ps->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xDC00 ||
                        lo > 0xDFFF) {
                        ps->p = p;
                        return fail(ps, "lone UTF-16 surrogate in \\u escape");
                    }
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    ps->p = p;
                    return fail(ps, "lone UTF-16 surrogate in \\u escape");
                }
                n += put_utf8(o + n, cp);
                break;
            }
            default: ps->p = p; return fail(ps, "bad escape in string");
            }
        } else if (c < 0x80) {
            o[n++] = (char)c;
            p++;
        } else {
            int l = utf8_valid_len((const unsigned char *)p, (const unsigned char *)s);
            if (!l) { ps->p = p; return fail(ps, "invalid UTF-8 in string"); }
            memcpy(o + n, p, (size_t)l);
            n += (size_t)l;
            p += l;
        }
    }
    o[n] = 0;
    ps->p = s + 1;
    *out = o;
    *outlen = n;
    return 0;
}

static diffu_json *parse_value(parser *ps);

typedef struct { diffu_json **items; char **keys; size_t *klen; size_t n, cap; } kid_vec;

static void kv_push(kid_vec *v, diffu_json *item, char *key, size_t klen) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->items = diffu_xrealloc(v->items, v->cap * sizeof *v->items);
        v->keys = diffu_xrealloc(v->keys, v->cap * sizeof *v->keys);
        v->klen = diffu_xrealloc(v->klen, v->cap * sizeof *v->klen);
    }
    v->items[v->n] = item;
    v->keys[v->n] = key;
    v->klen[v->n] = klen;
    v->n++;
}

static void kv_to_node(parser *ps, diffu_json *node, kid_vec *v, int keyed) {
    node->u.kids.n = v->n;
    node->u.kids.items = arena_alloc(ps->doc, (v->n ? v->n : 1) * sizeof(diffu_json *));
    if (v->n) memcpy(node->u.kids.items, v->items, v->n * sizeof(diffu_json *));
    if (keyed) {
        node->u.kids.keys = arena_alloc(ps->doc, (v->n ? v->n : 1) * sizeof(char *));
        node->u.kids.klen = arena_alloc(ps->doc, (v->n ? v->n : 1) * sizeof(size_t));
        if (v->n) {
            memcpy(node->u.kids.keys, v->keys, v->n * sizeof(char *));
            memcpy(node->u.kids.klen, v->klen, v->n * sizeof(size_t));
        }
    }
    free(v->items);
    free(v->keys);
    free(v->klen);
}

static diffu_json *parse_number(parser *ps) {
    const char *p = ps->p;
    const char *s = p;
    int is_int = 1;
    if (p < ps->end && *p == '-') p++;
    if (p >= ps->end || *p < '0' || *p > '9') { fail(ps, "invalid number"); return NULL; }
    if (*p == '0') p++;
    else while (p < ps->end && *p >= '0' && *p <= '9') p++;
    if (p < ps->end && *p == '.') {
        is_int = 0;
        p++;
        if (p >= ps->end || *p < '0' || *p > '9') { ps->p = p; fail(ps, "invalid number"); return NULL; }
        while (p < ps->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        p++;
        if (p < ps->end && (*p == '+' || *p == '-')) p++;
        if (p >= ps->end || *p < '0' || *p > '9') { ps->p = p; fail(ps, "invalid number"); return NULL; }
        while (p < ps->end && *p >= '0' && *p <= '9') p++;
    }
    char buf[64];
    size_t len = (size_t)(p - s);
    if (len >= sizeof buf) { fail(ps, "number too long"); return NULL; }
    memcpy(buf, s, len);
    buf[len] = 0;
    diffu_json *n = new_node(ps, DJ_NUM);
    n->u.num.d = strtod(buf, NULL);
    if (isinf(n->u.num.d)) { fail(ps, "number out of range"); return NULL; } /* 1e400 must not become inf */
    if (is_int) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == 0) { n->u.num.is_int = 1; n->u.num.i = v; }
    }
    ps->p = p;
    return n;
}

static int match_lit(parser *ps, const char *lit) {
    size_t l = strlen(lit);
    if ((size_t)(ps->end - ps->p) < l || memcmp(ps->p, lit, l) != 0) return 0;
    ps->p += l;
    return 1;
}

static diffu_json *parse_value(parser *ps) {
    skip_ws(ps);
    if (ps->p >= ps->end) { fail(ps, "unexpected end of input"); return NULL; }
    if (++ps->depth > 512) { fail(ps, "nesting deeper than 512"); return NULL; }
    diffu_json *r = NULL;
    char c = *ps->p;
    if (c == '{') {
        r = new_node(ps, DJ_OBJ);
        ps->p++;
        kid_vec v = {0};
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
        } else {
            for (;;) {
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != '"') { fail(ps, "expected a string key"); goto bad_obj; }
                char *key;
                size_t klen;
                if (parse_string_raw(ps, &key, &klen)) goto bad_obj;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') { fail(ps, "expected ':'"); goto bad_obj; }
                ps->p++;
                diffu_json *val = parse_value(ps);
                if (!val) goto bad_obj;
                kv_push(&v, val, key, klen);
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
                if (ps->p < ps->end && *ps->p == '}') { ps->p++; break; }
                fail(ps, "expected ',' or '}'");
                goto bad_obj;
            }
        }
        kv_to_node(ps, r, &v, 1);
        goto done;
    bad_obj:
        free(v.items); free(v.keys); free(v.klen);
        return NULL;
    } else if (c == '[') {
        r = new_node(ps, DJ_ARR);
        ps->p++;
        kid_vec v = {0};
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
        } else {
            for (;;) {
                diffu_json *val = parse_value(ps);
                if (!val) goto bad_arr;
                kv_push(&v, val, NULL, 0);
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
                if (ps->p < ps->end && *ps->p == ']') { ps->p++; break; }
                fail(ps, "expected ',' or ']'");
                goto bad_arr;
            }
        }
        kv_to_node(ps, r, &v, 0);
        goto done;
    bad_arr:
        free(v.items); free(v.keys); free(v.klen);
        return NULL;
    } else if (c == '"') {
        r = new_node(ps, DJ_STR);
        if (parse_string_raw(ps, &r->u.str.s, &r->u.str.len)) return NULL;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        r = parse_number(ps);
        if (!r) return NULL;
    } else if (match_lit(ps, "true")) {
        r = new_node(ps, DJ_BOOL);
        r->u.b = 1;
    } else if (match_lit(ps, "false")) {
        r = new_node(ps, DJ_BOOL);
    } else if (match_lit(ps, "null")) {
        r = new_node(ps, DJ_NULL);
    } else {
        fail(ps, "unexpected character");
        return NULL;
    }
done:
    ps->depth--;
    return r;
}

diffu_json_doc *diffu_json_parse(const char *text, size_t len, diffu_err *err) {
    diffu_json_doc *d = diffu_xcalloc(1, sizeof *d);
    parser ps = {text, text + len, text, 1, text, d, err, 0};
    d->root = parse_value(&ps);
    if (d->root) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            fail(&ps, "trailing characters after the JSON value");
            d->root = NULL;
        }
    }
    if (!d->root) {
        diffu_json_free(d);
        return NULL;
    }
    return d;
}

void diffu_json_free(diffu_json_doc *doc) {
    if (!doc) return;
    arena_block *b = doc->blocks;
    while (b) {
        arena_block *n = b->next;
        free(b);
        b = n;
    }
    free(doc);
}

const diffu_json *diffu_json_root(const diffu_json_doc *doc) { return doc->root; }

diffu_json_doc *diffu_json_parse_file(const char *path, diffu_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        diffu_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = diffu_xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) buf = diffu_xrealloc(buf, cap *= 2);
    }
    int rerr = ferror(f), rerrno = errno;
    fclose(f);
    if (rerr) {
        free(buf);
        diffu_err_set(err, "%s: read error: %s", path, strerror(rerrno));
        return NULL;
    }
    diffu_json_doc *d = diffu_json_parse(buf, n, err);
    free(buf);
    if (!d) diffu_err_prefix(err, "%s: invalid JSON", path);
    return d;
}

const diffu_json *diffu_json_get(const diffu_json *obj, const char *key) {
    if (!obj || obj->type != DJ_OBJ) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->u.kids.n; i++)
        if (obj->u.kids.klen[i] == kl && memcmp(obj->u.kids.keys[i], key, kl) == 0) return obj->u.kids.items[i];
    return NULL;
}

const char *diffu_json_type_name(diffu_json_type t) {
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return names[t];
}

int diffu_json_get_int(const diffu_json *obj, const char *key, int64_t lo, int64_t hi, int64_t *out, diffu_err *err) {
    const diffu_json *v = diffu_json_get(obj, key);
    if (!v) return 1;
    if (v->type != DJ_NUM || !v->u.num.is_int)
        return diffu_err_set(err, "field '%s': expected an integer, got %s", key,
                             v->type == DJ_NUM ? "a fractional number" : diffu_json_type_name(v->type));
    if (v->u.num.i < lo || v->u.num.i > hi)
        return diffu_err_set(err, "field '%s': %lld is out of range [%lld, %lld]", key, (long long)v->u.num.i,
                             (long long)lo, (long long)hi);
    *out = v->u.num.i;
    return 0;
}

int diffu_json_get_num(const diffu_json *obj, const char *key, double *out, diffu_err *err) {
    const diffu_json *v = diffu_json_get(obj, key);
    if (!v) return 1;
    if (v->type != DJ_NUM)
        return diffu_err_set(err, "field '%s': expected a number, got %s", key, diffu_json_type_name(v->type));
    *out = v->u.num.d;
    return 0;
}

int diffu_json_get_bool(const diffu_json *obj, const char *key, int *out, diffu_err *err) {
    const diffu_json *v = diffu_json_get(obj, key);
    if (!v) return 1;
    if (v->type != DJ_BOOL)
        return diffu_err_set(err, "field '%s': expected true or false, got %s", key, diffu_json_type_name(v->type));
    *out = v->u.b;
    return 0;
}

int diffu_json_get_str(const diffu_json *obj, const char *key, const char **out, diffu_err *err) {
    const diffu_json *v = diffu_json_get(obj, key);
    if (!v) return 1;
    if (v->type != DJ_STR)
        return diffu_err_set(err, "field '%s': expected a string, got %s", key, diffu_json_type_name(v->type));
    *out = v->u.str.s;
    return 0;
}

size_t diffu_json_escape(char *buf, size_t cap, const char *s, size_t len) {
    size_t n = 0;
#define PUT(ch) do { if (n + 1 < cap) buf[n] = (ch); n++; } while (0)
    PUT('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': PUT('\\'); PUT('"'); break;
        case '\\': PUT('\\'); PUT('\\'); break;
        case '\n': PUT('\\'); PUT('n'); break;
        case '\r': PUT('\\'); PUT('r'); break;
        case '\t': PUT('\\'); PUT('t'); break;
        case '\b': PUT('\\'); PUT('b'); break;
        case '\f': PUT('\\'); PUT('f'); break;
        default:
            if (c < 0x20) {
                char tmp[8];
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                for (int k = 0; tmp[k]; k++) PUT(tmp[k]);
            } else {
                PUT((char)c);
            }
        }
    }
    PUT('"');
#undef PUT
    if (cap) buf[n < cap ? n : cap - 1] = 0;
    return n;
}
