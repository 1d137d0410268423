/* Must NOT build: coordinator/ (rank 0, no MPI) may not see node/. */
#include "comm.h"
int forbidden_coordinator_node;
