// A hostile object file: names that try to steer pins out of the pin
// directory, and names that carry terminal escapes or bytes that are not
// UTF-8. The objects are test/bpf/hostile_*.bpf.c with their names
// overwritten in the ELF's symbol and string tables by the test.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "base/json_internal.h"
#include "cli_support.h"
#include "base/printable.h"
#include "map_test_support.h"
#include "test_programs.h"
#include "test_support.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/map.h"
#include "tether/pin.h"
#include "tether/graph.h"
#include "tether/prog_array.h"

using namespace tether;

namespace {

// The object compiled from test/bpf/<object>.bpf.c with every occurrence of
// each placeholder replaced by a name of the same length, written to a file
// of its own. Returns the file's path; the caller removes it.
std::string PatchedObject(const std::string& object,
                          const std::vector<std::pair<std::string, std::string>>& names) {
  std::vector<uint8_t> bytes = testing::ReadFileBytes(testing::BpfObjectPath(object));
  std::string data(bytes.begin(), bytes.end());
  for (const auto& [placeholder, name] : names) {
    REQUIRE(placeholder.size() == name.size());
    size_t hits = 0;
    for (size_t at = data.find(placeholder); at != std::string::npos; at = data.find(placeholder, at)) {
      data.replace(at, name.size(), name);
      ++hits;
    }
    INFO(placeholder);
    REQUIRE(hits >= 1);  // at least the symbol table's string
  }
  static int counter = 0;
  std::string path = "/tmp/tether-hostile-" + std::to_string(getpid()) + "-" + std::to_string(++counter) + ".o";
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  REQUIRE(out.good());
  return path;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

using testing::CliResult;

CliResult RunTether(const std::string& args) { return testing::RunCli(args); }

bool IsValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = base::Utf8SequenceLength(absl::string_view(s).substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool HasControlBytes(const std::string& s, bool allow_layout) {
  for (unsigned char c : s) {
    if (allow_layout && (c == '\n' || c == '\t')) continue;
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Two tenants' pin directories under one temporary bpffs directory, and
// tenant_b's pinned hash map "victim", empty.
struct Tenants {
  testing::TempPinDir root;
  std::string a = root.Sub("tenant_a");
  std::string b = root.Sub("tenant_b");
  Map victim;

  Tenants() {
    victim = testing::MustCreate(BPF_MAP_TYPE_HASH, 4, 8, 4, 0, "victim");
    REQUIRE(victim.Pin(b + "/victim").ok());
  }
  bool VictimUntouched() const {
    uint32_t key = 0;
    uint64_t value = 0;
    return absl::IsNotFound(victim.Lookup(key, &value));
  }
};

}  // namespace

TEST_CASE("pin names from an object are checked in one place", "[security][pin]") {
  for (const char* good : {"counters", "jmp_table", "a", "prog_entry", "\xc3\xa9t\xc3\xa9"}) {
    INFO(good);
    CHECK(ValidatePinName(good).ok());
  }
  CHECK(ValidatePinName(std::string(255, 'a')).ok());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "empty"},
      {".", "directory"},
      {"..", "directory"},
      {"../tenant_b/victim", "'/'"},
      {"a/b", "'/'"},
      {"a.b", "'.'"},
      {"red\x1b[31m", "control byte \\x1b"},
      {"bell\x07", "control byte \\x07"},
      {"csi\xc2\x9b", "C1 control"},
      {"bad\xff", "not UTF-8"},
      {"overlong\xc0\xaf", "not UTF-8"},
      {std::string(256, 'a'), "255"},
  };
  for (const auto& [name, why] : bad) {
    absl::Status st = ValidatePinName(name);
    INFO(base::Printable(name) << ": " << st.ToString());
    CHECK(absl::IsInvalidArgument(st));
    CHECK_THAT(std::string(st.message()), Catch::Contains(why));
    // The message itself is safe to print.
    CHECK_FALSE(HasControlBytes(std::string(st.message()), false));
    CHECK(IsValidUtf8(std::string(st.message())));
  }
}

TEST_CASE("a map named ../tenant_b/victim neither reuses nor plants another tenant's pin",
          "[security][pin][collection]") {
  Tenants t;
  std::string obj = PatchedObject("hostile_pins", {{"btf_pinned_name_18", "../tenant_b/victim"}});
  auto spec = CollectionSpec::FromFile(obj);
  unlink(obj.c_str());
  REQUIRE(spec.ok());
  REQUIRE(spec->maps.count("../tenant_b/victim") == 1);
  size_t fds = testing::CountOpenFds();
  CollectionOptions o;
  o.pin_dir = t.a;
  auto coll = Collection::Load(*spec, o);
  INFO(coll.status().ToString());
  REQUIRE(absl::IsInvalidArgument(coll.status()));
  CHECK_THAT(std::string(coll.status().message()),
             Catch::Contains("map '../tenant_b/victim'") && Catch::Contains("'/'"));
  // Nothing was made: no map, no pin, not even tenant_a's directory.
  CHECK(testing::CountOpenFds() == fds);
  CHECK_FALSE(Exists(t.a));
  CHECK(t.VictimUntouched());
}

TEST_CASE("a legacy map named ../tenant_b/planted pins nothing anywhere", "[security][pin][collection]") {
  Tenants t;
  std::string obj = PatchedObject("hostile_pins", {{"legacy_pinned_nam19", "../tenant_b/planted"}});
  auto spec = CollectionSpec::FromFile(obj);
  unlink(obj.c_str());
  REQUIRE(spec.ok());
  REQUIRE(spec->maps.at("../tenant_b/planted").pinning == PinType::kByName);
  CollectionOptions o;
  o.pin_dir = t.a;
  auto coll = Collection::Load(*spec, o);
  REQUIRE(absl::IsInvalidArgument(coll.status()));
  CHECK_FALSE(Exists(t.b + "/planted"));
  CHECK_FALSE(Exists(t.a));
  // A name with '/' in the middle would have made a subdirectory.
  std::string sub = PatchedObject("hostile_pins", {{"btf_pinned_name_18", "btf/pinned/name/18"}});
  auto spec2 = CollectionSpec::FromFile(sub);
  unlink(sub.c_str());
  REQUIRE(spec2.ok());
  auto coll2 = Collection::Load(*spec2, o);
  REQUIRE(absl::IsInvalidArgument(coll2.status()));
  CHECK_FALSE(Exists(t.a + "/btf"));
}

TEST_CASE("the unpatched object pins inside its own directory, and its program writes there",
          "[security][pin][collection]") {
  // The control for the tests above: the same object with honest names
  // loads, and a run of its program shows in the maps it pinned.
  Tenants t;
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("hostile_pins"));
  REQUIRE(spec.ok());
  CollectionOptions o;
  o.pin_dir = t.a;
  auto coll = Collection::Load(*spec, o);
  INFO(coll.status().ToString());
  REQUIRE(coll.ok());
  CHECK(Exists(t.a + "/btf_pinned_name_18"));
  CHECK(Exists(t.a + "/legacy_pinned_nam19"));
  testing::RunValue(coll->program("writer"));
  auto pinned = Map::LoadPinned(t.a + "/btf_pinned_name_18");
  REQUIRE(pinned.ok());
  uint32_t key = 0;
  uint64_t value = 0;
  REQUIRE(pinned->Lookup(key, &value).ok());
  CHECK(value == 42);
  CHECK(t.VictimUntouched());
}

TEST_CASE("a symbolic link in the pin directory is not followed out of it", "[security][pin][collection]") {
  Tenants t;
  REQUIRE(mkdir(t.a.c_str(), 0700) == 0);
  std::string link = t.a + "/btf_pinned_name_18";
  INFO(strerror(errno));
  REQUIRE(symlink("../tenant_b/victim", link.c_str()) == 0);
  auto spec = CollectionSpec::FromFile(testing::BpfObjectPath("hostile_pins"));
  REQUIRE(spec.ok());
  CollectionOptions o;
  o.pin_dir = t.a;
  auto coll = Collection::Load(*spec, o);
  INFO(coll.status().ToString());
  REQUIRE(absl::IsPermissionDenied(coll.status()));
  CHECK_THAT(std::string(coll.status().message()),
             Catch::Contains("symbolic link") && Catch::Contains("btf_pinned_name_18"));
  CHECK(t.VictimUntouched());
  // A link that stays inside the directory is followed, as before.
  REQUIRE(unlink(link.c_str()) == 0);
  Map own = testing::MustCreate(BPF_MAP_TYPE_HASH, 4, 8, 4);
  REQUIRE(own.Pin(t.a + "/own_counter").ok());
  REQUIRE(symlink("own_counter", link.c_str()) == 0);
  auto ok = Collection::Load(*spec, o);
  INFO(ok.status().ToString());
  REQUIRE(ok.ok());
  CHECK(ok->map("btf_pinned_name_18").id() == own.id());
}

TEST_CASE("tether load refuses a hostile pin name and leaves nothing behind", "[security][cli]") {
  Tenants t;
  std::string obj = PatchedObject("hostile_pins", {{"btf_pinned_name_18", "../tenant_b/victim"}});
  CliResult r = RunTether("load " + obj + " --pin-dir " + t.a);
  unlink(obj.c_str());
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("../tenant_b/victim") && Catch::Contains("refused"));
  CHECK_THAT(r.out, !Catch::Contains("pinned at"));
  CHECK_FALSE(Exists(t.a));
  CHECK(t.VictimUntouched());
}

