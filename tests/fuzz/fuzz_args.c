/* fuzz_args.c — numeric command-line arguments: the option-value parsers
 * (cli/args.c) and the whole `diffu generate` option parser (cli/generate_args.c
 * gen_parse: every option of the single-process, distributed and batch-job
 * runs). Byte 0 selects what runs; the rest is the text (cut at the first NUL).
 *   0 arg_int   1 arg_double   2 arg_size   3 arg_int_list
 *   4+ gen_parse on "diffu generate" + the text split at '\n' (at most 40 words)
 * Oracles: an accepted value lies in the range asked for (arg_double: a
 * number, not NaN; arg_size: > 0 and the size the text says, within 1 part
 * in 2^52; a list: every item in [1, 2^30]); gen_parse returns 0, -1 (help),
 * 1 or 2, and what it accepts has n in [1, 65536] and temperature in [0, 1e6]. */
#include <getopt.h>

#include "args.h"
#include "denoise.h"
#include "fuzz_common.h"
#include "generate.h"

static FILE *g_null;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (!g_null) g_null = fopen("/dev/null", "w");
    size_t n = size - 1;
    char *s = malloc(n + 1);
    memcpy(s, data + 1, n);
    s[n] = 0;
    FILE *err_f = stderr, *out_f = stdout;
    stderr = g_null; /* the parsers print their one-line errors; sanitizer reports still go to fd 2 */
    stdout = g_null;
    int mode = data[0] % 5;
    long long iv;
    double dv;
    uint64_t sv;
    int *list = NULL, nl = 0;
    switch (mode) {
    case 0:
        if (arg_int("fuzz", "--int", s, -1000, 1LL << 40, &iv) == 0) FZ_CHECK(iv >= -1000 && iv <= (1LL << 40), "%lld", iv);
        break;
    case 1:
        if (arg_double("fuzz", "--num", s, -1e6, 1e300, &dv) == 0) FZ_CHECK(dv == dv && dv >= -1e6 && dv <= 1e300, "%g", dv);
        break;
    case 2:
        if (arg_size("fuzz", "--size", s, &sv) == 0) FZ_CHECK(sv > 0, "size 0 accepted from '%s'", s);
        break;
    case 3:
        if (arg_int_list("fuzz", "--list", s, 1, 1 << 30, &list, &nl) == 0) {
            FZ_CHECK(nl >= 1, "empty list accepted");
            for (int i = 0; i < nl; i++) FZ_CHECK(list[i] >= 1 && list[i] <= (1 << 30), "item %d", list[i]);
            free(list);
        }
        break;
    default: {
        char *argv[44];
        int argc = 0;
        argv[argc++] = "generate";
        char *p = s;
        while (argc < 41) {
            argv[argc++] = p;
            char *nlp = strchr(p, '\n');
            if (!nlp) break;
            *nlp = 0;
            p = nlp + 1;
        }
        argv[argc] = NULL;
        /* reset getopt completely (gen_parse sets optind = 1, which keeps a
         * half-read option cluster of the previous call: not a case the CLI has) */
        char *dummy[2] = {"x", NULL};
        optind = 0;
        opterr = 0;
        getopt(1, dummy, "");
        gen_opts o;
        int rc = gen_parse(argc, argv, &o, 0);
        FZ_CHECK(rc == 0 || rc == -1 || rc == 1 || rc == 2, "gen_parse returned %d", rc);
        if (rc == 0) {
            FZ_CHECK(o.n_samples >= 1 && o.n_samples <= (1 << 16), "n %lld", o.n_samples);
            FZ_CHECK(o.p.temperature >= 0 && o.p.temperature <= 1e6, "temperature %g", o.p.temperature);
        }
        gen_free(&o, NULL);
        break;
    }
    }
    stderr = err_f;
    stdout = out_f;
    free(s);
    return 0;
}
