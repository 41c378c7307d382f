#pragma once
// Planted: base, the lowest layer, includes the top one.
#include "top/top.h"