TEST_CASE("tether load --pin-dir is all or nothing", "[security][cli]") {
  Tenants t;
  std::string deep = t.a + "/new/dir";
  SECTION("a name the CLI would pin is refused after the load pinned by name") {
    // The object's by-name pins are made by the load, in directories it
    // created; the CLI's own pin of cli_pinned_name_18 is refused next.
    std::string obj = PatchedObject("hostile_pins", {{"cli_pinned_name_18", "cli_pinned_name\x1b[J"}});
    CliResult r = RunTether("load " + obj + " --pin-dir " + deep);
    unlink(obj.c_str());
    INFO(base::Printable(r.out + r.err));
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("control byte \\x1b") && Catch::Contains("nothing was left pinned"));
    CHECK_FALSE(HasControlBytes(r.err, true));
    CHECK_FALSE(Exists(t.a));  // neither pins nor the directories it made
  }
  SECTION("a later pin path that exists already") {
    // Every map pins first; the program's pin path is taken.
    REQUIRE(mkdir(t.a.c_str(), 0700) == 0);
    REQUIRE(t.victim.Pin(t.a + "/prog_writer").ok());
    CliResult r = RunTether("load " + testing::BpfObjectPath("hostile_pins") + " --pin-dir " + t.a);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("prog_writer") && Catch::Contains("exists"));
    std::vector<std::string> left = *ListPins(t.a);
    CHECK(left == std::vector<std::string>{t.a + "/prog_writer"});
  }
  SECTION("the honest object pins everything") {
    CliResult r = RunTether("load " + testing::BpfObjectPath("hostile_pins") + " --pin-dir " + deep);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    auto pins = ListPins(deep);
    REQUIRE(pins.ok());
    CHECK(pins->size() == 4);  // three maps and the program
  }
}

