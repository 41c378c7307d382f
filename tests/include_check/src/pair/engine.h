#pragma once
#include "pair/tape.h"
