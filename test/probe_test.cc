#include "test_support.h"
#include "tether/probe.h"

using namespace tether;

TEST_CASE("probes report what this kernel has", "[probe]") {
  CHECK(probe::HaveMapType(BPF_MAP_TYPE_HASH).ok());
  CHECK(probe::HaveMapType(BPF_MAP_TYPE_RINGBUF).ok());
  CHECK(probe::HaveMapType(BPF_MAP_TYPE_ARRAY_OF_MAPS).ok());
  CHECK(probe::HaveMapType(BPF_MAP_TYPE_TASK_STORAGE).ok());
  auto bogus = probe::HaveMapType(0x7777);
  CHECK(bogus.code() == absl::StatusCode::kUnimplemented);
  CHECK(probe::HaveProgramType(BPF_PROG_TYPE_XDP).ok());
  CHECK(probe::HaveProgramType(BPF_PROG_TYPE_SOCKET_FILTER).ok());
  CHECK(probe::HaveProgramType(0x7777).code() == absl::StatusCode::kUnimplemented);
  CHECK(probe::HaveHelper(BPF_PROG_TYPE_SOCKET_FILTER, BPF_FUNC_map_lookup_elem).ok());
  // Socket filters may not redirect packets.
  CHECK(probe::HaveHelper(BPF_PROG_TYPE_SOCKET_FILTER, BPF_FUNC_redirect).code() ==
        absl::StatusCode::kUnimplemented);
  CHECK(probe::HaveVmlinuxBtf().ok());
  // The kprobe probe agrees with sysfs, whichever way this kernel is built.
  bool sysfs = access("/sys/bus/event_source/devices/kprobe/type", R_OK) == 0;
  CHECK(probe::HaveKprobes().ok() == sysfs);
  CHECK_THAT(probe::Report(), Catch::Contains("map_type:hash: present\n"));
}
