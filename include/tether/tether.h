// Everything in one include.
#ifndef TETHER_TETHER_H_
#define TETHER_TETHER_H_

#include "tether/attach.h"
#include "tether/bloom_filter.h"
#include "tether/btf.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/graph.h"
#include "tether/graph_metrics.h"
#include "tether/insn.h"
#include "tether/lifetime.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/map_batch.h"
#include "tether/map_in_map.h"
#include "tether/mmap_array.h"
#include "tether/percpu.h"
#include "tether/perf_reader.h"
#include "tether/pin.h"
#include "tether/prog_array.h"
#include "tether/program.h"
#include "tether/queue.h"
#include "tether/ref_counted.h"
#include "tether/ringbuf.h"
#include "tether/tail_call_site.h"
#include "tether/typed_map.h"
#include "tether/user_ringbuf.h"
#include "tether/usdt.h"

#endif  // TETHER_TETHER_H_
