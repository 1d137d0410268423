/* checkpoint.c — see checkpoint.h. */
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"
#include "json.h"
#include "tensor_names.h"

struct diffu_ckpt {
    char *dir;
    diffu_config cfg;
    diffu_st_file **files;
    int n_files;
};

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = diffu_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* lstat: a dangling symlink (a Hugging Face cache snapshot copied without its
 * blobs) counts as present, so opening it reports the real error. */
static int file_exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

static int add_file(diffu_ckpt *c, const char *name, diffu_err *err) {
    for (int i = 0; i < c->n_files; i++) {
        const char *base = strrchr(c->files[i]->path, '/');
        if (!strcmp(base ? base + 1 : c->files[i]->path, name)) return i;
    }
    if (strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
        return diffu_err_set(err, "shard name '%s' must be a plain file name in the model directory", name);
    char *path = join(c->dir, name);
    diffu_st_file *f;
    int r = diffu_st_open(path, &f, err);
    free(path);
    if (r) return -1;
    c->files = diffu_xrealloc(c->files, (size_t)(c->n_files + 1) * sizeof *c->files);
    c->files[c->n_files] = f;
    return c->n_files++;
}

static int load_index(diffu_ckpt *c, const char *index_path, diffu_err *err) {
    diffu_json_doc *doc = diffu_json_parse_file(index_path, err);
    if (!doc) return -1;
    int rc = -1;
    const diffu_json *root = diffu_json_root(doc);
    const diffu_json *wm = diffu_json_get(root, "weight_map");
    if (!wm || wm->type != DJ_OBJ) {
        diffu_err_set(err, "%s: missing object 'weight_map'", index_path);
        goto out;
    }
    for (size_t i = 0; i < wm->u.kids.n; i++) {
        const diffu_json *v = wm->u.kids.items[i];
        if (v->type != DJ_STR) {
            diffu_err_set(err, "%s: weight_map['%s'] is not a file name", index_path, wm->u.kids.keys[i]);
            goto out;
        }
        const char *fname = v->u.str.s;
        if (!*fname || v->u.str.len != strlen(fname) || strchr(fname, '/') || !strcmp(fname, ".") || !strcmp(fname, "..")) {
            diffu_err_set(err, "%s: weight_map['%s']: shard name '%s' must be a plain file name in the model directory",
                          index_path, wm->u.kids.keys[i], fname);
            goto out;
        }
        int fi = add_file(c, fname, err);
        if (fi < 0) goto out;
        if (!diffu_st_find(c->files[fi], wm->u.kids.keys[i])) {
            diffu_err_set(err, "%s: tensor '%s' is listed in %s but missing from that file", c->files[fi]->path,
                          wm->u.kids.keys[i], index_path);
            goto out;
        }
    }
    rc = 0;
out:
    diffu_json_free(doc);
    return rc;
}

const diffu_st_tensor *diffu_ckpt_tensor(const diffu_ckpt *c, const char *name, const char **file) {
    for (int i = 0; i < c->n_files; i++) {
        const diffu_st_tensor *t = diffu_st_find(c->files[i], name);
        if (t) {
            if (file) *file = c->files[i]->path;
            return t;
        }
    }
    return NULL;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static int check_tensors(diffu_ckpt *c, diffu_err *err) {
    const diffu_config *cfg = &c->cfg;
    int n = diffu_tensor_count(cfg);
    for (int i = 0; i < n; i++) {
        diffu_tensor_spec s;
        diffu_tensor_spec_at(cfg, i, &s);
        const char *file = NULL;
        const diffu_st_tensor *t = diffu_ckpt_tensor(c, s.name, &file);
        if (!t) return diffu_err_set(err, "%s: tensor '%s' is missing from the checkpoint", c->dir, s.name);
        int same = t->ndim == s.ndim;
        for (int d = 0; same && d < s.ndim; d++) same = t->shape[d] == s.shape[d];
        if (!same) {
            char got[96], want[96];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(want, sizeof want, s.ndim, s.shape);
            if ((s.role == DT_EMBED || s.role == DT_LM_HEAD) && t->ndim == 2 && t->shape[1] == s.shape[1])
                return diffu_err_set(err, "%s: tensor '%s' has %lld vocabulary rows but config.json vocab_size is %d",
                                     file, s.name, (long long)t->shape[0], cfg->vocab);
            return diffu_err_set(err, "%s: tensor '%s' has shape %s, config.json implies %s", file, s.name, got, want);
        }
    }
    /* report tensors the model does not use */
    int unknown = 0;
    char list[512] = "";
    for (int f = 0; f < c->n_files; f++)
        for (size_t k = 0; k < c->files[f]->n_tensors; k++) {
            const char *name = c->files[f]->tensors[k].name;
            int known = 0;
            for (int i = 0; i < n && !known; i++) {
                diffu_tensor_spec s;
                diffu_tensor_spec_at(cfg, i, &s);
                known = !strcmp(s.name, name);
            }
            if (!known) {
                if (unknown < 4) {
                    size_t l = strlen(list);
                    snprintf(list + l, sizeof list - l, "%s%s", unknown ? ", " : "", name);
                }
                unknown++;
            }
        }
    if (unknown) DLOG_WARN("%s: %d tensor(s) not used by the model are ignored: %s%s", c->dir, unknown, list, unknown > 4 ? ", ..." : "");
    return 0;
}

int diffu_ckpt_open(const char *dir, diffu_ckpt **out, diffu_err *err) {
    *out = NULL;
    diffu_ckpt *c = diffu_xcalloc(1, sizeof *c);
    c->dir = diffu_xstrdup(dir);
    char *cfgp = join(dir, "config.json");
    char *idx = join(dir, "model.safetensors.index.json");
    char *single = join(dir, "model.safetensors");
    int rc = -1;
    struct stat dst;
    if (stat(dir, &dst) != 0) {
        diffu_err_set(err, "%s: model directory does not exist", dir);
        goto out;
    }
    if (!file_exists(cfgp)) {
        diffu_err_set(err, "%s: missing config.json", dir);
        goto out;
    }
    if (diffu_config_load(cfgp, &c->cfg, err)) goto out;
    if (file_exists(idx)) {
        if (load_index(c, idx, err)) goto out;
    } else if (file_exists(single)) {
        if (add_file(c, "model.safetensors", err) < 0) goto out;
    } else {
        diffu_err_set(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
        goto out;
    }
    /* the same tensor in two shards is ambiguous */
    for (int a = 0; a < c->n_files; a++)
        for (size_t k = 0; k < c->files[a]->n_tensors; k++)
            for (int b = a + 1; b < c->n_files; b++)
                if (diffu_st_find(c->files[b], c->files[a]->tensors[k].name)) {
                    diffu_err_set(err, "%s: tensor '%s' appears in both %s and %s", dir, c->files[a]->tensors[k].name,
                                  c->files[a]->path, c->files[b]->path);
                    goto out;
                }
    if (check_tensors(c, err)) goto out;
    rc = 0;
out:
    free(cfgp);
    free(idx);
    free(single);
    if (rc) diffu_ckpt_close(c);
    else *out = c;
    return rc;
}

void diffu_ckpt_close(diffu_ckpt *c) {
    if (!c) return;
    for (int i = 0; i < c->n_files; i++) diffu_st_close(c->files[i]);
    free(c->files);
    free(c->dir);
    free(c);
}

const diffu_config *diffu_ckpt_config(const diffu_ckpt *c) { return &c->cfg; }

void diffu_ckpt_get_stats(const diffu_ckpt *c, diffu_ckpt_stats *s) {
    memset(s, 0, sizeof *s);
    int n = diffu_tensor_count(&c->cfg);
    for (int i = 0; i < n; i++) {
        diffu_tensor_spec sp;
        diffu_tensor_spec_at(&c->cfg, i, &sp);
        const diffu_st_tensor *t = diffu_ckpt_tensor(c, sp.name, NULL);
        if (!t) continue;
        s->params += diffu_st_numel(t);
        s->bytes_by_dtype[t->dtype] += t->end - t->begin;
        s->bytes_total += t->end - t->begin;
        s->n_tensors++;
    }
    s->n_files = c->n_files;
}

uint64_t diffu_ckpt_fingerprint(const diffu_ckpt *c) {
    uint64_t h = DIFFU_FNV64_INIT;
    const diffu_config *g = &c->cfg;
    int ints[] = {g->hidden, g->inter, g->n_layers, g->n_heads, g->n_kv_heads, g->vocab, g->tie_embed};
    h = diffu_fnv64(h, ints, sizeof ints);
    h = diffu_fnv64(h, &g->rope_theta, sizeof g->rope_theta);
    h = diffu_fnv64(h, &g->rms_eps, sizeof g->rms_eps);
    int n = diffu_tensor_count(g);
    for (int i = 0; i < n; i++) {
        diffu_tensor_spec sp;
        diffu_tensor_spec_at(g, i, &sp);
        const diffu_st_tensor *t = diffu_ckpt_tensor(c, sp.name, NULL);
        if (!t) continue;
        h = diffu_fnv64(h, t->name, strlen(t->name));
        h = diffu_fnv64(h, &t->dtype, sizeof t->dtype);
        uint64_t sz = t->end - t->begin;
        h = diffu_fnv64(h, &sz, sizeof sz);
    }
    return h;
}
