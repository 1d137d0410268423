/* job_input.c — see job_input.h. */
#include "job_input.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat.h"
#include "genparam.h"
#include "job_util.h"
#include "json.h"

#define RAW_KEEP ((size_t)1 << 20)   /* raw bytes kept per reject */
#define RAW_KEEP_LONG ((size_t)4096) /* ... for a line over the limit */

/* ------------------------------------------------------------ string pool */

typedef struct pool_block {
    struct pool_block *next;
    size_t used, cap;
    char data[];
} pool_block;

struct diffu_jobin {
    char *path;
    diffu_jobin_opts o;
    const char *def_system, *def_prefill; /* pooled copies */
    diffu_jobin_req *reqs;
    int n_reqs, cap_reqs;
    diffu_jobin_reject *rej;
    int n_rej, cap_rej;
    diffu_job_util_map *seen;     /* id -> first line with that id (accepted or not) */
    diffu_job_util_map *accepted; /* id -> request index */
    diffu_jobin_stats st;
    pool_block *pool;
};

static char *pool_dup(diffu_jobin *in, const char *s, size_t n) {
    pool_block *b = in->pool;
    if (!b || b->used + n + 1 > b->cap) {
        size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
        b = diffu_xmalloc(sizeof *b + cap);
        b->used = 0;
        b->cap = cap;
        /* a big string gets its own block, placed after the current one so
         * the current one keeps filling */
        if (in->pool && cap > (1u << 20)) {
            b->next = in->pool->next;
            in->pool->next = b;
        } else {
            b->next = in->pool;
            in->pool = b;
        }
    }
    char *r = b->data + b->used;
    if (n) memcpy(r, s, n);
    r[n] = 0;
    b->used += n + 1;
    return r;
}

/* ------------------------------------------------------------ rejects */

typedef struct {
    diffu_jobin *in;
    int line;
    const char *raw;
    size_t raw_len, raw_total;
    const char *id; /* once known */
} line_ctx;

__attribute__((format(printf, 3, 4))) static void reject(line_ctx *c, const char *field, const char *fmt, ...) {
    diffu_jobin *in = c->in;
    if (in->n_rej == in->cap_rej) {
        in->cap_rej = in->cap_rej ? 2 * in->cap_rej : 16;
        in->rej = diffu_xrealloc(in->rej, (size_t)in->cap_rej * sizeof *in->rej);
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    diffu_jobin_reject *r = &in->rej[in->n_rej++];
    r->line = c->line;
    r->field = field ? pool_dup(in, field, strlen(field)) : NULL;
    r->id = c->id ? pool_dup(in, c->id, strlen(c->id)) : NULL;
    r->reason = pool_dup(in, msg, strlen(msg));
    size_t keep = c->raw_len < RAW_KEEP ? c->raw_len : RAW_KEEP;
    r->raw = pool_dup(in, c->raw ? c->raw : "", keep);
    r->raw_len = keep;
    r->raw_total = c->raw_total;
}

/* ------------------------------------------------------------ fields */

static const char *const ID_FIELDS[] = {"id", "task_id"};
/* the per-request overrides: every row of genparam.h's table, and "prefill" */
static const char *const META[] = {"entry_point", "test", "canonical_solution", "text", "code", "test_list",
                                   "test_setup_code", "challenge_test_list", "test_imports", "source_file",
                                   "contract", "base_input", "plus_input", "atol", "declaration", "example_test",
                                   "metadata"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int in_list(const char *k, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, list[i])) return 1;
    return 0;
}

static int known_field(const char *k) {
    return in_list(k, ID_FIELDS, COUNT(ID_FIELDS)) || !strcmp(k, "prompt") || !strcmp(k, "messages") ||
           diffu_genparam_find(k) || !strcmp(k, "prefill") || in_list(k, META, COUNT(META));
}

/* the closest known field within edit distance 2, or NULL */
static const char *suggest(const char *k) {
    static const char *const extra[] = {"id", "task_id", "prompt", "messages"};
    const char *cand[COUNT(extra) + 32 + COUNT(META)];
    size_t n = 0;
    for (size_t i = 0; i < COUNT(extra); i++) cand[n++] = extra[i];
    for (int i = 0; i < diffu_genparam_count() && i < 31; i++) cand[n++] = diffu_genparam_at(i)->name;
    cand[n++] = "prefill";
    for (size_t i = 0; i < COUNT(META); i++) cand[n++] = META[i];
    const char *best = NULL;
    int bd = 3;
    for (size_t i = 0; i < n; i++) {
        int d = diffu_job_util_edit_distance(k, cand[i]);
        if (d < bd) bd = d, best = cand[i];
    }
    /* also case-insensitive equality ("Temperature") */
    if (!best)
        for (size_t i = 0; i < n; i++)
            if (!strcasecmp(k, cand[i])) return cand[i];
    return best;
}

static const char *type_desc(const diffu_json *v) {
    if (v->type == DJ_NUM && !v->u.num.is_int) return "a fractional number";
    if (v->type == DJ_NUM) return "an integer";
    static const char *names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    return names[v->type];
}

/* present and not null */
static const diffu_json *field(const diffu_json *obj, const char *k) {
    const diffu_json *v = diffu_json_get(obj, k);
    return v && v->type != DJ_NULL ? v : NULL;
}

