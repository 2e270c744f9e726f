// Replays every input the fuzzers once crashed on (test/fuzz/regressions/)
// through the same bodies the fuzzers run, in every build. Each input has
// a NAME.expect beside it: "accepted", or "refused: <text the error must
// contain>", so a replay checks the answer, not only that nothing crashed.
#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "fuzz/fuzz_bodies.h"

namespace {

std::vector<std::string> Inputs(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name[0] == '.' || absl::EndsWith(name, ".expect")) continue;
      out.push_back(dir + "/" + name);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

template <typename Body>
int Replay(const std::string& target, Body body) {
  std::string dir = std::string(TETHER_SOURCE_DIR) + "/test/fuzz/regressions/" + target;
  int replayed = 0;
  for (const std::string& input : Inputs(dir)) {
    INFO("regression input " << input);
    std::string expect = ReadAll(input + ".expect");
    REQUIRE_FALSE(expect.empty());  // every input says what the answer must be
    while (!expect.empty() && (expect.back() == '\n' || expect.back() == ' ')) expect.pop_back();
    std::string bytes = ReadAll(input);
    absl::Status st = body(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()),
                                               bytes.size()));
    INFO("status: " << st.ToString());
    if (expect == "accepted") {
      CHECK(st.ok());
    } else {
      absl::string_view want = expect;
      REQUIRE(absl::ConsumePrefix(&want, "refused: "));
      CHECK_FALSE(st.ok());
      CHECK_THAT(std::string(st.message()), Catch::Contains(std::string(want)));
    }
    ++replayed;
  }
  return replayed;
}

}  // namespace

TEST_CASE("fuzzer regressions replay with the recorded answer", "[fuzz][elf][btf][core]") {
  REQUIRE(tether::fuzz::SetCoreLocalObjects(
              tether::fuzz::DefaultCoreLocalObjects(TETHER_SOURCE_DIR)).ok());
  int n = Replay("elf", tether::fuzz::FuzzElf);
  n += Replay("btf", tether::fuzz::FuzzBtf);
  n += Replay("core", tether::fuzz::FuzzCore);
  CHECK(n > 0);
}
