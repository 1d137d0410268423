/* Must NOT build: base/ sees nothing of diffu above it. */
#include "tokenizer.h"
int forbidden_base_model;
