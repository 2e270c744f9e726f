// The `tether` command: see the live kernel's object graph, explain why
// objects are alive, inspect and load BPF objects.
//
// Exit codes: 0 success, 1 the operation failed (bad object, load or
// verifier failure, kernel error), 2 usage error, 3 a needed external tool
// (graphviz `dot`) is missing. JSON output is documented in docs/cli.md.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/json_internal.h"
#include "base/printable.h"
#include "base/status_macros.h"
#include "handles/pin_internal.h"
#include "tether/collection.h"
#include "tether/collection_spec.h"
#include "tether/graph.h"
#include "tether/graph_metrics.h"
#include "tether/pin.h"
#include "tether/probe.h"
#include "tether/section_names.h"
#include "tether/system_graph.h"

namespace {

using namespace tether;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;
constexpr int kMissingTool = 3;

const char kUsageText[] =
    "usage: tether <command> [options]\n"
    "\n"
    "commands:\n"
    "  graph [--format text|dot|json|svg|openmetrics] [--pinned DIR] [-o FILE]\n"
    "        [--pid N] [--name SUBSTR] [--pinned-under DIR] [--hazards] [--all]\n"
    "        the object graph of the whole system: programs and the maps they use,\n"
    "        program arrays and their entries, links and their targets, pins, the\n"
    "        processes holding fds and the hooks without a link (cgroup, XDP, tc);\n"
    "        hazards are marked with !!; the filters show matching objects with\n"
    "        their neighbours; unreachable maps are one line unless --all;\n"
    "        openmetrics writes the counts (objects, edges, hazards by kind, tail-call\n"
    "        misses per site) for a textfile collector\n"
    "  explain map|prog|link ID [--pinned DIR]\n"
    "        why the object is alive, and what breaks if each reference goes\n"
    "  inspect FILE.o [--json]\n"
    "        the programs and maps in a BPF object, without loading it\n"
    "  load FILE.o [--pin-dir DIR] [--json]\n"
    "        load every map and program; with --pin-dir pin them all there so they\n"
    "        outlive this command, without it nothing does\n"
    "  probe\n"
    "        every kernel feature probe and its answer: present, missing (with the\n"
    "        release that brought it), refused here (the kernel's policy), or could\n"
    "        not run; exit 1 if any could not run (run as root)\n"
    "\n"
    "exit codes: 0 ok, 1 failed, 2 usage, 3 missing tool (graphviz dot)\n";

int Usage(const std::string& why) {
  if (!why.empty()) fprintf(stderr, "tether: %s\n\n", why.c_str());
  fputs(kUsageText, stderr);
  return kUsage;
}

// Messages name objects from object files, bpffs and /proc, which may carry
// terminal escape sequences: print them as text.
int Fail(const absl::Status& st) {
  fprintf(stderr, "tether: %s\n", base::PrintableText(st.message()).c_str());
  return kFailed;
}

using base::Printable;

using tether::detail::JsonString;

bool WriteOut(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    fwrite(text.data(), 1, text.size(), stdout);
    return true;
  }
  FILE* f = fopen(path.c_str(), "w");
  if (!f) return false;
  fwrite(text.data(), 1, text.size(), f);
  return fclose(f) == 0;
}

// --- graph ---------------------------------------------------------------------

