// Everything in one include.
#ifndef TETHER_TETHER_H_
#define TETHER_TETHER_H_

#include "tether/attach.h"
#include "tether/graph.h"
#include "tether/insn.h"
#include "tether/lifetime.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/pin.h"
#include "tether/prog_array.h"
#include "tether/program.h"
#include "tether/ref_counted.h"

#endif  // TETHER_TETHER_H_
