/* Must NOT build: node/ (every stage) may not see coordinator/ (rank 0). */
#include "scheduler.h"
int forbidden_node_coordinator;
