/* fuzz_ckpt.c — a whole checkpoint directory (model/checkpoint.c): config.json,
 * model.safetensors or model.safetensors.index.json with its shards, and every
 * cross-check between them. The input is a "@@FILE name" container
 * (fuzz_common.h); without one it is the index file, next to no shards.
 * Oracle: a refusal is one line; an accepted checkpoint gives every tensor
 * the config implies and its stats and fingerprint can be computed. */
#include "checkpoint.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_quiet();
    fz_unpack_files(data, size, fz_dir(), "model.safetensors.index.json", 16);
    diffu_ckpt *c = NULL;
    diffu_err err;
    err.msg[0] = 0;
    if (diffu_ckpt_open(fz_dir(), &c, &err)) {
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a refusal without a one-line message");
    } else {
        diffu_ckpt_stats st;
        diffu_ckpt_get_stats(c, &st);
        (void)diffu_ckpt_fingerprint(c);
        const diffu_config *cfg = diffu_ckpt_config(c);
        FZ_CHECK(cfg->vocab > 0 && cfg->hidden > 0 && cfg->n_layers > 0, "accepted a config with sizes <= 0");
        const char *file = NULL;
        const diffu_st_tensor *t = diffu_ckpt_tensor(c, "model.embed_tokens.weight", &file);
        FZ_CHECK(t && file, "accepted a checkpoint without model.embed_tokens.weight");
        FZ_CHECK(t->shape[0] == cfg->vocab && t->shape[1] == cfg->hidden, "embedding shape differs from the config");
        diffu_ckpt_close(c);
    }
    fz_clean();
    return 0;
}