/* 0 ok (or absent: *set 0), -1 rejected */
/* lo_open: the lower bound is excluded */
static int get_num(line_ctx *c, const diffu_json *obj, const char *k, double lo, int lo_open, double hi, double *out,
                   int *set) {
    const diffu_json *v = field(obj, k);
    *set = 0;
    if (!v) return 0;
    if (v->type != DJ_NUM) {
        reject(c, k, "field '%s': expected a number, got %s", k, type_desc(v));
        return -1;
    }
    double d = v->u.num.d;
    if (!(lo_open ? d > lo : d >= lo) || !(d <= hi)) {
        reject(c, k, "field '%s': %g is out of range %s%g, %g]", k, d, lo_open ? "(" : "[", lo, hi);
        return -1;
    }
    *out = d;
    *set = 1;
    return 0;
}

/* A row of the generation parameters' table (genparam.h) from its JSON key, checked by the row's range and
 * stored into p; *iv gets an integer row's value (the "n" row has no field in p). */
static int get_param(line_ctx *c, const diffu_json *obj, const diffu_genparam *g, diffu_denoise_params *p,
                     long long *iv, int *set) {
    char rg[64];
    const char *k = g->name;
    if (g->type == DIFFU_GP_NUM) {
        double d;
        if (get_num(c, obj, k, g->lo, g->lo_open, g->hi, &d, set)) return -1;
        if (*set) diffu_genparam_set_num(g, p, d);
        return 0;
    }
    const diffu_json *v = field(obj, k);
    *set = 0;
    if (!v) return 0;
    if (g->type == DIFFU_GP_FLAG) {
        if (v->type != DJ_BOOL) {
            reject(c, k, "field '%s': expected a boolean, got %s", k, type_desc(v));
            return -1;
        }
        *iv = v->u.b;
    } else if (diffu_genparam_is_enum(g)) {
        int a = v->type == DJ_STR ? diffu_genparam_enum_parse(g, v->u.str.s) : 0;
        if (v->type != DJ_STR) {
            reject(c, k, "field '%s': expected a string, got %s", k, type_desc(v));
            return -1;
        }
        if (a < 0 || strlen(v->u.str.s) != v->u.str.len) {
            char ex[96];
            diffu_job_util_excerpt(ex, sizeof ex, v->u.str.s, v->u.str.len, 40);
            reject(c, k, "field '%s': '%s' is not %s", k, ex, diffu_genparam_enum_choices(g));
            return -1;
        }
        *iv = a;
    } else {
        if (v->type != DJ_NUM || !v->u.num.is_int) {
            reject(c, k, "field '%s': expected an integer, got %s", k, type_desc(v));
            return -1;
        }
        if (!diffu_genparam_int_ok(g, (long long)v->u.num.i)) {
            reject(c, k, "field '%s': %lld is out of range %s", k, (long long)v->u.num.i,
                   diffu_genparam_range(g, rg, sizeof rg));
            return -1;
        }
        *iv = v->u.num.i;
    }
    *set = 1;
    diffu_genparam_set_int(g, p, *iv);
    return 0;
}

