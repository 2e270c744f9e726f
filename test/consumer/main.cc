// A program outside the tree that uses tether the two ways a project can:
// through the installed tether.pc, or as a meson subproject. check.sh
// builds it both ways and runs it.
#include <cstdio>
#include "tether/tether.h"
int main() {
  auto m = tether::Map::Create({.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8,
                                .max_entries = 1, .name = "consumer"});
  if (!m.ok()) { fprintf(stderr, "%s\n", m.status().ToString().c_str()); return 1; }
  if (!m->Update(uint32_t{0}, uint64_t{42}).ok()) return 1;
  uint64_t v = 0;
  if (!m->Lookup(uint32_t{0}, &v).ok() || v != 42) return 1;
  printf("tether consumer: map id %u holds %lu\n", m->id(), (unsigned long)v);
  return 0;
}
