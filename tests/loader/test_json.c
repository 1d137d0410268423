/* test_json.c — unit test of base/json.c against RFC 8259.
 *
 * Valid documents: numbers (integers up to the int64 limits kept exact, beyond
 * 2^53 too; fractions; exponents), every string escape, \u surrogate pairs to
 * UTF-8, raw UTF-8, member order, duplicate keys, line numbers, the typed
 * getters, and a round trip through diffu_json_escape.
 * Rejections, each with "line L col C" and the reason: trailing commas,
 * unterminated strings, lone surrogates, invalid UTF-8 (overlong, encoded
 * surrogates, > U+10FFFF, truncated), control characters in strings, nesting
 * deeper than 512, trailing garbage, leading zeros ("01" is not a JSON number:
 * RFC 8259 section 6, int = zero / ( digit1-9 *DIGIT )), and the other
 * number/literal/escape errors. Last line: "N passed, M failed". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#include "check.h" /* tests/common: CHECK, n_pass, n_fail, check_report */

static diffu_json_doc *parse(const char *s, size_t len, diffu_err *err) {
    /* an exact-size heap copy, so AddressSanitizer sees any read past len */
    char *buf = malloc(len ? len : 1);
    memcpy(buf, s, len);
    diffu_json_doc *d = diffu_json_parse(buf, len, err);
    free(buf);
    return d;
}

/* ------------------------------------------------------------ valid input */

static const diffu_json *num_of(diffu_json_doc *d, size_t i) {
    const diffu_json *r = diffu_json_root(d);
    return r->u.kids.items[i];
}

static void test_numbers(void) {
    const char *doc =
        "[0, -0, 7, -42, 9007199254740993, 9223372036854775807, -9223372036854775808, 9223372036854775808,"
        " 0.5, -1.25, 3.14159, 1e3, 1E-2, 2.5e+2, -0.0e0, 12345678901234567890123, 1e-400]";
    diffu_err err = {{0}};
    diffu_json_doc *d = parse(doc, strlen(doc), &err);
    CHECK(d != NULL, "numbers: %s", err.msg);
    if (!d) return;
    const diffu_json *r = diffu_json_root(d);
    CHECK(r->type == DJ_ARR && r->u.kids.n == 17, "17 numbers, got %zu", r->u.kids.n);
    struct { int is_int; int64_t i; double dv; } want[] = {
        {1, 0, 0}, {1, 0, -0.0}, {1, 7, 7}, {1, -42, -42},
        {1, 9007199254740993LL, 9007199254740992.0},          /* 2^53 + 1: exact as int64 */
        {1, INT64_MAX, 9223372036854775807.0}, {1, INT64_MIN, -9223372036854775808.0},
        {0, 0, 9223372036854775808.0},                        /* 2^63: not an int64, kept as a double */
        {0, 0, 0.5}, {0, 0, -1.25}, {0, 0, 3.14159}, {0, 0, 1000}, {0, 0, 0.01}, {0, 0, 250}, {0, 0, -0.0},
        {0, 0, 12345678901234567890123.0}, {0, 0, 0.0},       /* 1e-400 underflows to 0 */
    };
    for (size_t i = 0; i < 17 && i < r->u.kids.n; i++) {
        const diffu_json *v = num_of(d, i);
        CHECK(v->type == DJ_NUM, "item %zu type %d", i, v->type);
        CHECK(v->u.num.is_int == want[i].is_int, "item %zu is_int %d", i, v->u.num.is_int);
        if (want[i].is_int) CHECK(v->u.num.i == want[i].i, "item %zu int %lld", i, (long long)v->u.num.i);
        CHECK(v->u.num.d == want[i].dv, "item %zu double %.17g want %.17g", i, v->u.num.d, want[i].dv);
    }
    diffu_json_free(d);
}

static int str_is(const diffu_json *v, const char *bytes, size_t len) {
    return v && v->type == DJ_STR && v->u.str.len == len && memcmp(v->u.str.s, bytes, len) == 0 && v->u.str.s[len] == 0;
}