/* a string field for text the model reads: valid (the parser checked UTF-8), no NUL */
static int text_ok(line_ctx *c, const char *fname, const diffu_json *v, int allow_empty) {
    if (v->type != DJ_STR) {
        reject(c, fname, "field '%s': expected a string, got %s", fname, type_desc(v));
        return -1;
    }
    if (!allow_empty && v->u.str.len == 0) {
        reject(c, fname, "field '%s': empty string", fname);
        return -1;
    }
    if (memchr(v->u.str.s, 0, v->u.str.len)) {
        reject(c, fname, "field '%s': contains a NUL character (\\u0000)", fname);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ one line */

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return 0;
    return 1;
}

static void accept(diffu_jobin *in, const diffu_jobin_req *r) {
    if (in->n_reqs == in->cap_reqs) {
        in->cap_reqs = in->cap_reqs ? 2 * in->cap_reqs : 64;
        in->reqs = diffu_xrealloc(in->reqs, (size_t)in->cap_reqs * sizeof *in->reqs);
    }
    diffu_jobin_req *d = &in->reqs[in->n_reqs];
    *d = *r;
    d->index = in->n_reqs++;
    diffu_job_util_map_put(in->accepted, d->id, d->id_len, d->index);
    in->st.samples += d->n;
}

/* The id first, so that every later reject can name it: r->id (idbuf holds an integer id's digits). */
static int take_id(line_ctx *c, const diffu_json *o, diffu_jobin_req *r, char *idbuf, size_t idcap) {
    diffu_jobin *in = c->in;
    const diffu_json *idv = diffu_json_get(o, "id"), *tid = diffu_json_get(o, "task_id");
    if (idv && tid) {
        reject(c, "id", "both 'id' and 'task_id': give one");
        return -1;
    }
    if (!idv && !tid) {
        reject(c, "id", "missing 'id' (or 'task_id')");
        return -1;
    }
    r->id_field = idv ? "id" : "task_id";
    if (!idv) idv = tid;
    if (idv->type == DJ_STR) {
        if (idv->u.str.len == 0) {
            reject(c, r->id_field, "field '%s': empty string", r->id_field);
            return -1;
        }
        if (idv->u.str.len > DIFFU_JOBIN_MAX_ID) {
            reject(c, r->id_field, "field '%s': %zu bytes, longer than %d", r->id_field, idv->u.str.len,
                   DIFFU_JOBIN_MAX_ID);
            return -1;
        }
        for (size_t i = 0; i < idv->u.str.len; i++)
            if ((unsigned char)idv->u.str.s[i] < 0x20 || idv->u.str.s[i] == 0x7f) {
                reject(c, r->id_field, "field '%s': contains a control character (byte 0x%02x)", r->id_field,
                       (unsigned char)idv->u.str.s[i]);
                return -1;
            }
        r->id = idv->u.str.s;
        r->id_len = idv->u.str.len;
    } else if (idv->type == DJ_NUM && idv->u.num.is_int) {
        snprintf(idbuf, idcap, "%lld", (long long)idv->u.num.i);
        r->id = idbuf;
        r->id_len = strlen(idbuf);
        r->id_is_int = 1;
    } else {
        reject(c, r->id_field, "field '%s': expected a string or an integer, got %s", r->id_field, type_desc(idv));
        return -1;
    }
    c->id = r->id;
    {
        int64_t first;
        if (diffu_job_util_map_get(in->seen, r->id, r->id_len, &first)) {
            reject(c, r->id_field, "duplicate id '%s' (first on line %d)", r->id, (int)first);
            return -1;
        }
        diffu_job_util_map_put(in->seen, r->id, r->id_len, c->line);
    }
    return 0;
}

/* Every key known, each once. */
static int check_keys(line_ctx *c, const diffu_json *o) {
    for (size_t i = 0; i < o->u.kids.n; i++) {
        const char *k = o->u.kids.keys[i];
        size_t kl = o->u.kids.klen[i];
        if (strlen(k) != kl || !known_field(k)) {
            char ex[96];
            diffu_job_util_excerpt(ex, sizeof ex, k, kl, 40);
            const char *sg = strlen(k) == kl ? suggest(k) : NULL;
            if (sg) reject(c, ex, "unknown field '%s' (did you mean '%s'?)", ex, sg);
            else reject(c, ex, "unknown field '%s'", ex);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (o->u.kids.klen[j] == kl && !memcmp(o->u.kids.keys[j], k, kl)) {
                reject(c, k, "field '%s' appears twice", k);
                return -1;
            }
    }
    return 0;
}

/* A chat request's 'messages': one turn, [system] user [assistant]; *assistant: the final assistant
 * message (the prefill) or NULL. */
static int take_messages(line_ctx *c, const diffu_json *mv, diffu_jobin_req *r, const char **assistant) {
    char roles[128] = "";
    int n_user = 0;
    const char *sys = NULL;
    for (size_t i = 0; i < mv->u.kids.n; i++) {
        const diffu_json *m = mv->u.kids.items[i];
        char fn[48];
        snprintf(fn, sizeof fn, "messages[%zu]", i);
        if (m->type != DJ_OBJ) {
            reject(c, fn, "%s: expected an object {\"role\", \"content\"}, got %s", fn, type_desc(m));
            return -1;
        }
        for (size_t k = 0; k < m->u.kids.n; k++)
            if (strcmp(m->u.kids.keys[k], "role") && strcmp(m->u.kids.keys[k], "content")) {
                char ex[96];
                diffu_job_util_excerpt(ex, sizeof ex, m->u.kids.keys[k], m->u.kids.klen[k], 40);
                reject(c, fn, "%s: unknown field '%s' (a message has only role and content)", fn, ex);
                return -1;
            }
        const diffu_json *role = diffu_json_get(m, "role"), *content = diffu_json_get(m, "content");
        char rf[64], cf[64];
        snprintf(rf, sizeof rf, "%s.role", fn);
        snprintf(cf, sizeof cf, "%s.content", fn);
        if (!role) {
            reject(c, rf, "%s: missing", rf);
            return -1;
        }
        if (role->type != DJ_STR) {
            reject(c, rf, "%s: expected a string, got %s", rf, type_desc(role));
            return -1;
        }
        int is_sys = !strcmp(role->u.str.s, "system"), is_user = !strcmp(role->u.str.s, "user"),
            is_asst = !strcmp(role->u.str.s, "assistant");
        if (!is_sys && !is_user && !is_asst) {
            char ex[96];
            diffu_job_util_excerpt(ex, sizeof ex, role->u.str.s, role->u.str.len, 40);
            reject(c, rf, "%s: '%s' is not system, user or assistant", rf, ex);
            return -1;
        }
        if (!content) {
            reject(c, cf, "%s: missing", cf);
            return -1;
        }
        if (content->type != DJ_STR) {
            reject(c, cf, "%s: expected a string, got %s", cf, type_desc(content));
            return -1;
        }
        if (memchr(content->u.str.s, 0, content->u.str.len)) {
            reject(c, cf, "%s: contains a NUL character (\\u0000)", cf);
            return -1;
        }
        if (is_user && content->u.str.len == 0) {
            reject(c, cf, "%s: empty string", cf);
            return -1;
        }
        if (strlen(roles) < sizeof roles - 16) {
            if (i) strcat(roles, ", ");
            strcat(roles, role->u.str.s);
        }
        /* one turn: [system] user [assistant] */
        int ok = is_sys ? i == 0 : is_user ? n_user == 0 : (n_user == 1 && i == mv->u.kids.n - 1);
        if (is_user) n_user++;
        if (!ok) {
            for (size_t k = i + 1; k < mv->u.kids.n && strlen(roles) < sizeof roles - 16; k++) {
                const diffu_json *rr = diffu_json_get(mv->u.kids.items[k], "role");
                strcat(roles, ", ");
                strcat(roles, rr && rr->type == DJ_STR && rr->u.str.len < 12 ? rr->u.str.s : "?");
            }
            reject(c, "messages",
                   "field 'messages': roles [%s]; one turn is supported: an optional system message, one "
                   "user message, an optional final assistant message (the prefill)",
                   roles);
            return -1;
        }
        if (is_sys) sys = content->u.str.s;
        if (is_user) {
            r->prompt = content->u.str.s;
            r->prompt_len = content->u.str.len;
        }
        if (is_asst) *assistant = content->u.str.s;
    }
    if (!n_user) {
        reject(c, "messages", "field 'messages': roles [%s]; no user message", roles);
        return -1;
    }
    r->system = sys ? sys : c->in->def_system;
    return 0;
}

/* The prompt: 'prompt' (raw completion) or 'messages' (chat). */
static int take_prompt(line_ctx *c, const diffu_json *o, diffu_jobin_req *r, const char **assistant) {
    const diffu_json *pv = diffu_json_get(o, "prompt"), *mv = diffu_json_get(o, "messages");
    *assistant = NULL;
    if (pv && mv) {
        reject(c, "prompt", "both 'prompt' and 'messages': give one");
        return -1;
    }
    if (!pv && !mv) {
        reject(c, "prompt", "missing 'prompt' (raw completion) or 'messages' (chat)");
        return -1;
    }
    if (pv) {
        if (text_ok(c, "prompt", pv, 0)) return -1;
        r->kind = DIFFU_JOBIN_PROMPT;
        r->prompt = pv->u.str.s;
        r->prompt_len = pv->u.str.len;
    } else {
        r->kind = DIFFU_JOBIN_CHAT;
        if (mv->type != DJ_ARR) {
            reject(c, "messages", "field 'messages': expected an array of {\"role\", \"content\"} objects, got %s",
                   type_desc(mv));
            return -1;
        }
        if (mv->u.kids.n == 0) {
            reject(c, "messages", "field 'messages': empty array (needs a user message)");
            return -1;
        }
        return take_messages(c, mv, r, assistant);
    }
    return 0;
}

/* The per-request overrides: every row of the generation parameters' table (genparam.h, the command line's
 * rules) into *p, 'n' into r->n, and the chat prefill. */
static int take_overrides(line_ctx *c, const diffu_json *o, diffu_jobin_req *r, const char *assistant,
                          diffu_denoise_params *p) {
    diffu_jobin *in = c->in;
    *p = in->o.defaults;
    long long iv = 0;
    int set, steps_set;
    r->n = in->o.n;
    steps_set = 0;
    for (int gi = 0; gi < diffu_genparam_count(); gi++) {
        const diffu_genparam *g = diffu_genparam_at(gi);
        if (get_param(c, o, g, p, &iv, &set)) return -1;
        if (set && g->field == DIFFU_GP_NO_FIELD) r->n = (int)iv; /* "n" */
        if (set && !strcmp(g->name, "steps")) steps_set = 1;
    }
    if (!steps_set && in->o.defaults.steps <= 0) p->steps = p->max_new_tokens;
    {
        const diffu_json *fv = field(o, "prefill");
        if (fv && r->kind == DIFFU_JOBIN_PROMPT) {
            reject(c, "prefill", "field 'prefill': only for chat requests ('messages'); append it to 'prompt'");
            return -1;
        }
        if (r->kind == DIFFU_JOBIN_CHAT) {
            const diffu_json *raw_fv = diffu_json_get(o, "prefill");
            if (raw_fv && assistant) {
                reject(c, "prefill", "both 'prefill' and a final assistant message: give one");
                return -1;
            }
            r->prefill = in->def_prefill;
            if (assistant) r->prefill = assistant;
            if (raw_fv && raw_fv->type == DJ_NULL) r->prefill = NULL;
            if (fv) {
                if (fv->type == DJ_BOOL) {
                    r->prefill = fv->u.b ? DIFFU_CHAT_EVAL_PREFILL : NULL;
                } else if (fv->type == DJ_STR) {
                    if (text_ok(c, "prefill", fv, 1)) return -1;
                    r->prefill = fv->u.str.len ? fv->u.str.s : NULL;
                } else {
                    reject(c, "prefill", "field 'prefill': expected a string or a boolean, got %s", type_desc(fv));
                    return -1;
                }
            }
        }
    }
    return 0;
}

static void process_line(diffu_jobin *in, char *s, size_t len, size_t total, int lineno, int too_long) {
    line_ctx c = {in, lineno, s, len, total, NULL};
    if (too_long) {
        reject(&c, NULL, "line is %zu bytes, longer than the limit of %zu bytes", total, in->o.max_line);
        return;
    }
    if (lineno == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
        in->st.bom = 1;
        s += 3;
        len -= 3;
        c.raw = s;
        c.raw_len = c.raw_total = len;
    }
    if (is_blank(s, len)) {
        in->st.blank++;
        return;
    }
    size_t bad = diffu_job_util_utf8_check(s, len);
    if (bad < len) {
        reject(&c, NULL, "not valid UTF-8: byte 0x%02x at column %zu", (unsigned char)s[bad], bad + 1);
        return;
    }
    if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
        reject(&c, NULL, "a byte order mark (U+FEFF) starts this line; only the first line of a file may have one");
        return;
    }
    diffu_err e;
    diffu_json_doc *doc = diffu_json_parse(s, len, &e);
    if (!doc) {
        const char *m = e.msg;
        if (!strncmp(m, "line 1 col ", 11)) {
            reject(&c, NULL, "invalid JSON at column %s", m + 11);
        } else {
            reject(&c, NULL, "invalid JSON: %s", m);
        }
        return;
    }
    const diffu_json *o = diffu_json_root(doc);
    diffu_jobin_req r;
    memset(&r, 0, sizeof r);
    char idbuf[32];
    const char *assistant = NULL;
    diffu_denoise_params p;
    if (o->type != DJ_OBJ) {
        reject(&c, NULL, "expected a JSON object {\"id\": ..., \"prompt\": ...}, got %s", type_desc(o));
        goto done;
    }
    if (take_id(&c, o, &r, idbuf, sizeof idbuf) || check_keys(&c, o) || take_prompt(&c, o, &r, &assistant) ||
        take_overrides(&c, o, &r, assistant, &p))
        goto done;
    if (diffu_denoise_params_check(&p, in->o.vocab, &e)) {
        /* the message starts with the parameter's name ("block_length: ...") */
        char fname[32] = "";
        size_t k = strcspn(e.msg, ": ");
        if (k < sizeof fname) {
            memcpy(fname, e.msg, k);
            fname[k] = 0;
        }
        reject(&c, diffu_genparam_find(fname) ? fname : NULL, "%s", e.msg);
        goto done;
    }
    r.params = p;
    r.line = lineno;
    r.rng_key = diffu_job_util_fnv1a(r.id, r.id_len);
    r.prompt_tokens = -1;
    if (in->o.count_tokens) {
        const char *pf = r.kind == DIFFU_JOBIN_CHAT ? "messages" : "prompt";
        int t = in->o.count_tokens(in->o.count_user, &r, &e);
        if (t < 0) {
            reject(&c, pf, "%s: cannot count its tokens: %s", pf, e.msg);
            goto done;
        }
        r.prompt_tokens = t;
        if (in->o.max_context > 0 && (long)t + p.max_new_tokens > in->o.max_context) {
            reject(&c, pf, "%s: too long for the model's context: %d prompt tokens + max_new_tokens %d = %ld > %d",
                   pf, t, p.max_new_tokens, (long)t + p.max_new_tokens, in->o.max_context);
            goto done;
        }
    }
    /* ---- metadata */
    {
        diffu_text meta = {0};
        for (size_t i = 0; i < o->u.kids.n; i++)
            if (in_list(o->u.kids.keys[i], META, COUNT(META))) {
                diffu_text_append(&meta, meta.len ? "," : "{", 1);
                diffu_job_util_put_str(&meta, o->u.kids.keys[i], o->u.kids.klen[i]);
                diffu_text_append(&meta, ":", 1);
                diffu_job_util_put_json(&meta, o->u.kids.items[i]);
            }
        if (meta.len) {
            diffu_text_append(&meta, "}", 1);
            r.meta = pool_dup(in, meta.data, meta.len);
            r.meta_len = meta.len;
        }
        diffu_text_free(&meta);
    }
    /* ---- keep: copy the strings out of the line's document */
    r.id = pool_dup(in, r.id, r.id_len);
    r.prompt = pool_dup(in, r.prompt, r.prompt_len);
    if (r.system && r.system != in->def_system) r.system = pool_dup(in, r.system, strlen(r.system));
    if (r.prefill && r.prefill != in->def_prefill && r.prefill != (const char *)DIFFU_CHAT_EVAL_PREFILL)
        r.prefill = pool_dup(in, r.prefill, strlen(r.prefill));
    accept(in, &r);
done:
    diffu_json_free(doc);
}

/* ------------------------------------------------------------ open */

void diffu_jobin_opts_default(diffu_jobin_opts *o) {
    memset(o, 0, sizeof *o);
    diffu_denoise_params_default(&o->defaults);
    o->defaults.max_new_tokens = 256;
    o->defaults.steps = 0;
    o->n = 1;
}

void diffu_jobin_free(diffu_jobin **inp) {
    if (!inp || !*inp) return;
    diffu_jobin *in = *inp;
    free(in->path);
    free(in->reqs);
    free(in->rej);
    diffu_job_util_map_free(&in->seen);
    diffu_job_util_map_free(&in->accepted);
    pool_block *b = in->pool;
    while (b) {
        pool_block *nx = b->next;
        free(b);
        b = nx;
    }
    free(in);
    *inp = NULL;
}

/* The input's descriptor: refuses a directory, an empty file and a .gz name on other bytes; *gz: gzip data
 * (a pipe named .gz is trusted). -1 with err. */
static int open_input(const char *path, struct stat *stp, int *gzp, diffu_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        diffu_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, stp) != 0 || S_ISDIR(stp->st_mode)) {
        diffu_err_set(err, "%s: %s", path, S_ISDIR(stp->st_mode) ? "is a directory" : strerror(errno));
        close(fd);
        return -1;
    }
    int gz = 0;
    if (S_ISREG(stp->st_mode)) {
        if (stp->st_size == 0) {
            diffu_err_set(err, "%s: empty file: no requests", path);
            close(fd);
            return -1;
        }
        gz = diffu_job_util_sniff_gzip(fd, NULL);
        if (gz < 0) {
            diffu_err_set(err, "%s: read error: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (!gz && diffu_job_util_is_gz_name(path)) {
            unsigned char head[16];
            ssize_t k = pread(fd, head, sizeof head, 0);
            char ex[80];
            diffu_job_util_excerpt(ex, sizeof ex, (const char *)head, k > 0 ? (size_t)k : 0, 12);
            diffu_err_set(err, "%s: named .gz but not gzip data (it starts with \"%s\", not the gzip magic 1f 8b)",
                          path, ex);
            close(fd);
            return -1;
        }
    } else if (diffu_job_util_is_gz_name(path)) {
        gz = 1; /* a pipe named .gz: trust the name */
    }
    *gzp = gz;
    return fd;
}

