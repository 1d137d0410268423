/* fuzz_json.c — the strict JSON reader (model/json.c) on arbitrary bytes.
 * Oracles: a parse either fails with a one-line message ("line L col C: ...")
 * or yields a tree whose every string, written back with diffu_json_escape and
 * parsed again, is the same bytes; the typed getters never crash on any member. */
#include "fuzz_common.h"
#include "json.h"

static void check_string(const char *s, size_t len) {
    size_t need = diffu_json_escape(NULL, 0, s, len);
    char *buf = malloc(need + 1);
    size_t got = diffu_json_escape(buf, need + 1, s, len);
    FZ_CHECK(got == need, "escape size %zu then %zu", need, got);
    diffu_err err;
    diffu_json_doc *d = diffu_json_parse(buf, got, &err);
    FZ_CHECK(d, "an escaped string does not parse back: %s", err.msg);
    const diffu_json *r = diffu_json_root(d);
    FZ_CHECK(r->type == DJ_STR && r->u.str.len == len && !memcmp(r->u.str.s, s, len), "string round trip differs");
    diffu_json_free(d);
    free(buf);
}

static void walk(const diffu_json *v, int depth) {
    FZ_CHECK(depth <= 513, "depth %d beyond the documented limit", depth);
    diffu_err err;
    switch (v->type) {
    case DJ_STR: check_string(v->u.str.s, v->u.str.len); break;
    case DJ_NUM: FZ_CHECK(v->u.num.d == v->u.num.d, "NaN from the parser"); break;
    case DJ_ARR:
    case DJ_OBJ:
        for (size_t i = 0; i < v->u.kids.n; i++) {
            if (v->type == DJ_OBJ) {
                check_string(v->u.kids.keys[i], v->u.kids.klen[i]);
                int64_t iv;
                double dv;
                int b;
                const char *s;
                const char *k = v->u.kids.keys[i];
                diffu_json_get_int(v, k, -1000, 1000, &iv, &err);
                diffu_json_get_num(v, k, &dv, &err);
                diffu_json_get_bool(v, k, &b, &err);
                diffu_json_get_str(v, k, &s, &err);
            }
            walk(v->u.kids.items[i], depth + 1);
        }
        break;
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_quiet();
    diffu_err err;
    err.msg[0] = 0;
    diffu_json_doc *d = diffu_json_parse((const char *)data, size, &err);
    if (!d) {
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a refusal without a one-line message: '%s'", err.msg);
        return 0;
    }
    walk(diffu_json_root(d), 0);
    diffu_json_free(d);
    return 0;
}
