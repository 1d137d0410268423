/* Must NOT build: sampling/ (logits in, tokens out) may not see the model. */
#include "forward.h"
int forbidden_sampling_model;