// Pipes the DOT text into `dot -Tsvg`. dot writes straight to our stdout or
// to the file we opened: "-o /dev/stdout" is not portable, since a bare
// devtmpfs (as in the test VM) has no /dev/stdout and dot would silently
// create a regular file there.
int RenderSvg(const std::string& dot_text, const std::string& out) {
  int out_fd = STDOUT_FILENO;
  if (!out.empty()) {
    out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0) return Fail(absl::InternalError(absl::StrCat("graph: cannot write ", out, ": ", strerror(errno))));
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    if (out_fd != STDOUT_FILENO) close(out_fd);
    return Fail(absl::InternalError(absl::StrCat("graph: pipe: ", strerror(errno))));
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[0], STDIN_FILENO);
    if (out_fd != STDOUT_FILENO) dup2(out_fd, STDOUT_FILENO);
    execlp("dot", "dot", "-Tsvg", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[0]);
  if (out_fd != STDOUT_FILENO) close(out_fd);
  if (pid < 0) {
    close(pipe_fds[1]);
    return Fail(absl::InternalError(absl::StrCat("graph: fork: ", strerror(errno))));
  }
  // A dot that dies early must not kill us with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  size_t done = 0;
  while (done < dot_text.size()) {
    ssize_t n = write(pipe_fds[1], dot_text.data() + done, dot_text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(pipe_fds[1]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || done != dot_text.size()) {
    return Fail(absl::InternalError(
        absl::StrFormat("graph: dot failed to render the graph (%s)",
                        WIFEXITED(status) ? absl::StrCat("exit status ", WEXITSTATUS(status))
                                          : std::string("killed by a signal"))));
  }
  return kOk;
}

// The flags that pick a part of the graph; false if args[*i] is not one.
bool ParseFilterFlag(const std::vector<std::string>& args, size_t* i, GraphFilter* f, std::string* error) {
  const std::string& a = args[*i];
  bool has_value = *i + 1 < args.size();
  if (a == "--hazards") {
    f->hazards_only = true;
  } else if (a == "--pid" && has_value) {
    int pid = 0;
    if (!absl::SimpleAtoi(args[++*i], &pid) || pid <= 0) *error = "graph: bad --pid " + args[*i];
    f->pid = pid;
  } else if (a == "--name" && has_value) {
    f->name = args[++*i];
  } else if (a == "--pinned-under" && has_value) {
    f->pinned_under = args[++*i];
  } else {
    return false;
  }
  return true;
}

int Graph(const std::vector<std::string>& args) {
  std::string format = "text", pinned = "/sys/fs/bpf", out;
  GraphFilter filter;
  bool all = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string error;
    if (ParseFilterFlag(args, &i, &filter, &error)) {
      if (!error.empty()) return Usage(error);
    } else if (args[i] == "--format" && i + 1 < args.size()) format = args[++i];
    else if (args[i] == "--pinned" && i + 1 < args.size()) pinned = args[++i];
    else if (args[i] == "-o" && i + 1 < args.size()) out = args[++i];
    else if (args[i] == "--all") all = true;
    else return Usage("graph: unknown argument " + args[i]);
  }
  if (format != "text" && format != "dot" && format != "json" && format != "svg" &&
      format != "openmetrics") {
    return Usage("graph: --format must be text, dot, json, svg or openmetrics");
  }
  if (format == "svg" && system("command -v dot >/dev/null 2>&1") != 0) {
    fprintf(stderr, "tether: graph --format svg needs graphviz's `dot` (apt-get install graphviz); "
                    "use --format dot to get the source\n");
    return kMissingTool;
  }
  SystemScanOptions o;
  o.pin_root = pinned;
  auto snap = ScanSystemSnapshot(o);
  if (!snap.ok()) return Fail(snap.status());
  std::unique_ptr<ObjectGraph> g = std::move(snap->graph);
  if (!filter.empty()) g = FilterGraph(*g, filter);
  // People read text and pictures: the unreachable maps are one line
  // there. Tools read JSON: it keeps every node.
  std::string summary;
  if (!all && format != "json" && format != "openmetrics") {
    CollapsedGraph c = CollapseUnreachable(*g);
    g = std::move(c.graph);
    summary = c.summary;
  }
  std::string text;
  if (format == "text") {
    text = g->ToText();
    if (!summary.empty()) absl::StrAppend(&text, summary, "\n");
    for (const std::string& l : snap->limits) absl::StrAppend(&text, "scan: ", l, "\n");
  }
  if (format == "json") text = g->ToJson();
  if (format == "openmetrics") text = ToOpenMetrics(*g);
  if (format == "dot" || format == "svg") {
    text = g->ToDot();
    if (!summary.empty()) {
      text.insert(text.rfind('}'), absl::StrCat("  label=\"", detail::JsonEscape(summary), "\";\n"));
    }
  }
  if (format == "svg") return RenderSvg(text, out);
  // Text for people: names from bpffs and /proc, printed as text.
  if (format == "text") text = base::PrintableText(text);
  if (!WriteOut(out, text)) return Fail(absl::InternalError("graph: cannot write " + out));
  return kOk;
}