static void test_strings(void) {
    /* every escape of RFC 8259 section 7, \u in both cases, BMP and astral code points */
    const char *doc =
        "{\"esc\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\","
        " \"u\": \"\\u0041\\u00e9\\u00E9\\u20ac\\uFFFF\","
        " \"pair\": \"\\ud83d\\ude00\\uD834\\uDD1E\\udbff\\udfff\","
        " \"nul\": \"a\\u0000b\","
        " \"raw\": \"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\","
        " \"empty\": \"\"}";
    diffu_err err = {{0}};
    diffu_json_doc *d = parse(doc, strlen(doc), &err);
    CHECK(d != NULL, "strings: %s", err.msg);
    if (!d) return;
    const diffu_json *r = diffu_json_root(d);
    CHECK(str_is(diffu_json_get(r, "esc"), "\"\\/\b\f\n\r\t", 8), "simple escapes");
    CHECK(str_is(diffu_json_get(r, "u"), "A\xc3\xa9\xc3\xa9\xe2\x82\xac\xef\xbf\xbf", 11), "\\u escapes");
    CHECK(str_is(diffu_json_get(r, "pair"), "\xf0\x9f\x98\x80\xf0\x9d\x84\x9e\xf4\x8f\xbf\xbf", 12),
          "surrogate pairs -> 4-byte UTF-8 (U+1F600, U+1D11E, U+10FFFF)");
    CHECK(str_is(diffu_json_get(r, "nul"), "a\0b", 3), "\\u0000 kept, len 3");
    CHECK(str_is(diffu_json_get(r, "raw"), "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \x7f", 17), "raw UTF-8 and DEL");
    CHECK(str_is(diffu_json_get(r, "empty"), "", 0), "empty string");
    diffu_json_free(d);
}

static void test_structure(void) {
    const char *doc = " \t\r\n{\"b\": [true, false, null, {}, []],\n \"a\": {\"x\": 1},\n \"a\": 2,\n \"\": \"k\"}\n ";
    diffu_err err = {{0}};
    diffu_json_doc *d = parse(doc, strlen(doc), &err);
    CHECK(d != NULL, "structure: %s", err.msg);
    if (!d) return;
    const diffu_json *r = diffu_json_root(d);
    CHECK(r->type == DJ_OBJ && r->u.kids.n == 4, "4 members (duplicate key kept)");
    CHECK(r->u.kids.n == 4 && !strcmp(r->u.kids.keys[0], "b") && !strcmp(r->u.kids.keys[1], "a") &&
              !strcmp(r->u.kids.keys[2], "a") && r->u.kids.klen[3] == 0,
          "source order");
    const diffu_json *a = diffu_json_get(r, "a");
    CHECK(a && a->type == DJ_OBJ, "get returns the first of duplicate keys");
    CHECK(a && a->line == 3, "line of 'a' value: %d", a ? a->line : -1);
    const diffu_json *b = diffu_json_get(r, "b");
    CHECK(b && b->type == DJ_ARR && b->u.kids.n == 5 && b->u.kids.items[0]->type == DJ_BOOL &&
              b->u.kids.items[0]->u.b == 1 && b->u.kids.items[1]->u.b == 0 && b->u.kids.items[2]->type == DJ_NULL &&
              b->u.kids.items[3]->type == DJ_OBJ && b->u.kids.items[3]->u.kids.n == 0 &&
              b->u.kids.items[4]->type == DJ_ARR && b->u.kids.items[4]->u.kids.n == 0,
          "literals and empty containers");
    CHECK(r->line == 2, "root line %d", r->line);
    CHECK(diffu_json_get(r, "zz") == NULL && diffu_json_get(b, "a") == NULL, "absent key / non-object");
    diffu_json_free(d);

    /* scalars at top level (RFC 8259 allows any value) */
    const char *tops[] = {"1", "\"s\"", "null", " true ", "-0.5e-3"};
    for (size_t i = 0; i < sizeof tops / sizeof *tops; i++) {
        d = parse(tops[i], strlen(tops[i]), &err);
        CHECK(d != NULL, "top-level scalar %s: %s", tops[i], err.msg);
        diffu_json_free(d);
    }
}

static char *nested(int depth, const char *inner) {
    size_t il = strlen(inner);
    char *s = malloc((size_t)depth * 2 + il + 1);
    memset(s, '[', (size_t)depth);
    memcpy(s + depth, inner, il);
    memset(s + depth + il, ']', (size_t)depth);
    s[depth * 2 + il] = 0;
    return s;
}

static void test_depth(void) {
    diffu_err err = {{0}};
    char *s = nested(512, "");
    diffu_json_doc *d = parse(s, strlen(s), &err);
    CHECK(d != NULL, "512 nested arrays accepted: %s", err.msg);
    diffu_json_free(d);
    free(s);
    s = nested(513, "");
    d = parse(s, strlen(s), &err);
    CHECK(d == NULL && strstr(err.msg, "line 1 col 513: nesting deeper than 512"), "513 nested: '%s'", err.msg);
    diffu_json_free(d);
    free(s);
    s = nested(200000, ""); /* refused long before the C stack is in danger */
    d = parse(s, strlen(s), &err);
    CHECK(d == NULL && strstr(err.msg, "nesting deeper than 512"), "200000 nested: '%s'", err.msg);
    diffu_json_free(d);
    free(s);
    /* objects count too */
    size_t n = 600, len = 0;
    s = malloc(n * 6 + 4);
    for (size_t i = 0; i < n; i++) len += (size_t)sprintf(s + len, "{\"a\":");
    len += (size_t)sprintf(s + len, "1");
    for (size_t i = 0; i < n; i++) s[len++] = '}';
    d = parse(s, len, &err);
    CHECK(d == NULL && strstr(err.msg, "nesting deeper than 512"), "600 nested objects: '%s'", err.msg);
    diffu_json_free(d);
    free(s);
}