/* gzip in a regular file: a first pass checks every member (CRC and length) so that nothing from a CORRUPT
 * member is used: its inflated bytes may be wrong anywhere. (A truncated member is different: what inflates
 * before the end is exact, so those lines are kept.) *bad_kind / *bad_start / *bad_err: the first bad member
 * (kind 0: none); then rewinds. -1 with err when it cannot. */
static int scan_members(diffu_jobin *in, int fd, char *chunk, size_t CH, int *bad_kind, uint64_t *bad_start,
                        diffu_err *bad_err, diffu_err *err) {
    diffu_job_util_reader *chk = diffu_job_util_reader_new(fd, 1, in->path);
    long n;
    while ((n = diffu_job_util_reader_read(chk, chunk, CH, bad_err)) > 0 || (n == 0 && diffu_job_util_reader_member_ended(chk))) {
    }
    if (n < 0) {
        *bad_kind = diffu_job_util_reader_fail_kind(chk);
        *bad_start = diffu_job_util_reader_member_start(chk);
    }
    diffu_job_util_reader_free(&chk);
    if (lseek(fd, 0, SEEK_SET) != 0) {
        diffu_err_set(err, "%s: cannot seek: %s", in->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Every line of the input through process_line: CRLF, over-long lines (a prefix kept for the rejects),
 * a last line without a newline, and a damaged stream (a truncated or corrupt gzip member from bad_kind /
 * bad_start of scan_members) rejected on the line where it starts. */
static void read_lines(diffu_jobin *in, diffu_job_util_reader *rd, char *chunk, size_t CH, int bad_kind,
                       uint64_t bad_start, const diffu_err *bad_err) {
    diffu_text cur = {0};
    size_t total = 0; /* bytes of the current line so far (all of them, kept or not) */
    int too_long = 0, lineno = 1, damaged = 0;
    diffu_err rerr;
    for (;;) {
        long n = diffu_job_util_reader_read(rd, chunk, CH, &rerr);
        if (n < 0) {
            damaged = diffu_job_util_reader_fail_kind(rd) == 2 ? 2 : 1;
            break;
        }
        if (n == 0 && !diffu_job_util_reader_member_ended(rd)) break; /* end of file */
        if (bad_kind == 2 && n > 0 && diffu_job_util_reader_data_member(rd) >= bad_start) {
            damaged = 2; /* these bytes come from the corrupt member */
            rerr = *bad_err;
            break;
        }
        char *p = chunk, *end = chunk + n;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t seg = (size_t)((nl ? nl : end) - p);
            if (!too_long) {
                if (total + seg > in->o.max_line) {
                    too_long = 1; /* keep only a prefix for the rejects file */
                    size_t room = cur.len < RAW_KEEP_LONG ? RAW_KEEP_LONG - cur.len : 0;
                    diffu_text_append(&cur, p, seg < room ? seg : room);
                    if (cur.len > RAW_KEEP_LONG) cur.len = RAW_KEEP_LONG;
                } else {
                    diffu_text_append(&cur, p, seg);
                }
            }
            total += seg;
            if (!nl) break;
            /* a complete line */
            size_t len = cur.len;
            if (!too_long && len && cur.data[len - 1] == '\r') {
                len--;
                in->st.crlf++;
            }
            in->st.lines++;
            process_line(in, cur.data ? cur.data : (char *)"", len, too_long ? total : len, lineno, too_long);
            lineno++;
            cur.len = 0;
            total = 0;
            too_long = 0;
            p = nl + 1;
        }
    }
    if (damaged) { /* the reader names the file; the reject's "FILE:LINE:" already does */
        size_t pl = strlen(in->path);
        if (!strncmp(rerr.msg, in->path, pl) && !strncmp(rerr.msg + pl, ": ", 2))
            memmove(rerr.msg, rerr.msg + pl + 2, strlen(rerr.msg + pl + 2) + 1);
    }
    if (damaged == 2) {
        line_ctx c = {in, lineno, cur.data, cur.len, total, NULL};
        reject(&c, NULL, "%s; nothing from there on is used (lines from %d)", rerr.msg, lineno);
        if (total) in->st.lines++;
    } else if (damaged) {
        line_ctx c = {in, lineno, cur.data, cur.len, total, NULL};
        if (total)
            reject(&c, NULL, "%s; line %d is cut off there and any lines after it are lost", rerr.msg, lineno);
        else
            reject(&c, NULL, "%s; any lines after line %d are lost", rerr.msg, lineno - 1);
        if (total) in->st.lines++;
    } else if (total) { /* a last line without a newline */
        size_t len = cur.len;
        if (!too_long && len && cur.data[len - 1] == '\r') len--;
        in->st.lines++;
        process_line(in, cur.data, len, too_long ? total : len, lineno, too_long);
    }
    diffu_text_free(&cur);
}

diffu_jobin *diffu_jobin_open(const char *path, const diffu_jobin_opts *o, diffu_err *err) {
    if (o->n < 1 || o->n > DIFFU_JOBIN_MAX_N) {
        diffu_err_set(err, "%s: default n %d is outside [1, %d]", path, o->n, DIFFU_JOBIN_MAX_N);
        return NULL;
    }
    {
        diffu_denoise_params p = o->defaults;
        if (p.steps <= 0) p.steps = p.max_new_tokens;
        if (diffu_denoise_params_check(&p, o->vocab, err)) {
            diffu_err_prefix(err, "default parameters");
            return NULL;
        }
    }
    struct stat st;
    int gz;
    int fd = open_input(path, &st, &gz, err);
    if (fd < 0) return NULL;
    diffu_jobin *in = diffu_xcalloc(1, sizeof *in);
    in->path = diffu_xstrdup(path);
    in->o = *o;
    if (!in->o.max_line) in->o.max_line = DIFFU_JOBIN_MAX_LINE;
    in->seen = diffu_job_util_map_new();
    in->accepted = diffu_job_util_map_new();
    in->st.gz = gz;
    in->def_system = pool_dup(in, o->system ? o->system : DIFFU_CHAT_DEFAULT_SYSTEM,
                              strlen(o->system ? o->system : DIFFU_CHAT_DEFAULT_SYSTEM));
    in->def_prefill = o->prefill ? pool_dup(in, o->prefill, strlen(o->prefill)) : NULL;
    in->o.system = in->def_system;
    in->o.prefill = in->def_prefill;

    const size_t CH = 1u << 16;
    char *chunk = diffu_xmalloc(CH);
    int bad_kind = 0;
    uint64_t bad_start = 0;
    diffu_err bad_err;
    if (gz && S_ISREG(st.st_mode) && scan_members(in, fd, chunk, CH, &bad_kind, &bad_start, &bad_err, err)) {
        free(chunk);
        close(fd);
        diffu_jobin_free(&in);
        return NULL;
    }
    diffu_job_util_reader *rd = diffu_job_util_reader_new(fd, gz, in->path);
    read_lines(in, rd, chunk, CH, bad_kind, bad_start, &bad_err);
    free(chunk);
    diffu_job_util_reader_free(&rd);
    close(fd);
    if (in->n_reqs == 0 && in->n_rej == 0) {
        if (in->st.lines == 0) diffu_err_set(err, "%s: empty file: no requests", path);
        else diffu_err_set(err, "%s: no requests: %d blank line%s only", path, in->st.lines, in->st.lines > 1 ? "s" : "");
        diffu_jobin_free(&in);
        return NULL;
    }
    return in;
}

/* ------------------------------------------------------------ getters */

const char *diffu_jobin_path(const diffu_jobin *in) { return in->path; }
int diffu_jobin_count(const diffu_jobin *in) { return in->n_reqs; }
const diffu_jobin_req *diffu_jobin_get(const diffu_jobin *in, int i) {
    DIFFU_ASSERT(i >= 0 && i < in->n_reqs);
    return &in->reqs[i];
}
const diffu_jobin_req *diffu_jobin_find(const diffu_jobin *in, const char *id, size_t id_len) {
    int64_t k;
    return diffu_job_util_map_get(in->accepted, id, id_len, &k) ? &in->reqs[k] : NULL;
}
const diffu_jobin_stats *diffu_jobin_get_stats(const diffu_jobin *in) { return &in->st; }
int diffu_jobin_n_rejects(const diffu_jobin *in) { return in->n_rej; }
const diffu_jobin_reject *diffu_jobin_get_reject(const diffu_jobin *in, int i) {
    DIFFU_ASSERT(i >= 0 && i < in->n_rej);
    return &in->rej[i];
}

int diffu_jobin_format_reject(const diffu_jobin *in, int i, char *buf, size_t cap) {
    const diffu_jobin_reject *r = diffu_jobin_get_reject(in, i);
    return snprintf(buf, cap, "%s:%d: %s", in->path, r->line, r->reason);
}

void diffu_jobin_list_rejects(const diffu_jobin *in, FILE *f, long max, const char *more_in) {
    char line[2048];
    for (int i = 0; i < in->n_rej && i < max; i++) {
        diffu_jobin_format_reject(in, i, line, sizeof line);
        fprintf(f, "%s\n", line);
    }
    if (in->n_rej > max) fprintf(f, "... and %ld more%s%s\n", in->n_rej - max, more_in ? " in " : "", more_in ? more_in : "");
}

int diffu_jobin_write_rejects(const diffu_jobin *in, const char *path, diffu_err *err) {
    if (in->n_rej == 0) {
        struct stat st; /* (unlink reports EROFS on a read-only filesystem even when there is nothing to remove) */
        if (lstat(path, &st) == 0 && unlink(path) != 0 && errno != ENOENT)
            return diffu_err_set(err, "%s: cannot remove the stale rejects file: %s", path, strerror(errno));
        return 0;
    }
    diffu_text t = {0};
    for (int i = 0; i < in->n_rej; i++) {
        const diffu_jobin_reject *r = &in->rej[i];
        diffu_job_util_put(&t, "{");
        diffu_job_util_put_key(&t, "file", 1);
        diffu_job_util_put_str_lossy(&t, in->path, strlen(in->path));
        diffu_job_util_put_key(&t, "line", 0);
        diffu_job_util_put_int(&t, r->line);
        diffu_job_util_put_key(&t, "field", 0);
        if (r->field) diffu_job_util_put_str_lossy(&t, r->field, strlen(r->field));
        else diffu_job_util_put(&t, "null");
        diffu_job_util_put_key(&t, "id", 0);
        if (r->id) diffu_job_util_put_str(&t, r->id, strlen(r->id));
        else diffu_job_util_put(&t, "null");
        diffu_job_util_put_key(&t, "reason", 0);
        diffu_job_util_put_str_lossy(&t, r->reason, strlen(r->reason));
        if (diffu_job_util_utf8_check(r->raw, r->raw_len) == r->raw_len) {
            diffu_job_util_put_key(&t, "raw", 0);
            diffu_job_util_put_str(&t, r->raw, r->raw_len);
        } else {
            diffu_job_util_put_key(&t, "raw_base64", 0);
            diffu_job_util_put_base64(&t, (const unsigned char *)r->raw, r->raw_len);
        }
        if (r->raw_len < r->raw_total) {
            diffu_job_util_put_key(&t, "raw_truncated", 0);
            diffu_job_util_put(&t, "true");
            diffu_job_util_put_key(&t, "raw_bytes", 0);
            diffu_job_util_put_uint(&t, r->raw_total);
        }
        diffu_job_util_put(&t, "}\n");
    }
    size_t pl = strlen(path);
    char *tmp = diffu_xmalloc(pl + 32);
    snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        diffu_err_set(err, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    size_t off = 0;
    while (off < t.len) {
        ssize_t w = write(fd, t.data + off, t.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            diffu_err_set(err, "%s: write failed: %s", tmp, w < 0 ? strerror(errno) : "no progress");
            close(fd);
            unlink(tmp);
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        diffu_err_set(err, "%s: write failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        diffu_err_set(err, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    diffu_text_free(&t);
    return rc;
}

/* ------------------------------------------------------------ descriptions */

void diffu_jobin_put_params(const diffu_denoise_params *p, diffu_text *t) { diffu_genparam_put_json(p, t); }

void diffu_jobin_params_json(const diffu_jobin_req *r, diffu_text *t) {
    diffu_job_util_put(t, "{");
    diffu_jobin_put_params(&r->params, t);
    diffu_job_util_put_key(t, "n", 0);
    diffu_job_util_put_int(t, r->n);
    if (r->kind == DIFFU_JOBIN_CHAT) {
        diffu_job_util_put_key(t, "system", 0);
        diffu_job_util_put_str(t, r->system, strlen(r->system));
        diffu_job_util_put_key(t, "prefill", 0);
        if (r->prefill) diffu_job_util_put_str(t, r->prefill, strlen(r->prefill));
        else diffu_job_util_put(t, "null");
    }
    diffu_job_util_put(t, "}");
}

void diffu_jobin_describe(const diffu_jobin_req *r, diffu_text *t) {
    diffu_job_util_put(t, "{");
    diffu_job_util_put_key(t, "line", 1);
    diffu_job_util_put_int(t, r->line);
    diffu_job_util_put_key(t, "id", 0);
    if (r->id_is_int) diffu_job_util_put(t, r->id);
    else diffu_job_util_put_str(t, r->id, r->id_len);
    diffu_job_util_put_key(t, "n", 0);
    diffu_job_util_put_int(t, r->n);
    diffu_job_util_put_key(t, "mode", 0);
    diffu_job_util_put(t, r->kind == DIFFU_JOBIN_CHAT ? "\"chat\"" : "\"prompt\"");
    diffu_job_util_put_key(t, "prompt_tokens", 0);
    diffu_job_util_put_int(t, r->prompt_tokens);
    diffu_job_util_put_key(t, "params", 0);
    diffu_jobin_params_json(r, t);
    if (r->meta) {
        diffu_job_util_put_key(t, "meta_fields", 0);
        /* just the names, to keep the line short */
        diffu_err e;
        diffu_json_doc *d = diffu_json_parse(r->meta, r->meta_len, &e);
        DIFFU_ASSERT(d);
        const diffu_json *m = diffu_json_root(d);
        diffu_job_util_put(t, "[");
        for (size_t i = 0; i < m->u.kids.n; i++) {
            if (i) diffu_job_util_put(t, ",");
            diffu_job_util_put_str(t, m->u.kids.keys[i], m->u.kids.klen[i]);
        }
        diffu_job_util_put(t, "]");
        diffu_json_free(d);
    }
    diffu_job_util_put(t, "}");
}

/* ------------------------------------------------------------ prompts */

void diffu_jobin_prompt_text(const diffu_jobin_req *r, diffu_text *out) {
    if (r->kind == DIFFU_JOBIN_CHAT) diffu_chat_prompt_text(r->system, r->prompt, r->prompt_len, r->prefill, out);
    else diffu_text_append(out, r->prompt, r->prompt_len);
}

int diffu_jobin_prompt_ids(const diffu_jobin_req *r, const diffu_tokenizer *tok, diffu_ids *out, diffu_err *err) {
    if (r->kind == DIFFU_JOBIN_CHAT)
        return diffu_chat_prompt_ids(tok, r->system, r->prompt, r->prompt_len, r->prefill, out, err);
    return diffu_tokenizer_encode(tok, r->prompt, r->prompt_len, out, err);
}

int diffu_jobin_count_tokenizer(void *tok, const diffu_jobin_req *r, diffu_err *err) {
    diffu_ids ids = {0};
    int rc = diffu_jobin_prompt_ids(r, (const diffu_tokenizer *)tok, &ids, err);
    int n = rc ? -1 : (ids.len > 0x7fffffff ? 0x7fffffff : (int)ids.len);
    diffu_ids_free(&ids);
    return n;
}

int diffu_jobin_count_bytes(void *unused, const diffu_jobin_req *r, diffu_err *err) {
    (void)unused;
    (void)err;
    if (r->kind == DIFFU_JOBIN_PROMPT) return r->prompt_len > 0x7fffffff ? 0x7fffffff : (int)r->prompt_len;
    diffu_text t = {0};
    diffu_jobin_prompt_text(r, &t);
    int n = t.len > 0x7fffffff ? 0x7fffffff : (int)t.len;
    diffu_text_free(&t);
    return n;
}
