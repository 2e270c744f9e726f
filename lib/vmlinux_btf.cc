#include "vmlinux_btf_internal.h"

#include <linux/btf.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tether::detail {
namespace {

constexpr const char* kVmlinuxBtf = "/sys/kernel/btf/vmlinux";

struct Index {
  absl::Status status;
  // (kind, name) -> first type id with that kind and name.
  absl::flat_hash_map<std::pair<uint32_t, std::string>, uint32_t> ids;
};

// Bytes that follow struct btf_type for each kind; kinds newer than this
// table stop the walk, since their size is unknown.
bool TrailerSize(uint32_t kind, uint32_t vlen, size_t* size) {
  switch (kind) {
    case 1: *size = 4; return true;                 // INT
    case 3: *size = 12; return true;                // ARRAY
    case 4: case 5: *size = 12ul * vlen; return true;  // STRUCT, UNION
    case 6: *size = 8ul * vlen; return true;        // ENUM
    case 13: *size = 8ul * vlen; return true;       // FUNC_PROTO
    case 14: *size = 4; return true;                // VAR
    case 15: *size = 12ul * vlen; return true;      // DATASEC
    case 17: *size = 4; return true;                // DECL_TAG
    case 19: *size = 12ul * vlen; return true;      // ENUM64
    case 2: case 7: case 8: case 9: case 10: case 11: case 12: case 16: case 18:
      *size = 0;
      return true;
    default:
      return false;
  }
}

Index* Build() {
  auto* index = new Index();
  std::ifstream in(kVmlinuxBtf, std::ios::binary);
  if (!in) {
    index->status = absl::NotFoundError(absl::StrCat(
        kVmlinuxBtf, ": cannot read the kernel's BTF (CONFIG_DEBUG_INFO_BTF, 5.4+)"));
    return index;
  }
  std::vector<char> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  btf_header hdr;
  if (blob.size() < sizeof(hdr)) {
    index->status = absl::DataLossError(absl::StrCat(kVmlinuxBtf, ": truncated header"));
    return index;
  }
  memcpy(&hdr, blob.data(), sizeof(hdr));
  if (hdr.magic != BTF_MAGIC || size_t{hdr.hdr_len} + hdr.type_off + hdr.type_len > blob.size() ||
      size_t{hdr.hdr_len} + hdr.str_off + hdr.str_len > blob.size()) {
    index->status = absl::DataLossError(absl::StrCat(kVmlinuxBtf, ": bad header"));
    return index;
  }
  const char* types = blob.data() + hdr.hdr_len + hdr.type_off;
  const char* strings = blob.data() + hdr.hdr_len + hdr.str_off;
  size_t pos = 0;
  for (uint32_t id = 1; pos + sizeof(btf_type) <= hdr.type_len; ++id) {
    btf_type t;
    memcpy(&t, types + pos, sizeof(t));
    uint32_t kind = BTF_INFO_KIND(t.info);
    size_t trailer = 0;
    if (!TrailerSize(kind, BTF_INFO_VLEN(t.info), &trailer)) {
      index->status = absl::UnimplementedError(absl::StrFormat(
          "%s: BTF kind %u (type %u) is unknown to tether; lookups stop there", kVmlinuxBtf,
          kind, id));
      break;
    }
    if (t.name_off != 0 && t.name_off < hdr.str_len) {
      index->ids.try_emplace(std::make_pair(kind, std::string(strings + t.name_off)), id);
    }
    pos += sizeof(btf_type) + trailer;
  }
  return index;
}

const Index& TheIndex() {
  static Index* index = Build();
  return *index;
}

const char* KindName(uint32_t kind) {
  switch (kind) {
    case BTF_KIND_FUNC: return "function";
    case BTF_KIND_TYPEDEF: return "typedef";
    case BTF_KIND_STRUCT: return "struct";
    default: return "type";
  }
}

}  // namespace

absl::StatusOr<uint32_t> VmlinuxBtfTypeId(const std::string& name, uint32_t kind) {
  const Index& index = TheIndex();
  auto it = index.ids.find(std::make_pair(kind, name));
  if (it != index.ids.end()) return it->second;
  if (!index.status.ok()) return index.status;
  return absl::NotFoundError(
      absl::StrFormat("vmlinux BTF has no %s named '%s'", KindName(kind), name));
}

}  // namespace tether::detail