// --- explain -----------------------------------------------------------------------

int Explain(const std::vector<std::string>& args) {
  if (args.size() < 2) return Usage("explain: needs a kind (map, prog, link) and an id");
  NodeKind kind;
  if (args[0] == "map") kind = NodeKind::kMap;
  else if (args[0] == "prog" || args[0] == "program") kind = NodeKind::kProgram;
  else if (args[0] == "link") kind = NodeKind::kLink;
  else return Usage("explain: kind must be map, prog or link, not " + args[0]);
  uint32_t id = 0;
  if (!absl::SimpleAtoi(args[1], &id)) return Usage("explain: bad id " + args[1]);
  SystemScanOptions o;
  for (size_t i = 2; i < args.size(); ++i) {
    if (args[i] == "--pinned" && i + 1 < args.size()) o.pin_root = args[++i];
    else return Usage("explain: unknown argument " + args[i]);
  }
  auto snap = ScanSystemSnapshot(o);
  if (!snap.ok()) return Fail(snap.status());
  const ObjectGraph& g = *snap->graph;
  NodeRef ref{kind, id};
  auto node = g.Node(ref);
  if (!node) {
    return Fail(absl::NotFoundError(absl::StrFormat("no %s with id %u in the kernel", args[0], id)));
  }
  Explanation ex = g.Explain(ref);
  printf("%s\n", base::PrintableText(ex.ToString()).c_str());
  for (const auto& note : node->notes) printf("  !! %s\n", base::PrintableText(note).c_str());
  if (!node->tail_call_sites.empty()) {
    printf("\ntail-call misses (tether's counters):\n");
    for (const TailCallSite& t : node->tail_call_sites) {
      std::string where = t.line ? absl::StrFormat(" (%s:%u)", t.file, t.line) : "";
      std::string fn = t.function != t.program ? absl::StrCat(" in ", t.function) : "";
      std::string array = t.array.empty() ? std::string("an unknown array")
                          : t.array_id ? absl::StrFormat("%s (id %u)", t.array, t.array_id)
                                       : t.array;
      printf("  site %u: insn %u%s%s through %s: %s miss(es)\n", t.index, t.insn,
             base::Printable(fn).c_str(), base::Printable(where).c_str(),
             base::Printable(array).c_str(), absl::StrCat(t.misses).c_str());
    }
  }

  // What breaks if a given reference went: a reference that is not the
  // last user reference costs nothing; the last one costs what the graph
  // says of that reference (a pin's removal, or the object's last fd).
  struct UserRef {
    std::string what;
    NodeRef ref;
  };
  std::vector<UserRef> user_refs;
  for (const std::string& h : node->holders) user_refs.push_back({h, ref});
  for (const GraphEdge& e : g.Edges()) {
    if (e.to == ref && e.kind == EdgeKind::kPinHolds)
      user_refs.push_back({absl::StrCat("the pin ", g.Node(e.from)->name), e.from});
  }
  printf("\nif a reference went:\n");
  if (user_refs.empty()) {
    printf("  it has no fd or pin in user space; the kernel alone holds it\n");
  }
  for (const UserRef& r : user_refs) {
    if (user_refs.size() > 1) {
      printf("  %s: nothing breaks; %zu other user reference(s) remain\n", Printable(r.what).c_str(),
             user_refs.size() - 1);
    } else {
      printf("  %s (the last user reference):\n", Printable(r.what).c_str());
      for (const auto& b : WhatBreaksInScan(g, r.ref)) printf("    - %s\n", base::PrintableText(b).c_str());
    }
  }
  if (!snap->limits.empty()) printf("\n");
  for (const std::string& l : snap->limits) printf("scan: %s\n", base::PrintableText(l).c_str());
  return kOk;
}

