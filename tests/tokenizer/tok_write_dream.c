/* tok_write_dream.c — test helper: write the Dream tokenizer files (what
 * `diffu mkmodel` gives its models) from the cached Qwen2.5 base vocabulary.
 *   tok_write_dream BASE_TOKENIZER_JSON OUT_DIR */
#include <stdio.h>

#include "tokenizer.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: tok_write_dream BASE_TOKENIZER_JSON OUT_DIR\n");
        return 2;
    }
    diffu_err err;
    if (diffu_tokenizer_write_dream(argv[1], argv[2], &err) < 0) {
        fprintf(stderr, "tok_write_dream: %s\n", err.msg);
        return 1;
    }
    return 0;
}
