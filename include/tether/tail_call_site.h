// A bpf_tail_call site and how often its tail call missed.
//
// The collection loader inserts a counter after every bpf_tail_call (see
// docs/lifecycle.md, "Tail-call miss counters"); these records describe the
// sites and carry the counts. Kept free of handle types so that the object
// graph (tether/graph.h) can carry them on program nodes.
#ifndef TETHER_TAIL_CALL_SITE_H_
#define TETHER_TAIL_CALL_SITE_H_

#include <cstdint>
#include <string>

namespace tether {

struct TailCallSite {
  // The program that contains the call, and the function (the program's
  // own or a sub-program) it sits in. Read from outside the loading
  // process these come from the site table and may be truncated.
  std::string program;
  std::string function;
  // Index of the call in the loaded program's instructions: the numbering
  // of the verifier log (counter instructions included).
  uint32_t insn = 0;
  // Source of the call from line_info: base name of the file, and line.
  // Empty and 0 when the object has no BTF.
  std::string file;
  uint32_t line = 0;
  // The program array the call goes through, when the loader could tell
  // (the map loaded into R2 in the same straight-line code); empty if not.
  std::string array;
  uint32_t array_id = 0;  // its kernel id; 0 when unknown
  // The site's slot in the counter map.
  uint32_t index = 0;
  // Times execution fell through the call: the slot was empty, the index
  // out of range, the array cleared, or the 33-call limit reached.
  uint64_t misses = 0;
};

}  // namespace tether

#endif  // TETHER_TAIL_CALL_SITE_H_
