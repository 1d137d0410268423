/* fuzz_config.c — config.json (model/config.c). Oracle: an accepted config
 * satisfies what config.h promises (positive sizes, heads dividing hidden,
 * kv heads dividing heads, head_dim consistent, eps and theta positive,
 * special ids inside the vocab or -1), and writing it back and reading that
 * gives the same config. */
#include "config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_quiet();
    const char *p = fz_write_one("config.json", data, size);
    diffu_config c, c2;
    diffu_err err;
    err.msg[0] = 0;
    if (diffu_config_load(p, &c, &err)) {
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a refusal without a one-line message");
        FZ_CHECK(strstr(err.msg, "config.json"), "the message does not name the file: %s", err.msg);
    } else {
        FZ_CHECK(c.hidden > 0 && c.inter > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 && c.vocab > 0 &&
                 c.max_pos > 0, "a size <= 0 accepted");
        FZ_CHECK(c.hidden % c.n_heads == 0 && c.n_heads % c.n_kv_heads == 0, "heads do not divide");
        FZ_CHECK(c.head_dim > 0, "head_dim %d", c.head_dim);
        FZ_CHECK(c.rms_eps > 0 && c.rope_theta > 0, "eps %g theta %g", c.rms_eps, c.rope_theta);
        int ids[4] = {c.bos_id, c.eos_id, c.pad_id, c.mask_id};
        for (int i = 0; i < 4; i++) FZ_CHECK(ids[i] >= -1 && ids[i] < c.vocab, "special id %d outside the vocab", ids[i]);
        (void)diffu_config_params(&c);
        const char *q = fz_path(1, "config2.json");
        FZ_CHECK(diffu_config_write(q, &c, &err) == 0, "write: %s", err.msg);
        FZ_CHECK(diffu_config_load(q, &c2, &err) == 0, "what we wrote does not load: %s", err.msg);
        FZ_CHECK(c2.hidden == c.hidden && c2.inter == c.inter && c2.n_layers == c.n_layers && c2.n_heads == c.n_heads &&
                 c2.n_kv_heads == c.n_kv_heads && c2.head_dim == c.head_dim && c2.vocab == c.vocab &&
                 c2.max_pos == c.max_pos && c2.tie_embed == c.tie_embed && c2.bos_id == c.bos_id &&
                 c2.eos_id == c.eos_id && c2.pad_id == c.pad_id && c2.mask_id == c.mask_id,
                 "config write/read round trip differs");
    }
    fz_clean();
    return 0;
}