// --- inspect -----------------------------------------------------------------------

std::string Hex(absl::Span<const uint8_t> bytes, size_t max = 32) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max; ++i) absl::StrAppendFormat(&out, "%02x", bytes[i]);
  if (bytes.size() > max) absl::StrAppend(&out, "...");
  return out;
}

struct ProgramSummary {
  const ProgramSpec* spec;
  size_t insns = 0;
  std::vector<std::string> maps;
  std::string error;
};

std::vector<ProgramSummary> Summarise(const CollectionSpec& spec) {
  std::vector<ProgramSummary> out;
  for (const auto& [name, p] : spec.programs) {
    ProgramSummary s{&p};
    auto linked = LinkProgram(spec, name);
    if (linked.ok()) {
      s.insns = linked->insns.size();
      std::set<std::string> maps;
      for (const Fixup& f : linked->fixups) {
        if (f.kind == Fixup::Kind::kMapFd || f.kind == Fixup::Kind::kMapValue ||
            f.kind == Fixup::Kind::kKconfig) {
          maps.insert(f.name);
        }
      }
      s.maps.assign(maps.begin(), maps.end());
    } else {
      s.insns = p.code.insns.size();
      s.error = std::string(linked.status().message());
    }
    out.push_back(std::move(s));
  }
  return out;
}

// A static entry's slot: an index, or for a struct_ops map the byte
// offset of a function pointer, shown with the member's name.
std::string SlotLabel(const CollectionSpec& spec, const MapSpec& m, uint32_t key) {
  if (m.type != BPF_MAP_TYPE_STRUCT_OPS || !spec.btf) return absl::StrCat(key);
  if (const BtfType* t = spec.btf->TypeById(m.btf_value_type_id); t && t->is_composite()) {
    for (const BtfMember& member : spec.btf->Members(*t)) {
      if (member.bit_offset == key * 8) return absl::StrCat(".", spec.btf->String(member.name_off));
    }
  }
  return absl::StrCat(key);
}

const char* PinTypeName(PinType p) {
  switch (p) {
    case PinType::kNone: return "none";
    case PinType::kByName: return "by_name";
    case PinType::kObjectNs: return "object_ns";
  }
  return "?";
}

