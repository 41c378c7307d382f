#pragma once
#include "pair/engine.h"
// A layer two below: allowed, the dependencies are transitive.
#include "base/base.h"
