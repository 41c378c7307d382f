#include "pair/tape.h"