int Inspect(const std::vector<std::string>& args) {
  std::string path;
  bool json = false;
  for (const std::string& a : args) {
    if (a == "--json") json = true;
    else if (!a.empty() && a[0] == '-') return Usage("inspect: unknown option " + a);
    else if (path.empty()) path = a;
    else return Usage("inspect: one file at a time");
  }
  if (path.empty()) return Usage("inspect: needs FILE.o");
  auto spec = CollectionSpec::FromFile(path);
  if (!spec.ok()) return Fail(spec.status());
  std::vector<ProgramSummary> progs = Summarise(*spec);
  std::string out;
  if (json) {
    out = absl::StrCat("{\n  \"version\": 1,\n  \"file\": ", JsonString(path), ",\n  \"license\": ",
                       JsonString(spec->license), ",\n  \"programs\": [");
    for (size_t i = 0; i < progs.size(); ++i) {
      const ProgramSummary& s = progs[i];
      std::vector<std::string> maps;
      for (const auto& m : s.maps) maps.push_back(JsonString(m));
      absl::StrAppend(&out, i ? "," : "", "\n    {\"name\": ", JsonString(s.spec->name),
                      ", \"section\": ", JsonString(s.spec->section), ", \"type\": ",
                      JsonString(ProgramTypeName(s.spec->type)), ", \"attach_type\": ",
                      s.spec->expected_attach_type, ", \"attach_to\": ", JsonString(s.spec->attach_to),
                      ", \"instructions\": ", s.insns, ", \"maps\": [", absl::StrJoin(maps, ", "), "]",
                      s.error.empty() ? "" : absl::StrCat(", \"link_error\": ", JsonString(s.error)), "}");
    }
    absl::StrAppend(&out, "\n  ],\n  \"maps\": [");
    size_t i = 0;
    for (const auto& [name, m] : spec->maps) {
      std::vector<std::string> init;
      for (const MapInitEntry& e : m.init)
        init.push_back(absl::StrFormat("{\"slot\": %u, \"name\": %s}", e.key, JsonString(e.name)));
      absl::StrAppend(&out, i++ ? "," : "", "\n    {\"name\": ", JsonString(name), ", \"section\": ",
                      JsonString(m.section), ", \"type\": ", JsonString(MapTypeName(m.type)),
                      ", \"key_size\": ", m.key_size, ", \"value_size\": ", m.value_size,
                      ", \"max_entries\": ", m.max_entries, ", \"flags\": ", m.flags,
                      ", \"pinning\": ", JsonString(PinTypeName(m.pinning)), ", \"init\": [",
                      absl::StrJoin(init, ", "), "], \"contents\": ", JsonString(Hex(m.contents, 64)), "}");
    }
    absl::StrAppend(&out, "\n  ]\n}\n");
  } else {
    absl::StrAppend(&out, Printable(path), ": license ",
                    spec->license.empty() ? "(none)" : Printable(spec->license), "\n");
    absl::StrAppend(&out, "programs:\n");
    for (const ProgramSummary& s : progs) {
      std::vector<std::string> maps;
      for (const std::string& m : s.maps) maps.push_back(Printable(m));
      absl::StrAppendFormat(&out, "  %-24s section %-28s %s, attach type %u%s, %u insns, maps: %s\n",
                            Printable(s.spec->name), Printable(s.spec->section),
                            ProgramTypeName(s.spec->type), s.spec->expected_attach_type,
                            s.spec->attach_to.empty() ? "" : absl::StrCat(" to ", Printable(s.spec->attach_to)),
                            s.insns, maps.empty() ? "-" : absl::StrJoin(maps, ", "));
      if (!s.error.empty()) absl::StrAppend(&out, "    !! ", base::PrintableText(s.error), "\n");
    }
    absl::StrAppend(&out, "maps:\n");
    for (const auto& [name, m] : spec->maps) {
      absl::StrAppendFormat(&out, "  %-24s %-16s key %u value %u max_entries %u flags 0x%x pinning %s\n",
                            Printable(name), MapTypeName(m.type), m.key_size, m.value_size, m.max_entries,
                            m.flags, PinTypeName(m.pinning));
      for (const MapInitEntry& e : m.init)
        absl::StrAppendFormat(&out, "    [%s] = %s\n", Printable(SlotLabel(*spec, m, e.key)),
                              Printable(e.name));
      if (!m.contents.empty()) absl::StrAppend(&out, "    contents: ", Hex(m.contents), "\n");
    }
    for (const std::string& w : spec->warnings)
      absl::StrAppend(&out, "warning: ", base::PrintableText(w), "\n");
  }
  fwrite(out.data(), 1, out.size(), stdout);
  return kOk;
}

// bpffs refuses '.' in names: ".rodata" is pinned as "_rodata".
std::string PinName(absl::string_view name) {
  std::string out(name);
  for (char& c : out)
    if (c == '.') c = '_';
  return out;
}

// --- load ------------------------------------------------------------------------------

// `tether load --pin-dir` is all or nothing: every pin path is checked
// before the first pin, and a failure undoes the pins and the directories
// this command made, including the by-name pins of the load itself.
class LoadPinner {
 public:
  LoadPinner(Collection& coll, std::string pin_dir, std::vector<std::string> made_dirs)
      : coll_(coll), pin_dir_(std::move(pin_dir)), made_dirs_(std::move(made_dirs)) {}

