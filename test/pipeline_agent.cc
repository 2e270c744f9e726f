// One "agent version" for the cross-process replacement proof
// (pipeline_replace_test.cc): adopts the pipeline a previous version left
// pinned, replaces it with its own build, says so on stdout, and exits
// when its stdin closes (the next version has taken over by then).
//
//   pipeline_agent <object.o> <pin dir> <version>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tether/collection_spec.h"
#include "tether/replace.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s <object.o> <pin dir> <version>\n", argv[0]);
    return 2;
  }
  auto spec = tether::CollectionSpec::FromFile(argv[1]);
  if (!spec.ok()) {
    printf("error: %s\n", spec.status().ToString().c_str());
    return 1;
  }
  uint32_t version = static_cast<uint32_t>(strtoul(argv[3], nullptr, 10));
  absl::Status st = spec->SetVariable("version", version);
  auto running = st.ok() ? tether::Pipeline::AdoptPinned(*spec, argv[2], "entry")
                         : absl::StatusOr<tether::Pipeline>(st);
  if (running.ok()) {
    tether::ReplaceStats stats;
    st = tether::ReplacePipeline(*running, *spec, {}, &stats);
    if (st.ok()) {
      printf("ok kept=%u in_place=%u filled=%u\n", stats.maps_kept, stats.arrays_in_place,
             stats.slots_filled);
    }
  } else {
    st = running.status();
  }
  if (!st.ok()) printf("error: %s\n", st.ToString().c_str());
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  return st.ok() ? 0 : 1;
}