TEST_CASE("names with terminal escapes and bad UTF-8 are printed as text", "[security][cli]") {
  // The kernel sees only the first 15 bytes of a name, which stay valid, so
  // the object loads and the whole name reaches the output.
  auto padded = [](std::string s, size_t n) {
    s.resize(n, '_');
    return s;
  };
  const std::string prog_name = padded(std::string("prog_name_place") + "\x1b]0;pwned\x07\x1b[2J\xff\xfe", 32);
  const std::string map_name = padded(std::string("plain_map_name_") + "\x9b" "31m\xc2\x9b" "1m\xe2\x80", 31);
  std::string obj = PatchedObject("hostile_names", {{"prog_name_placeholder_32_bytes_x", prog_name},
                                                    {"plain_map_name_placeholder_31_b", map_name}});
  CliResult inspect = RunTether("inspect " + obj);
  CliResult load = RunTether("load " + obj);
  CliResult json = RunTether("load " + obj + " --json");
  CliResult inspect_json = RunTether("inspect " + obj + " --json");
  unlink(obj.c_str());
  for (const CliResult* r : {&inspect, &load, &json, &inspect_json}) {
    INFO(base::Printable(r->out) << "\nstderr: " << base::Printable(r->err));
    CHECK(r->exit_code == 0);
    CHECK_FALSE(HasControlBytes(r->out, true));
    CHECK_FALSE(HasControlBytes(r->err, true));
    CHECK(IsValidUtf8(r->out));
    CHECK_THAT(r->out, !Catch::Contains("\xc2\x9b"));
  }
  CHECK_THAT(inspect.out, Catch::Contains("prog_name_place\\x1b]0;pwned\\x07\\x1b[2J\\xff\\xfe"));
  CHECK_THAT(load.out, Catch::Contains("plain_map_name_\\x9b31m\\xc2\\x9b1m\\xe2\\x80"));
  // JSON stays valid UTF-8: control characters as \u escapes, stray bytes
  // as the text \xNN.
  CHECK_THAT(json.out, Catch::Contains("prog_name_place\\u001b]0;pwned\\u0007\\u001b[2J\\\\xff\\\\xfe"));
  CHECK_THAT(json.out, Catch::Contains("plain_map_name_\\\\x9b31m\\u009b1m\\\\xe2\\\\x80"));
}