  absl::Status PinAll() {
    std::set<std::string> paths(coll_.created_pins().begin(), coll_.created_pins().end());
    std::vector<std::pair<std::string, std::function<absl::Status(const std::string&)>>> plan;
    auto add = [&](absl::string_view name, absl::string_view prefix, absl::string_view what,
                   std::function<absl::Status(const std::string&)> pin) -> absl::Status {
      std::string label = absl::StrCat(what, " '", Printable(name), "'");
      auto path = PinPathInside(pin_dir_, absl::StrCat(prefix, PinName(name)), label);
      if (!path.ok()) return path.status();
      if (!paths.insert(*path).second) {
        return absl::AlreadyExistsError(absl::StrCat(
            label, ": pin path ", Printable(*path), " is also the pin of another object of this load"));
      }
      struct stat st;
      if (lstat(path->c_str(), &st) == 0) {
        return absl::AlreadyExistsError(
            absl::StrCat(label, ": pin path ", Printable(*path), " exists; tether load does not replace pins"));
      }
      plan.emplace_back(*path, std::move(pin));
      return absl::OkStatus();
    };
    for (const auto& [name, m] : coll_.maps()) {
      if (!m.PinPath().empty()) continue;
      TETHER_RETURN_IF_ERROR(add(name, "", "map", [m = m](const std::string& p) { return m.Pin(p); }));
    }
    for (const auto& [name, prog] : coll_.programs()) {
      TETHER_RETURN_IF_ERROR(
          add(name, "prog_", "program", [prog = prog](const std::string& p) { return prog.Pin(p); }));
    }
    for (auto& [path, pin] : plan) {
      TETHER_RETURN_IF_ERROR(pin(path));
      pinned_.push_back(path);
    }
    return absl::OkStatus();
  }

  // Leaves bpffs as it was before the command ran, and the exit quiet: the
  // arrays this load made were never in use.
  void Undo() {
    for (const auto& [name, m] : coll_.maps()) m.SetLifetimePolicy(LifetimePolicy::kIgnore);
    for (const std::string& p : pinned_) unlink(p.c_str());
    for (const std::string& p : coll_.created_pins()) unlink(p.c_str());
    detail::RemoveDirectoriesIfEmpty(made_dirs_);
  }

 private:
  Collection& coll_;
  std::string pin_dir_;
  std::vector<std::string> made_dirs_;
  std::vector<std::string> pinned_;
};

std::string LoadJson(const std::string& path, const Collection& coll, bool pinned) {
  std::string out =
      absl::StrCat("{\n  \"version\": 1,\n  \"file\": ", JsonString(path), ",\n  \"programs\": [");
  size_t i = 0;
  for (const auto& [name, p] : coll.programs())
    absl::StrAppend(&out, i++ ? "," : "", "\n    {\"name\": ", JsonString(name), ", \"id\": ", p.id(),
                    ", \"type\": ", JsonString(ProgramTypeName(p.type())), ", \"pin\": ",
                    JsonString(p.PinPath()), "}");
  absl::StrAppend(&out, "\n  ],\n  \"maps\": [");
  i = 0;
  for (const auto& [name, m] : coll.maps())
    absl::StrAppend(&out, i++ ? "," : "", "\n    {\"name\": ", JsonString(name), ", \"id\": ", m.id(),
                    ", \"type\": ", JsonString(MapTypeName(m.type())), ", \"pin\": ",
                    JsonString(m.PinPath()), "}");
  absl::StrAppend(&out, "\n  ],\n  \"pinned\": ", pinned ? "true" : "false", "\n}\n");
  return out;
}

std::string LoadText(const std::string& path, const Collection& coll, const std::string& pin_dir) {
  std::string out = absl::StrCat("loaded ", Printable(path), "\n");
  auto pinned_at = [](const std::string& pin) {
    return pin.empty() ? std::string() : absl::StrCat("  pinned at ", Printable(pin));
  };
  for (const auto& [name, p] : coll.programs())
    absl::StrAppendFormat(&out, "  program %-24s id %-6u %s%s\n", Printable(name), p.id(),
                          ProgramTypeName(p.type()), pinned_at(p.PinPath()));
  for (const auto& [name, m] : coll.maps())
    absl::StrAppendFormat(&out, "  map     %-24s id %-6u %s%s\n", Printable(name), m.id(),
                          MapTypeName(m.type()), pinned_at(m.PinPath()));
  for (const std::string& name : coll.skipped_programs())
    absl::StrAppendFormat(&out, "  skipped %s: its section names no program type (a callee only)\n",
                          Printable(name));
  absl::StrAppend(&out, pin_dir.empty() ? "nothing is pinned: every object goes away when tether exits\n"
                                        : absl::StrCat("pinned under ", Printable(pin_dir), "\n"));
  return out;
}

