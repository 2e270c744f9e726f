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

#include <vector>

#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/prog_array.h"
#include "tether/replace.h"

namespace {

// The build this agent replaces lives in other processes: open its
// programs by id (the link's program and every entry of the adopted
// program arrays) so their loader miss counters can be read afterwards.
absl::StatusOr<std::vector<tether::Program>> OpenOldBuild(const tether::Pipeline& running) {
  std::vector<tether::Program> out;
  auto entry_id = running.link.ProgramId();
  if (!entry_id.ok()) return entry_id.status();
  auto entry = tether::Program::FromId(*entry_id);
  if (!entry.ok()) return entry.status();
  out.push_back(*std::move(entry));
  for (const auto& [name, map] : running.maps) {
    if (map.info().type != BPF_MAP_TYPE_PROG_ARRAY) continue;
    auto array = tether::ProgramArray::FromMap(map, false);
    if (!array.ok()) return array.status();
    for (uint32_t slot = 0; slot < map.info().max_entries; ++slot) {
      auto id = array->Get(slot);
      if (!id.ok()) return id.status();
      if (!id->has_value()) continue;
      auto prog = tether::Program::FromId(**id);
      if (!prog.ok()) return prog.status();
      out.push_back(*std::move(prog));
    }
  }
  return out;
}

absl::StatusOr<uint64_t> SumLoaderMisses(const std::vector<tether::Program>& programs) {
  uint64_t sum = 0;
  size_t sites = 0;
  for (const tether::Program& prog : programs) {
    auto read = tether::TailCallMisses(prog);
    if (!read.ok()) return read.status();
    for (const tether::TailCallSite& site : *read) sum += site.misses;
    sites += read->size();
  }
  // entry, stage_one and stage_two carry a site each: none means no counters.
  if (sites != 3) {
    return absl::FailedPreconditionError("the old build shows " + std::to_string(sites) +
                                         " tail-call sites with loader counters, not 3");
  }
  return sum;
}

}  // namespace

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
    auto old = OpenOldBuild(*running);
    tether::ReplaceStats stats;
    st = old.ok() ? tether::ReplacePipeline(*running, *spec, {}, &stats) : old.status();
    // ReplacePipeline has switched and waited: the old build's counts are final.
    auto loader_misses = st.ok() ? SumLoaderMisses(*old) : absl::StatusOr<uint64_t>(st);
    if (!loader_misses.ok()) st = loader_misses.status();
    if (st.ok()) {
      printf("ok kept=%u in_place=%u filled=%u loader_misses=%llu\n", stats.maps_kept,
             stats.arrays_in_place, stats.slots_filled,
             static_cast<unsigned long long>(*loader_misses));
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
