// A kernel that knows a feature but refuses it here (a hardening policy, a
// lockdown, an LSM or seccomp rule), played through the syscall layer's
// fault hook: probes answer "refused here" rather than "missing", and
// loads say which object, map or program the kernel refused, with the
// errno and the probe's reading, and leave nothing behind.
#include <sys/stat.h>

#include <initializer_list>
#include <string>

#include "absl/strings/match.h"
#include "features/probe_internal.h"
#include "sys/bpf.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/probe.h"

using namespace tether;

namespace {

// Refuses arena maps and every tracing program with EPERM while it lives,
// as the hardened 6.18 hosts do. Probes forget their answers on the way
// in and out, so that neither this test nor the next one sees stale ones.
class RefusingKernel {
 public:
  RefusingKernel() {
    probe::testing::ForgetAnswers();
    sys::testing::RefuseMapType(sys::uapi::kMapTypeArena, EPERM);
    sys::testing::RefuseProgramType(BPF_PROG_TYPE_TRACING, sys::testing::kAnyAttachType, EPERM);
  }
  ~RefusingKernel() {
    sys::testing::ClearRefusals();
    probe::testing::ForgetAnswers();
  }
};

std::string CorpusObject(const std::string& file) {
  for (std::string dir : {std::string(TETHER_SOURCE_DIR) + "/test/corpus",
                          std::string(TETHER_SOURCE_DIR) + "/../shared/corpus"}) {
    struct stat st;
    if (stat((dir + "/" + file).c_str(), &st) == 0) return dir + "/" + file;
  }
  return "";
}

}  // namespace

TEST_CASE("probes tell a refused feature from a missing one", "[probe][refusal]") {
  RefusingKernel kernel;
  absl::Status arena = probe::HaveMapType(sys::uapi::kMapTypeArena);
  INFO(arena.ToString());
  CHECK(probe::AnswerOf(arena) == probe::Answer::kRefused);
  CHECK(probe::Unusable(arena));
  CHECK_THAT(std::string(arena.message()),
             Catch::Contains("arena") && Catch::Contains("EPERM") &&
                 Catch::Contains("refuses them here") && Catch::Contains(probe::KernelRelease()));

  absl::Status iter = probe::HaveIterator("bpf_map_elem");
  INFO(iter.ToString());
  CHECK(probe::AnswerOf(iter) == probe::Answer::kRefused);
  CHECK_THAT(std::string(iter.message()), Catch::Contains("bpf_map_elem") && Catch::Contains("5.9"));
  CHECK(probe::AnswerOf(probe::HaveLinkKind(probe::LinkKind::kIter)) == probe::Answer::kRefused);
  CHECK(probe::AnswerOf(probe::HaveTrampolines()) == probe::Answer::kRefused);

  // What the refusal does not touch keeps its real answer, and a missing
  // type stays missing.
  CHECK(probe::AnswerOf(probe::HaveMapType(BPF_MAP_TYPE_HASH)) == probe::Answer::kPresent);
  CHECK(probe::AnswerOf(probe::HaveMapType(0x7777)) == probe::Answer::kMissing);
  CHECK(probe::AnswerOf(probe::HaveProgramType(BPF_PROG_TYPE_SOCKET_FILTER)) ==
        probe::Answer::kPresent);
  // A PermissionDenied that no probe marked is no answer.
  CHECK(probe::AnswerOf(absl::PermissionDeniedError("EPERM")) == probe::Answer::kCouldNotRun);

  std::string report = probe::Report();
  CHECK_THAT(report, Catch::Contains("map_type:arena: refused here: ") &&
                         Catch::Contains("map_type:hash: present\n") &&
                         Catch::Contains("iterator:bpf_map_elem: refused here: "));
}

// Loads `path` on a kernel refusing arena maps and tracing programs, and
// checks the error: PermissionDenied naming each of `names`, and no fd left.
static void ExpectRefusedLoad(const std::string& path, std::initializer_list<const char*> names) {
  auto spec = CollectionSpec::FromFile(path);
  REQUIRE(spec.ok());
  RefusingKernel kernel;
  size_t fds = testing::CountOpenFds();
  auto coll = Collection::Load(*spec);
  REQUIRE_FALSE(coll.ok());
  INFO(coll.status().ToString());
  CHECK(absl::IsPermissionDenied(coll.status()));
  std::string message(coll.status().message());
  CHECK_THAT(message, Catch::Contains("refused by this kernel (EPERM)"));
  for (const char* name : names) CHECK_THAT(message, Catch::Contains(name));
  CHECK(testing::CountOpenFds() == fds);
}

TEST_CASE("a load the kernel refuses names the object, the map, the errno and the probe",
          "[collection][refusal]") {
  std::string path = CorpusObject("arena-el.elf");
  if (path.empty()) TETHER_SKIP_OR_FAIL("corpus object arena-el.elf not found");
  ExpectRefusedLoad(path, {"arena-el.elf", "map 'arena'", "probe map_type:arena: refused here"});
}

TEST_CASE("a tracing program the kernel refuses: the error names it and the iterator's probe",
          "[collection][refusal]") {
  ExpectRefusedLoad(testing::BpfObjectPath("iter_dump"),
                    {"iter_dump.bpf.o", "dump_values", "probe iterator:bpf_map_elem: refused here"});
}

TEST_CASE("the real kernel's answer for arena maps and map-element iterators is one of three",
          "[probe][refusal]") {
  // Whatever this kernel is, each probe gives an answer, never "could not
  // run" as root; and a load agrees with it.
  for (const absl::Status& st :
       {probe::HaveMapType(sys::uapi::kMapTypeArena), probe::HaveIterator("bpf_map_elem")}) {
    INFO(st.ToString());
    CHECK(probe::AnswerOf(st) != probe::Answer::kCouldNotRun);
  }
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("iter_dump"));
  REQUIRE(spec.ok());
  auto coll = Collection::Load(*spec);
  INFO(coll.status().ToString());
  switch (probe::AnswerOf(probe::HaveIterator("bpf_map_elem"))) {
    case probe::Answer::kPresent:
      CHECK(coll.ok());
      break;
    case probe::Answer::kRefused:
      CHECK(absl::IsPermissionDenied(coll.status()));
      CHECK_THAT(std::string(coll.status().message()), Catch::Contains("refused by this kernel"));
      break;
    default:
      CHECK_FALSE(coll.ok());
      break;
  }
}
