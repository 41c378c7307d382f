#include "pair/engine.h"
// Found nowhere in the tree (a third-party header): belongs to no layer, not checked.
#include "third_party/lib.h"