int Load(const std::vector<std::string>& args) {
  std::string path, pin_dir;
  bool json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") json = true;
    else if (args[i] == "--pin-dir" && i + 1 < args.size()) pin_dir = args[++i];
    else if (!args[i].empty() && args[i][0] == '-') return Usage("load: unknown option " + args[i]);
    else if (path.empty()) path = args[i];
    else return Usage("load: one file at a time");
  }
  if (path.empty()) return Usage("load: needs FILE.o");
  auto spec = CollectionSpec::FromFile(path);
  if (!spec.ok()) return Fail(spec.status());
  CollectionOptions o;
  o.pin_dir = pin_dir;
  // Without --pin-dir the user asked for nothing to outlive the command:
  // arrays emptied at exit are expected, not a mistake to warn about.
  if (pin_dir.empty()) o.default_map_policy = LifetimePolicy::kIgnore;
  std::vector<std::string> made_dirs;
  if (!pin_dir.empty()) {
    absl::Status on_fs = CheckOnBpffs(pin_dir);
    if (!on_fs.ok()) return Fail(on_fs);
    made_dirs = detail::MissingDirectories(pin_dir);
  }
  auto coll = Collection::Load(*spec, o);
  if (!coll.ok()) return Fail(coll.status());
  if (!pin_dir.empty()) {
    LoadPinner pinner(*coll, pin_dir, std::move(made_dirs));
    absl::Status st = pinner.PinAll();
    if (!st.ok()) {
      pinner.Undo();
      return Fail(absl::Status(st.code(), absl::StrCat("load ", path, ": ", st.message(),
                                                       "; nothing was left pinned")));
    }
  }
  std::string out = json ? LoadJson(path, *coll, !pin_dir.empty()) : LoadText(path, *coll, pin_dir);
  fwrite(out.data(), 1, out.size(), stdout);
  return kOk;
}

// Every probe, as the tests and docs/kernels.md see them. A probe that
// could not run proves nothing, so the command fails rather than let its
// line pass for an answer.
int Probe(const std::vector<std::string>& args) {
  if (!args.empty()) return Usage("probe: takes no arguments");
  tether::probe::ProbeAll();
  std::string report = tether::probe::Report();
  printf("kernel: %s\n%s", tether::probe::KernelRelease().c_str(), report.c_str());
  if (report.find(": could not run: ") != std::string::npos) {
    fprintf(stderr, "tether: probe: some probes could not run (they need root, or CAP_BPF with "
                    "CAP_PERFMON and CAP_NET_ADMIN)\n");
    return kFailed;
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    fputs(kUsageText, args.empty() ? stderr : stdout);
    return args.empty() ? kUsage : kOk;
  }
  std::string cmd = args[0];
  args.erase(args.begin());
  // "tether graph --help" answers on stdout and exits 0, like "tether help".
  bool wants_help = false;
  for (const std::string& a : args) wants_help |= a == "-h" || a == "--help";
  if (wants_help && (cmd == "graph" || cmd == "explain" || cmd == "inspect" || cmd == "load" || cmd == "probe")) {
    fputs(kUsageText, stdout);
    return kOk;
  }
  if (cmd == "graph") return Graph(args);
  if (cmd == "explain") return Explain(args);
  if (cmd == "inspect") return Inspect(args);
  if (cmd == "load") return Load(args);
  if (cmd == "probe") return Probe(args);
  return Usage("unknown command " + cmd);
}
