/* Must NOT build: model/ (pure computation) may not see the sampler. */
#include "sampler.h"
int forbidden_model_sampling;
