#pragma once
#include "base/base.h"
// Planted: tape includes engine, the layer above it in the same directory, by a relative name.
#include "engine.h"
