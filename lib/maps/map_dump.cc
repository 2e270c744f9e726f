#include "tether/map_dump.h"

#include <linux/btf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "btf/kernel_btf.h"
#include "maps/map_dump_internal.h"
#include "sys/bpf.h"
#include "tether/insn.h"
#include "tether/map_batch.h"
#include "tether/probe.h"

namespace tether {

const char* DumpPathName(DumpPath path) {
  switch (path) {
    case DumpPath::kIterator: return "iterator";
    case DumpPath::kBatch: return "batch";
    case DumpPath::kPerKey: return "per_key";
  }
  return "?";
}

namespace {

std::string Describe(const Map& map) {
  return absl::StrFormat("map '%s' (id %u)", map.name(), map.id());
}

// The types whose elements iter/bpf_map_elem walks (kernel/bpf/map_iter.c:
// the map's ops carry iter_seq_info).
bool IteratorWalks(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
      return true;
    default:
      return false;
  }
}

// ctx is struct bpf_iter__bpf_map_elem { meta; map; key; value; }, one
// 8-byte slot each; meta->seq is the first field of bpf_iter_meta. The
// program writes key then value with bpf_seq_write; key and value are NULL
// on the call after the last element. The verifier records the sizes read
// from key and value, and LINK_CREATE checks them against the map's, so one
// program serves every map of the same key and value size.
std::vector<bpf_insn> ElemIteratorProgram(uint32_t key_size, uint32_t value_size) {
  using namespace insn;
  return {
      MovReg(6, 1),
      LoadReg64(7, 6, 16),  // key
      LoadReg64(8, 6, 24),  // value
      JeqImm(7, 0, 11),     // -> r0 = 0
      JeqImm(8, 0, 10),
      LoadReg64(1, 6, 0),   // meta
      LoadReg64(1, 1, 0),   // meta->seq
      MovReg(2, 7),
      MovImm(3, static_cast<int32_t>(key_size)),
      Call(BPF_FUNC_seq_write),
      LoadReg64(1, 6, 0),
      LoadReg64(1, 1, 0),
      MovReg(2, 8),
      MovImm(3, static_cast<int32_t>(value_size)),
      Call(BPF_FUNC_seq_write),
      MovImm(0, 0),
      Exit(),
  };
}

// One program per (key size, value size), loaded on first use and kept for
// the life of the process: a dump then costs a link and a read, not a
// verifier run.
struct ProgramCache {
  std::mutex mu;
  std::map<std::pair<uint32_t, uint32_t>, sys::Fd> fds;
};
ProgramCache& Programs() {
  static auto* cache = new ProgramCache();
  return *cache;
}

absl::StatusOr<int> CachedIteratorProgram(uint32_t key_size, uint32_t value_size) {
  ProgramCache& programs = Programs();
  std::lock_guard<std::mutex> lock(programs.mu);
  auto* cache = &programs.fds;
  auto key = std::make_pair(key_size, value_size);
  if (auto it = cache->find(key); it != cache->end()) return it->second.get();
  TETHER_ASSIGN_OR_RETURN(uint32_t btf_id,
                          detail::VmlinuxBtfTypeId("bpf_iter_bpf_map_elem", BTF_KIND_FUNC));
  std::vector<bpf_insn> insns = ElemIteratorProgram(key_size, value_size);
  sys::ProgLoadRequest req;
  req.type = BPF_PROG_TYPE_TRACING;
  req.expected_attach_type = BPF_TRACE_ITER;
  req.attach_btf_id = btf_id;
  req.insns = insns;
  req.license = "GPL";  // bpf_seq_write is GPL-only
  req.name = "tether_dump";
  auto loaded = sys::ProgLoad(req);
  if (!loaded.ok()) {
    return sys::ErrnoStatus(sys::StatusErrno(loaded.status()),
                            absl::StrFormat("map dump iterator (key %u, value %u bytes)", key_size, value_size),
                            absl::StrCat("BPF_PROG_LOAD: ", loaded.status().message().substr(0, 200)));
  }
  int fd = loaded->fd.get();
  cache->emplace(key, std::move(loaded->fd));
  return fd;
}

absl::Status ReadAll(int fd, const std::string& what, std::vector<uint8_t>* out) {
  // The kernel's seq_file buffer is 8 pages; a larger read gains nothing.
  constexpr size_t kChunk = 64 * 1024;
  size_t used = 0;
  for (;;) {
    if (out->size() - used < kChunk) out->resize(used + kChunk);
    ssize_t n = read(fd, out->data() + used, kChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys::ErrnoStatus(errno, what, "read (iterator)");
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  out->resize(used);
  return absl::OkStatus();
}

absl::Status DumpByIterator(const Map& map, MapDump* out) {
  const uint32_t ks = map.key_size(), vs = map.value_buffer_size();
  TETHER_ASSIGN_OR_RETURN(int prog_fd, CachedIteratorProgram(ks, vs));
  union bpf_iter_link_info info;
  memset(&info, 0, sizeof(info));
  info.map.map_fd = static_cast<uint32_t>(map.fd());
  struct {
    uint64_t iter_info;
    uint32_t iter_info_len;
  } extra = {reinterpret_cast<uintptr_t>(&info), static_cast<uint32_t>(sizeof(info))};
  sys::LinkCreateRequest req;
  req.prog_fd = prog_fd;
  req.target_fd = 0;
  req.attach_type = BPF_TRACE_ITER;
  req.extra = &extra;
  req.extra_size = sizeof(extra);
  std::string what = absl::StrCat(Describe(map), ": dump by iterator");
  auto link = sys::LinkCreate(req);
  if (!link.ok()) return sys::ErrnoStatus(sys::StatusErrno(link.status()), what, "BPF_LINK_CREATE");
  auto iter = sys::IterCreate(link->get());
  if (!iter.ok()) return sys::ErrnoStatus(sys::StatusErrno(iter.status()), what, "BPF_ITER_CREATE");
  std::vector<uint8_t> raw;
  TETHER_RETURN_IF_ERROR(ReadAll(iter->get(), what, &raw));
  const size_t rec = size_t{ks} + vs;
  if (raw.size() % rec != 0) {
    return absl::InternalError(absl::StrFormat("%s: read %u bytes, not a whole number of %u-byte records",
                                               what, raw.size(), rec));
  }
  size_t n = raw.size() / rec;
  out->keys.resize(n * ks);
  out->values.resize(n * vs);
  for (size_t i = 0; i < n; ++i) {
    memcpy(out->keys.data() + i * ks, raw.data() + i * rec, ks);
    memcpy(out->values.data() + i * vs, raw.data() + i * rec + ks, vs);
  }
  out->count = static_cast<uint32_t>(n);
  out->path = DumpPath::kIterator;
  return absl::OkStatus();
}

absl::Status DumpByBatch(const Map& map, uint32_t batch_size, MapDump* out) {
  const uint32_t ks = map.key_size(), vs = map.value_buffer_size();
  if (batch_size == 0) batch_size = 1;
  BatchCursor cursor(map);
  size_t n = 0;
  while (!cursor.done()) {
    out->keys.resize((n + batch_size) * ks);
    out->values.resize((n + batch_size) * size_t{vs});
    auto got = LookupBatch(map, &cursor, absl::MakeSpan(out->keys.data() + n * ks, size_t{batch_size} * ks),
                           absl::MakeSpan(out->values.data() + n * vs, size_t{batch_size} * vs));
    if (!got.ok() && absl::IsResourceExhausted(got.status()) && batch_size < (1u << 20)) {
      batch_size *= 2;  // a hash bucket holds more than one batch: retry bigger
      continue;
    }
    if (!got.ok()) return got.status();
    n += *got;
  }
  out->keys.resize(n * ks);
  out->values.resize(n * size_t{vs});
  out->count = static_cast<uint32_t>(n);
  out->path = cursor.per_key() ? DumpPath::kPerKey : DumpPath::kBatch;
  return absl::OkStatus();
}

}  // namespace

namespace detail {

size_t CachedDumpPrograms() {
  std::lock_guard<std::mutex> lock(Programs().mu);
  return Programs().fds.size();
}

void ForgetDumpPrograms() {
  std::lock_guard<std::mutex> lock(Programs().mu);
  Programs().fds.clear();
}

}  // namespace detail

absl::StatusOr<MapDump> DumpMap(const Map& map, const DumpOptions& options) {
  if (!map) return absl::FailedPreconditionError("map: dump: the handle is empty");
  if (map.key_size() == 0) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: dump: %s maps have no keys to walk",
                                                      Describe(map), MapTypeName(map.type())));
  }
  MapDump out;
  if (options.prefer != DumpOptions::Prefer::kBatch) {
    absl::Status why_not;
    if (!IteratorWalks(map.type())) {
      why_not = absl::UnimplementedError(absl::StrFormat(
          "iter/bpf_map_elem does not walk %s maps", MapTypeName(map.type())));
    } else {
      why_not = probe::HaveIterator("bpf_map_elem");
    }
    if (why_not.ok()) {
      absl::Status st = DumpByIterator(map, &out);
      if (st.ok() || options.prefer == DumpOptions::Prefer::kIterator) {
        if (!st.ok()) return st;
        out.why = "iterator allowed by probe iterator:bpf_map_elem";
        return out;
      }
      out = MapDump();
      out.why = absl::StrCat("iterator failed (", st.message(), "); batch instead");
    } else if (options.prefer == DumpOptions::Prefer::kIterator) {
      return absl::Status(why_not.code(), absl::StrCat(Describe(map), ": dump by iterator: ", why_not.message()));
    } else {
      out.why = absl::StrCat("iterator refused by probe: ", why_not.message());
    }
  } else {
    out.why = "batch asked for";
  }
  TETHER_RETURN_IF_ERROR(DumpByBatch(map, options.batch_size, &out));
  return out;
}

}  // namespace tether