static void test_getters(void) {
    const char *doc = "{\"i\": 5, \"big\": 4294967296, \"f\": 1.5, \"s\": \"x\", \"b\": true, \"n\": null}";
    diffu_err err = {{0}};
    diffu_json_doc *d = parse(doc, strlen(doc), &err);
    CHECK(d != NULL, "getters doc: %s", err.msg);
    if (!d) return;
    const diffu_json *r = diffu_json_root(d);
    int64_t i = -1;
    double x = 0;
    int b = -1;
    const char *s = NULL;
    CHECK(diffu_json_get_int(r, "i", 0, 10, &i, &err) == 0 && i == 5, "get_int");
    CHECK(diffu_json_get_int(r, "missing", 0, 10, &i, &err) == 1 && i == 5, "get_int absent leaves out untouched");
    CHECK(diffu_json_get_int(r, "big", 0, INT32_MAX, &i, &err) == -1 &&
              strstr(err.msg, "field 'big': 4294967296 is out of range"), "range: '%s'", err.msg);
    CHECK(diffu_json_get_int(r, "f", 0, 10, &i, &err) == -1 && strstr(err.msg, "field 'f': expected an integer"),
          "fraction as int: '%s'", err.msg);
    CHECK(diffu_json_get_int(r, "s", 0, 10, &i, &err) == -1 && strstr(err.msg, "got string"), "'%s'", err.msg);
    CHECK(diffu_json_get_num(r, "f", &x, &err) == 0 && x == 1.5, "get_num");
    CHECK(diffu_json_get_num(r, "i", &x, &err) == 0 && x == 5, "get_num of an integer");
    CHECK(diffu_json_get_num(r, "n", &x, &err) == -1 && strstr(err.msg, "field 'n': expected a number, got null"),
          "'%s'", err.msg);
    CHECK(diffu_json_get_bool(r, "b", &b, &err) == 0 && b == 1, "get_bool");
    CHECK(diffu_json_get_bool(r, "i", &b, &err) == -1 && strstr(err.msg, "expected true or false"), "'%s'", err.msg);
    CHECK(diffu_json_get_str(r, "s", &s, &err) == 0 && s && !strcmp(s, "x"), "get_str");
    CHECK(diffu_json_get_str(r, "b", &s, &err) == -1 && strstr(err.msg, "got boolean"), "'%s'", err.msg);
    diffu_json_free(d);
}

static void test_escape_round_trip(void) {
    /* every byte 0x01..0x7f, a NUL, quotes, backslash and multi-byte UTF-8 */
    char src[200];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++) src[n++] = (char)c;
    src[n++] = 0;
    const char *u = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"\\";
    memcpy(src + n, u, strlen(u));
    n += strlen(u);
    size_t need = diffu_json_escape(NULL, 0, src, n);
    char *buf = malloc(need + 1);
    size_t got = diffu_json_escape(buf, need + 1, src, n);
    CHECK(got == need && strlen(buf) == need, "escape size %zu vs %zu", got, need);
    for (size_t i = 0; i < need; i++)
        if ((unsigned char)buf[i] < 0x20) { CHECK(0, "raw control byte 0x%02x in escaped output", buf[i]); break; }
    diffu_err err = {{0}};
    diffu_json_doc *d = parse(buf, need, &err);
    CHECK(d != NULL, "escaped string parses: %s", err.msg);
    if (d) CHECK(str_is(diffu_json_root(d), src, n), "round trip keeps all %zu bytes", n);
    diffu_json_free(d);
    /* truncation like snprintf */
    char small[8];
    size_t r = diffu_json_escape(small, sizeof small, "abcdefghij", 10);
    CHECK(r == 12 && !strcmp(small, "\"abcdef"), "truncated escape: %zu '%s'", r, small);
    free(buf);
}

/* ------------------------------------------------------------ rejections */

typedef struct {
    const char *what;
    const char *text;
    size_t len; /* 0: strlen */
    const char *want; /* substring of the error, with its line and column */
} bad_case;

