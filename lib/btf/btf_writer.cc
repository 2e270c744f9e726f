#include "btf/btf_writer.h"

#include <linux/btf.h>

#include <cstring>

namespace tether::btf {

void AppendWord(std::vector<uint8_t>* out, uint32_t word) {
  uint8_t bytes[sizeof(word)];
  memcpy(bytes, &word, sizeof(word));
  out->insert(out->end(), bytes, bytes + sizeof(word));
}

uint32_t TypeInfo(BtfKind kind, bool kind_flag, uint32_t vlen) {
  return (static_cast<uint32_t>(kind) << 24) | (kind_flag ? 1u << 31 : 0) | (vlen & 0xffff);
}

std::vector<uint8_t> AssembleBlob(absl::Span<const uint8_t> types, absl::string_view strings) {
  struct btf_header hdr = {};
  hdr.magic = BTF_MAGIC;
  hdr.version = BTF_VERSION;
  hdr.hdr_len = sizeof(hdr);
  hdr.type_off = 0;
  hdr.type_len = static_cast<uint32_t>(types.size());
  hdr.str_off = hdr.type_len;
  hdr.str_len = static_cast<uint32_t>(strings.size());
  std::vector<uint8_t> blob;
  blob.reserve(sizeof(hdr) + types.size() + strings.size());
  const auto* header_bytes = reinterpret_cast<const uint8_t*>(&hdr);
  blob.insert(blob.end(), header_bytes, header_bytes + sizeof(hdr));
  blob.insert(blob.end(), types.begin(), types.end());
  blob.insert(blob.end(), strings.begin(), strings.end());
  return blob;
}

std::vector<uint8_t> BlobHeader(uint32_t type_len, uint32_t str_len) {
  struct btf_header hdr = {};
  hdr.magic = BTF_MAGIC;
  hdr.version = BTF_VERSION;
  hdr.hdr_len = sizeof(hdr);
  hdr.type_off = 0;
  hdr.type_len = type_len;
  hdr.str_off = type_len;
  hdr.str_len = str_len;
  std::vector<uint8_t> blob;
  blob.reserve(sizeof(hdr) + uint64_t{type_len} + str_len);
  const auto* header_bytes = reinterpret_cast<const uint8_t*>(&hdr);
  blob.insert(blob.end(), header_bytes, header_bytes + sizeof(hdr));
  return blob;
}

uint32_t WireSize(const BtfType& t) {
  constexpr uint32_t kHeader = 12;
  switch (t.kind) {
    case BtfKind::kInt:
    case BtfKind::kVar:
    case BtfKind::kDeclTag:
      return kHeader + 4;
    case BtfKind::kArray:
      return kHeader + 12;
    case BtfKind::kStruct:
    case BtfKind::kUnion:
    case BtfKind::kEnum64:
    case BtfKind::kDatasec:
      return kHeader + 12 * t.vlen;
    case BtfKind::kFuncProto:
    case BtfKind::kEnum:
      return kHeader + 8 * t.vlen;
    default:
      return kHeader;
  }
}

void WordWriter::Flush() {
  const auto* bytes = reinterpret_cast<const uint8_t*>(block_);
  out_->insert(out_->end(), bytes, bytes + n_ * sizeof(uint32_t));
  n_ = 0;
}

BtfWriter::BtfWriter() : strings_(1, '\0') {}

uint32_t BtfWriter::Str(absl::string_view name) {
  uint32_t off = static_cast<uint32_t>(strings_.size());
  strings_.append(name.data(), name.size());
  strings_.push_back('\0');
  return off;
}

uint32_t BtfWriter::Add(uint32_t name_off, BtfKind kind, uint32_t vlen, uint32_t size_or_type,
                        std::initializer_list<uint32_t> tail) {
  AppendWord(&types_, name_off);
  AppendWord(&types_, TypeInfo(kind, false, vlen));
  AppendWord(&types_, size_or_type);
  for (uint32_t word : tail) AppendWord(&types_, word);
  return next_id_++;
}

uint32_t BtfWriter::Int() {
  constexpr uint32_t kSigned32 = (uint32_t{kBtfIntSigned} << 24) | 32;  // encoding, bits
  return Add(Str("int"), BtfKind::kInt, 0, sizeof(int32_t), {kSigned32});
}

std::vector<uint8_t> BtfWriter::Bytes() const { return AssembleBlob(types_, strings_); }

}  // namespace tether::btf