TEST_CASE("an error about a hostile name is printed as text", "[security][cli]") {
  // Without --pin-dir, a map pinned by name is refused, and the error names it.
  std::string obj = PatchedObject("hostile_pins", {{"btf_pinned_name_18", "btf\x1b[31mname_18xxx"}});
  CliResult r = RunTether("load " + obj);
  unlink(obj.c_str());
  INFO(base::Printable(r.err));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("btf\\x1b[31mname_18xxx") && Catch::Contains("pin_dir is empty"));
  CHECK_FALSE(HasControlBytes(r.err, true));
}

TEST_CASE("printable text and JSON strings escape what a terminal would act on", "[security]") {
  CHECK(base::Printable("a\x1b[31mb") == "a\\x1b[31mb");
  CHECK(base::Printable("tab\there") == "tab\\x09here");
  CHECK(base::Printable("back\\slash") == "back\\\\slash");
  CHECK(base::Printable("\xc3\xa9") == "\xc3\xa9");
  CHECK(base::Printable("\xc2\x9b" "2J") == "\\xc2\\x9b2J");
  CHECK(base::Printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // a surrogate
  CHECK(base::Printable("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  CHECK(base::Printable("\xe2\x82") == "\\xe2\\x82");  // truncated
  CHECK(base::Printable("\xf0\x9f\x98\x80") == "\xf0\x9f\x98\x80");
  CHECK(base::PrintableText("line\nnext\tcol\x1b") == "line\nnext\tcol\\x1b");
  CHECK(detail::JsonString("a\xff") == "\"a\\\\xff\"");
  CHECK(detail::JsonString("\x1b\x7f\xc2\x85") == "\"\\u001b\\u007f\\u0085\"");
  CHECK(detail::JsonString("\xc3\xa9\"") == "\"\xc3\xa9\\\"\"");
}

TEST_CASE("tether graph without the privileges to see the system says so", "[security][cli]") {
  // Root without capabilities: the bounding set is emptied, so the exec'd
  // tether gets none. It can neither list BPF ids nor read init's fds.
  if (access("/usr/bin/setpriv", X_OK) != 0) FAIL("setpriv (util-linux) is missing");
  for (const char* command : {"graph", "graph --format json", "explain map 1"}) {
    std::string err_file = "/tmp/tether-security-unpriv-" + std::to_string(getpid()) + ".err";
    std::string cmd = std::string("/usr/bin/setpriv --bounding-set=-all --inh-caps=-all ") + TETHER_CLI +
                      " " + command + " >/dev/null 2>" + err_file;
    int status = system(cmd.c_str());
    std::ifstream in(err_file);
    std::string err((std::istreambuf_iterator<char>(in)), {});
    unlink(err_file.c_str());
    INFO(command << ": " << err);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    CHECK_THAT(err, Catch::Contains("BPF_PROG_GET_NEXT_ID") && Catch::Contains("run as root"));
  }
}

TEST_CASE("the Pin policy makes a pin name bpffs accepts from any array name", "[security][pin][graph]") {
  // The kernel accepts '.' in object names, bpffs refuses it in file names:
  // the Pin policy used to put the name into the path as it was, so its
  // pin failed and the array was cleared after all.
  testing::TempPinDir dir;
  std::string old_dir = graph().pin_directory();
  graph().SetPinDirectory(dir.Sub("policy"));
  const std::string hostile = "arr.policy.pin";
  auto array = ProgramArray::Create(hostile, 2, LifetimePolicy::kPin);
  INFO(array.status().ToString());
  REQUIRE(array.ok());
  uint32_t id = array->map().id();
  Program target = testing::LoadReturning(7, "sec_target");
  Program caller = testing::LoadTailCaller(array->map(), 0, 1, "sec_caller");
  REQUIRE(array->Set(0, target).ok());
  REQUIRE(testing::RunValue(caller) == 7);
  *array = ProgramArray();  // the last user reference: the policy pins it
  graph().SetPinDirectory(old_dir);
  std::string expected = dir.Sub("policy") + "/arr_policy_pin_" + std::to_string(id);
  CHECK(Exists(expected));
  CHECK(testing::RunValue(caller) == 7);  // the pin keeps the entries
  auto back = Map::LoadPinned(expected);
  REQUIRE(back.ok());
  back->SetLifetimePolicy(LifetimePolicy::kIgnore);
  REQUIRE(back->Unpin().ok());
}

TEST_CASE("tether graph and explain print pin paths and process names as text", "[security][cli]") {
  testing::TempPinDir dir;
  Map map = testing::MustCreate(BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0, "escaped_pin");
  const std::string pin = dir.path() + "/evil\x1b]0;title\x07\x1b[2Jpin";
  REQUIRE(map.Pin(pin).ok());
  // Another process holds the map under a name with an escape sequence.
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    prctl(PR_SET_NAME, "ev\x1b[31mil", 0, 0, 0);
    char byte = 1;
    if (write(ready[1], &byte, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char byte = 0;
  REQUIRE(read(ready[0], &byte, 1) == 1);
  close(ready[0]);
  close(ready[1]);
  CliResult graph_text = RunTether("graph --pinned " + dir.path() + " --pid " + std::to_string(child));
  CliResult explain = RunTether("explain map " + std::to_string(map.id()) + " --pinned " + dir.path());
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  for (const CliResult* r : {&graph_text, &explain}) {
    INFO(base::Printable(r->out) << "\nstderr: " << base::Printable(r->err));
    CHECK(r->exit_code == 0);
    CHECK_FALSE(HasControlBytes(r->out, true));
    CHECK_THAT(r->out, Catch::Contains("evil\\x1b]0;title\\x07\\x1b[2Jpin"));
  }
  CHECK_THAT(graph_text.out, Catch::Contains("ev\\x1b[31mil"));
  CHECK_THAT(explain.out, Catch::Contains("ev\\x1b[31mil"));
  REQUIRE(unlink(pin.c_str()) == 0);
}
