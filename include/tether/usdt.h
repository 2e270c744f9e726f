// User-space statically defined tracepoints (USDT): the probes that
// <sys/sdt.h> (systemtap's STAP_PROBE / DTRACE_PROBE macros) leaves in an
// executable or a shared library, one `.note.stapsdt` ELF note per site.
//
// AttachUsdt puts a uprobe on every site of provider:name in a binary and
// hands the BPF side each site's argument layout through the same maps
// libbpf's <bpf/usdt.bpf.h> reads (`__bpf_usdt_specs`, keyed by a spec id
// that the uprobe's BPF cookie carries), so BPF C written for libbpf's
// USDT support (SEC("usdt"), BPF_USDT, bpf_usdt_arg, bpf_usdt_cookie) loads
// and runs unchanged. x86-64 only, like the argument specs it parses.
#ifndef TETHER_USDT_H_
#define TETHER_USDT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tether/link.h"
#include "tether/map.h"
#include "tether/program.h"

namespace tether {

// One argument of a USDT site, parsed from the note's spec string
// ("-4@%edi", "8@-16(%rbp)", "4@$42").
struct UsdtArg {
  enum class Kind {
    kConstant,  // $value: `value` is the argument
    kRegister,  // %reg: the register holds it
    kMemory,    // offset(%reg): the argument is at register + `value`
  };
  Kind kind = Kind::kConstant;
  int size = 8;            // bytes: 1, 2, 4 or 8
  bool is_signed = false;  // a negative size in the spec
  std::string reg;         // "rdi", "edi", ... as written, without '%'
  int16_t pt_regs_offset = 0;  // offsetof(struct pt_regs, <reg>) on x86-64
  int64_t value = 0;           // the constant, or the memory offset
};

// One `.note.stapsdt` note: a probe site.
struct UsdtNote {
  std::string provider;
  std::string name;
  std::string args;  // the spec string as written
  std::vector<UsdtArg> parsed_args;
  // Why `args` could not be parsed ("" when it was): a library may hold
  // one site tether cannot read (e.g. "4@counter(%rip)") among many it
  // can, so only attaching to that site fails.
  std::string args_error;
  size_t index = 0;  // the note's place in .note.stapsdt
  uint64_t address = 0;      // the site's virtual address (prelink-adjusted)
  uint64_t file_offset = 0;  // where the uprobe goes
  uint64_t semaphore_address = 0;  // 0: no semaphore
  uint64_t semaphore_offset = 0;   // the semaphore's file offset
};

// Every USDT note in the ELF file at `path`. NotFound when the file has
// no .note.stapsdt section; InvalidArgument naming the note (index,
// provider:name) when a note is malformed (short descriptor, strings
// without NUL, an address outside the file). An argument spec tether
// cannot read is not an error here: it is in the note's args_error.
absl::StatusOr<std::vector<UsdtNote>> ReadUsdtNotes(const std::string& path);

// The uprobes of one AttachUsdt call and the spec ids it took. Dropping it
// (or calling Detach) removes the uprobes, which lets the kernel decrement
// the semaphores, and frees the spec ids for other attachments.
class UsdtAttachment {
 public:
  UsdtAttachment();
  // Defined where SpecIds is complete, so that a class holding an
  // UsdtAttachment (a skeleton's Links) can be moved and assigned.
  UsdtAttachment(UsdtAttachment&&) noexcept;
  UsdtAttachment& operator=(UsdtAttachment&&) noexcept;
  ~UsdtAttachment();

  // True while attached (at least one probe site has its uprobe).
  explicit operator bool() const { return !links_.empty(); }
  // One link per probe site.
  const std::vector<Link>& links() const { return links_; }
  // The notes of the sites attached, in the order of links().
  const std::vector<UsdtNote>& sites() const { return sites_; }
  void Detach();

  struct SpecIds;  // internal: returns the ids to the per-map allocator

 private:
  friend absl::StatusOr<UsdtAttachment> AttachUsdt(const Program&, const std::string&,
                                                   const std::string&, const std::string&, int,
                                                   uint64_t);
  std::vector<Link> links_;
  std::vector<UsdtNote> sites_;
  std::unique_ptr<SpecIds> spec_ids_;
};

// Attaches `program` (a kprobe-type program, SEC("usdt") in libbpf's
// terms) at every site of provider:name in `binary`, for process `pid` or
// every process (-1). The program must use libbpf's <bpf/usdt.bpf.h> maps:
// its `__bpf_usdt_specs` map (found among the program's maps) receives one
// spec per distinct argument layout, and each uprobe's BPF cookie is that
// spec's id. `cookie` is what bpf_usdt_cookie() returns. Needs BPF cookies
// (5.15): older kernels get Unimplemented. NotFound names the binary, the
// provider and the name when no site matches; InvalidArgument names the
// note when a matching site's argument spec cannot be read. All or
// nothing: on error no uprobe stays.
absl::StatusOr<UsdtAttachment> AttachUsdt(const Program& program, const std::string& binary,
                                          const std::string& provider, const std::string& name,
                                          int pid = -1, uint64_t cookie = 0);

}  // namespace tether

#endif  // TETHER_USDT_H_