static void test_rejections(void) {
    static const bad_case bad[] = {
        /* trailing commas */
        {"trailing comma in array", "[1,2,]", 0, "line 1 col 6: unexpected character"},
        {"trailing comma in object", "{\"a\":1,}", 0, "line 1 col 8: expected a string key"},
        {"trailing comma, multi-line", "{\n  \"a\": [1,\n  2,,]\n}", 0, "line 3 col 5: unexpected character"},
        /* strings */
        {"unterminated string", "[\"abc", 0, "line 1 col 2: unterminated string"},
        {"unterminated by escaped quote", "\"abc\\\"", 0, "line 1 col 1: unterminated string"},
        {"backslash at end of input", "\"abc\\", 0, "line 1 col 1: unterminated string"},
        {"lone high surrogate", "\"\\ud800\"", 0, "line 1 col 8: lone UTF-16 surrogate"},
        {"high surrogate + non-low", "\"\\ud800\\u0041\"", 0, "line 1 col 8: lone UTF-16 surrogate"},
        {"high surrogate + high", "\"\\ud800\\ud800\"", 0, "line 1 col 8: lone UTF-16 surrogate"},
        {"lone low surrogate", "\"x\\udc00\"", 0, "line 1 col 9: lone UTF-16 surrogate"},
        {"bad \\u hex", "\"\\u12G4\"", 0, "line 1 col 3: bad \\u escape"},
        {"short \\u", "\"\\u12\"", 0, "line 1 col 3: bad \\u escape"},
        {"unknown escape", "\"a\\x41\"", 0, "line 1 col 4: bad escape in string"},
        {"invalid UTF-8 0xff", "\"a\xff\"", 0, "line 1 col 3: invalid UTF-8 in string"},
        {"invalid UTF-8 lone continuation", "\"\x80\"", 0, "line 1 col 2: invalid UTF-8"},
        {"overlong 2-byte", "\"\xc0\xaf\"", 0, "line 1 col 2: invalid UTF-8"},
        {"overlong 3-byte", "\"\xe0\x80\xaf\"", 0, "line 1 col 2: invalid UTF-8"},
        {"UTF-8 encoded surrogate", "\"\xed\xa0\x80\"", 0, "line 1 col 2: invalid UTF-8"},
        {"above U+10FFFF", "\"\xf4\x90\x80\x80\"", 0, "line 1 col 2: invalid UTF-8"},
        {"truncated sequence", "\"\xe2\x82\"", 0, "line 1 col 2: invalid UTF-8"},
        {"invalid UTF-8 in a key", "{\"k\xfe\": 1}", 0, "line 1 col 4: invalid UTF-8"},
        {"raw tab in string", "\"a\tb\"", 0, "line 1 col 3: control character in string"},
        {"raw newline in string", "[\"a\nb\"]", 0, "line 1 col 4: control character in string"},
        {"raw NUL in string", "\"a\0b\"", 5, "line 1 col 3: control character in string"},
        {"raw 0x1f in string", "\"\x1f\"", 0, "line 1 col 2: control character in string"},
        /* trailing garbage */
        {"trailing garbage", "{} x", 0, "line 1 col 4: trailing characters after the JSON value"},
        {"two values", "1 2", 0, "line 1 col 3: trailing characters"},
        {"trailing NUL", "{}\0", 3, "line 1 col 3: trailing characters"},
        {"garbage on a later line", "{\"a\": 1}\n\n  ]", 0, "line 3 col 3: trailing characters"},
        /* numbers: RFC 8259 section 6 */
        {"leading zero", "01", 0, "line 1 col 2: trailing characters"},
        {"leading zeros", "00", 0, "line 1 col 2: trailing characters"},
        {"negative leading zero", "-01", 0, "line 1 col 3: trailing characters"},
        {"leading zero in array", "[007]", 0, "line 1 col 3: expected ',' or ']'"},
        {"leading zero in object", "{\"a\": 01}", 0, "line 1 col 8: expected ',' or '}'"},
        {"leading zero with fraction", "[01.5]", 0, "line 1 col 3: expected ',' or ']'"},
        {"leading plus", "+1", 0, "line 1 col 1: unexpected character"},
        {"leading dot", ".5", 0, "line 1 col 1: unexpected character"},
        {"trailing dot", "1.", 0, "line 1 col 3: invalid number"},
        {"dot before exponent", "[1.e5]", 0, "line 1 col 4: invalid number"},
        {"bare exponent", "1e", 0, "line 1 col 3: invalid number"},
        {"exponent sign only", "1e+", 0, "line 1 col 4: invalid number"},
        {"minus only", "-", 0, "line 1 col 1: invalid number"},
        {"minus space", "- 1", 0, "line 1 col 1: invalid number"},
        {"hex", "0x10", 0, "line 1 col 2: trailing characters"},
        {"NaN", "NaN", 0, "line 1 col 1: unexpected character"},
        {"Infinity", "[-Infinity]", 0, "line 1 col 2: invalid number"},
        {"overflow to inf", "[1e400]", 0, "line 1 col 2: number out of range"},
        {"negative overflow", "{\"t\":\n -2e308}", 0, "line 2 col 2: number out of range"},
        /* literals and structure */
        {"capitalized literal", "True", 0, "line 1 col 1: unexpected character"},
        {"truncated literal", "[tru]", 0, "line 1 col 2: unexpected character"},
        {"truncated null", "nul", 0, "line 1 col 1: unexpected character"},
        {"single quotes", "{'a': 1}", 0, "line 1 col 2: expected a string key"},
        {"unquoted key", "{a: 1}", 0, "line 1 col 2: expected a string key"},
        {"non-string key", "{1: 1}", 0, "line 1 col 2: expected a string key"},
        {"missing colon", "{\"a\" 1}", 0, "line 1 col 6: expected ':'"},
        {"missing comma", "[1 2]", 0, "line 1 col 4: expected ',' or ']'"},
        {"unclosed array", "[1, 2", 0, "line 1 col 6: expected ',' or ']'"},
        {"unclosed object", "{\"a\": 1", 0, "line 1 col 8: expected ',' or '}'"},
        {"missing value", "{\"a\": }", 0, "line 1 col 7: unexpected character"},
        {"missing value at end", "{\"a\":", 0, "line 1 col 6: unexpected end of input"},
        {"empty input", "", 0, "line 1 col 1: unexpected end of input"},
        {"whitespace only", " \n\t ", 0, "line 2 col 3: unexpected end of input"},
        {"comment", "[1] // c", 0, "line 1 col 5: trailing characters"},
        {"UTF-8 BOM", "\xef\xbb\xbf{}", 0, "line 1 col 1: unexpected character"},
        {"form feed is not whitespace", "[1,\f2]", 0, "line 1 col 4: unexpected character"},
        {"raw non-ASCII outside strings", "[\xc3\xa9]", 0, "line 1 col 2: unexpected character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        diffu_err err = {{0}};
        diffu_json_doc *d = parse(bad[i].text, len, &err);
        CHECK(d == NULL, "%s: accepted", bad[i].what);
        if (d) {
            diffu_json_free(d);
            continue;
        }
        CHECK(strstr(err.msg, bad[i].want) != NULL && !strchr(err.msg, '\n'), "%s: got '%s', want '%s'", bad[i].what,
              err.msg, bad[i].want);
    }
}

static void test_parse_file(void) {
    diffu_err err = {{0}};
    diffu_json_doc *d = diffu_json_parse_file("/nonexistent/diffu/x.json", &err);
    CHECK(d == NULL && strstr(err.msg, "/nonexistent/diffu/x.json: cannot open"), "'%s'", err.msg);
    char path[] = "/tmp/diffu-test-json-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    /* bigger than the reader's first 64 KiB buffer, error on the last line */
    fputs("{\"pad\": [", f);
    for (int i = 0; i < 20000; i++) fprintf(f, "%d,\n", i);
    fputs("1]\n,}\n", f);
    fclose(f);
    d = diffu_json_parse_file(path, &err);
    char want[128];
    snprintf(want, sizeof want, "%s: invalid JSON: line 20002 col 2: expected a string key", path);
    CHECK(d == NULL && !strcmp(err.msg, want), "got '%s', want '%s'", err.msg, want);
    diffu_json_free(d);
    f = fopen(path, "w");
    fputs("{\"pad\": [", f);
    for (int i = 0; i < 20000; i++) fprintf(f, "%d,\n", i);
    fputs("1]}\n", f);
    fclose(f);
    d = diffu_json_parse_file(path, &err);
    CHECK(d != NULL, "large file: %s", err.msg);
    if (d) {
        const diffu_json *pad = diffu_json_get(diffu_json_root(d), "pad");
        CHECK(pad && pad->u.kids.n == 20001 && pad->u.kids.items[19999]->u.num.i == 19999 &&
                  pad->u.kids.items[19999]->line == 20000, "large array");
    }
    diffu_json_free(d);
    remove(path);
}

int main(void) {
    test_numbers();
    test_strings();
    test_structure();
    test_depth();
    test_getters();
    test_escape_round_trip();
    test_rejections();
    test_parse_file();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
