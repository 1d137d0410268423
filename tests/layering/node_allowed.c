/* Must build (the control): node/ may use the sampler, the wire codec and the model. */
#include "sampler_vp.h"
#include "wire.h"
#include "forward.h"
#include "comm.h"
int allowed_node_includes;
