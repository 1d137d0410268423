/* mkmodel.c — see mkmodel.h. */
#include "mkmodel.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"
#include "safetensors.h"
#include "tensor_names.h"
#include "threadpool.h"

int diffu_mkmodel_preset(const char *name, diffu_config *c, diffu_err *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "Dream");
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "bfloat16");
    c->rms_eps = 1e-6;
    c->rope_theta = 1e6;
    c->max_pos = 131072;
    if (!strcmp(name, "tiny")) {
        c->hidden = 64; c->n_layers = 2; c->n_heads = 4; c->n_kv_heads = 2; c->inter = 128; c->vocab = 151936;
        c->max_pos = 4096;
    } else if (!strcmp(name, "small")) { /* Qwen2.5-0.5B */
        c->hidden = 896; c->n_layers = 24; c->n_heads = 14; c->n_kv_heads = 2; c->inter = 4864; c->vocab = 151936;
        c->max_pos = 32768;
    } else if (!strcmp(name, "7b")) { /* DiffuCoder-7B */
        c->hidden = 3584; c->n_layers = 28; c->n_heads = 28; c->n_kv_heads = 4; c->inter = 18944; c->vocab = 152064;
    } else {
        return diffu_err_set(err, "unknown preset '%s' (tiny, small, 7b)", name);
    }
    c->head_dim = c->hidden / c->n_heads;
    diffu_mkmodel_fix_ids(c);
    return 0;
}

void diffu_mkmodel_fix_ids(diffu_config *c) {
    if (c->vocab > 151667) {
        c->bos_id = 151643; c->eos_id = 151643; c->pad_id = 151643; c->mask_id = 151666;
    } else {
        /* a toy vocabulary: keep the roles, at its top */
        c->mask_id = c->vocab - 1;
        c->eos_id = c->vocab > 1 ? c->vocab - 2 : 0;
        c->bos_id = c->eos_id;
        c->pad_id = c->eos_id;
    }
}

/* ---------------------------------------------------------------- values */

static uint64_t mix64(uint64_t z) { /* splitmix64 finalizer */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t name_hash(const char *s) {
    return diffu_fnv64(DIFFU_FNV64_INIT, s, strlen(s));
}

static float normal_at(uint64_t key, uint64_t i) {
    uint64_t a = mix64(key ^ mix64(2 * i + 1)), b = mix64(key ^ mix64(2 * i + 2));
    double u1 = ((double)(a >> 11) + 0.5) * (1.0 / 9007199254740992.0); /* (0, 1) */
    double u2 = (double)(b >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

typedef struct {
    uint64_t key;
    float scale, offset;
    uint64_t first;  /* element index of the chunk's start */
    size_t n, per;
    diffu_dtype dt;
    void *out;
} gen_ctx;

static void gen_task(void *arg, int t, int tid) {
    gen_ctx *c = arg;
    size_t a = (size_t)t * c->per, b = a + c->per < c->n ? a + c->per : c->n;
    for (size_t k = a; k < b; k++) {
        float v = c->offset + c->scale * normal_at(c->key, c->first + k);
        if (c->dt == DIFFU_F32) ((float *)c->out)[k] = v;
        else if (c->dt == DIFFU_BF16) ((uint16_t *)c->out)[k] = diffu_f32_to_bf16(v);
        else ((uint16_t *)c->out)[k] = diffu_f32_to_f16(v);
    }
}

static void role_scale(const diffu_tensor_spec *s, float *scale, float *offset) {
    *offset = 0;
    switch (s->role) {
    case DT_EMBED: *scale = 1.0f; break;
    case DT_ATTN_NORM: case DT_FFN_NORM: case DT_OUT_NORM: *scale = 0.1f; *offset = 1.0f; break;
    case DT_Q_B: case DT_K_B: case DT_V_B: *scale = 0.1f; break;
    default: *scale = 1.0f / sqrtf((float)s->shape[1]); break; /* fan_in = columns */
    }
}

/* ---------------------------------------------------------------- writing */

static int write_tensor(FILE *f, const char *path, const diffu_tensor_spec *s, const diffu_mkmodel_opts *o,
                        diffu_pool *pool, void *buf, size_t buf_elems, diffu_err *err) {
    uint64_t n = (uint64_t)s->shape[0] * (uint64_t)(s->ndim == 2 ? s->shape[1] : 1);
    gen_ctx c;
    c.key = mix64(o->seed) ^ name_hash(s->name);
    role_scale(s, &c.scale, &c.offset);
    c.dt = o->dtype;
    c.out = buf;
    for (uint64_t first = 0; first < n; first += buf_elems) {
        c.first = first;
        c.n = (size_t)(n - first < buf_elems ? n - first : buf_elems);
        c.per = 1 << 16;
        diffu_pool_run(pool, gen_task, &c, (int)((c.n + c.per - 1) / c.per));
        if (fwrite(buf, diffu_dtype_size(o->dtype), c.n, f) != c.n)
            return diffu_err_set(err, "%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}

int diffu_mkmodel_write(const char *dir, const diffu_mkmodel_opts *o, diffu_err *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return diffu_err_set(err, "%s: cannot create: %s", dir, strerror(errno));
    char path[4096];
    diffu_config cfg = o->cfg;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "%s",
             o->dtype == DIFFU_BF16 ? "bfloat16" : o->dtype == DIFFU_F16 ? "float16" : "float32");
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (diffu_config_write(path, &cfg, err)) return -1;
    /* read it back through the loader's own validation */
    diffu_config check;
    if (diffu_config_load(path, &check, err)) return -1;
    if (o->config_only) return 0;

    int nt = diffu_tensor_count(&cfg);
    diffu_tensor_spec *specs = diffu_xcalloc((size_t)nt, sizeof *specs);
    int *shard_of = diffu_xcalloc((size_t)nt, sizeof *shard_of);
    uint64_t limit = o->shard_bytes ? o->shard_bytes : (4ull << 30), cur = 0, total = 0;
    int n_shards = 1;
    for (int i = 0; i < nt; i++) {
        diffu_tensor_spec_at(&cfg, i, &specs[i]);
        uint64_t b = (uint64_t)specs[i].shape[0] * (uint64_t)(specs[i].ndim == 2 ? specs[i].shape[1] : 1) *
                     diffu_dtype_size(o->dtype);
        if (cur > 0 && cur + b > limit) {
            n_shards++;
            cur = 0;
        }
        shard_of[i] = n_shards - 1;
        cur += b;
        total += b;
    }
    diffu_pool *pool = diffu_pool_create(o->threads > 0 ? o->threads : diffu_affinity_cpus());
    size_t buf_elems = 1 << 22;
    void *buf = diffu_xmalloc(buf_elems * 4);
    int rc = -1;
    FILE *idx = NULL;
    char idx_path[4096];
    if (n_shards > 1) {
        snprintf(idx_path, sizeof idx_path, "%s/model.safetensors.index.json", dir);
        idx = fopen(idx_path, "w");
        if (!idx) {
            diffu_err_set(err, "%s: cannot create: %s", idx_path, strerror(errno));
            goto out;
        }
        fprintf(idx, "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {", (unsigned long long)total);
    } else {
        /* a stale index from an earlier sharded run would shadow the new file */
        snprintf(idx_path, sizeof idx_path, "%s/model.safetensors.index.json", dir);
        remove(idx_path);
    }
    for (int sh = 0; sh < n_shards; sh++) {
        char fname[64];
        if (n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", sh + 1, n_shards);
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        int first = -1, count = 0;
        for (int i = 0; i < nt; i++)
            if (shard_of[i] == sh) {
                if (first < 0) first = i;
                count++;
            }
        diffu_st_tensor *hdr = diffu_xcalloc((size_t)count, sizeof *hdr);
        for (int k = 0; k < count; k++) {
            const diffu_tensor_spec *s = &specs[first + k];
            hdr[k].name = (char *)s->name;
            hdr[k].dtype = o->dtype;
            hdr[k].ndim = s->ndim;
            hdr[k].shape[0] = s->shape[0];
            hdr[k].shape[1] = s->shape[1];
        }
        size_t hsize;
        uint8_t *h = diffu_st_make_header(hdr, (size_t)count, &hsize);
        free(hdr);
        FILE *f = fopen(path, "wb");
        if (!f) {
            free(h);
            diffu_err_set(err, "%s: cannot create: %s", path, strerror(errno));
            goto out;
        }
        int bad = fwrite(h, 1, hsize, f) != hsize;
        free(h);
        if (bad) diffu_err_set(err, "%s: write failed: %s", path, strerror(errno));
        for (int k = 0; k < count && !bad; k++) {
            bad = write_tensor(f, path, &specs[first + k], o, pool, buf, buf_elems, err) != 0;
            if (!bad && idx)
                fprintf(idx, "%s\n    \"%s\": \"%s\"", (first + k) ? "," : "", specs[first + k].name, fname);
        }
        if (fclose(f) != 0 && !bad) {
            diffu_err_set(err, "%s: write failed: %s", path, strerror(errno));
            bad = 1;
        }
        if (bad) goto out;
        DLOG_INFO("wrote %s (%d tensors)", path, count);
    }
    if (idx) {
        fprintf(idx, "\n  }\n}\n");
        if (fclose(idx) != 0) {
            idx = NULL;
            diffu_err_set(err, "%s: write failed: %s", idx_path, strerror(errno));
            goto out;
        }
        idx = NULL;
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
    }
    rc = 0;
out:
    if (idx) fclose(idx);
    free(buf);
    diffu_pool_free(pool);
    free(specs);
    free(shard_of);
    return rc;
}
