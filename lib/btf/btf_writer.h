// BTF in the wire format that BTF_LOAD takes, written type by type: the
// one writer behind Btf::Marshal and the feature probes' tiny blobs.
#ifndef TETHER_LIB_BTF_BTF_WRITER_H_
#define TETHER_LIB_BTF_BTF_WRITER_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "tether/btf.h"

namespace tether::btf {

// Appends `word` in the host's byte order, the order BTF_LOAD reads.
void AppendWord(std::vector<uint8_t>* out, uint32_t word);

// A btf_type's info word: kind, kind_flag and vlen where the kernel looks.
uint32_t TypeInfo(BtfKind kind, bool kind_flag, uint32_t vlen);

// The header, `types` (btf_type records) and `strings` (which start with
// the empty name), as one blob.
std::vector<uint8_t> AssembleBlob(absl::Span<const uint8_t> types, absl::string_view strings);

// An empty blob's header for `type_len` bytes of types and `str_len` of
// strings, in a vector with room for both.
std::vector<uint8_t> BlobHeader(uint32_t type_len, uint32_t str_len);

// The bytes type `t` takes in the wire format: its header and what its
// kind appends.
uint32_t WireSize(const BtfType& t);

// Appends words to a byte vector through a small staging block: an insert
// per word cost more than the word. Flush() before reading the vector.
class WordWriter {
 public:
  explicit WordWriter(std::vector<uint8_t>* out) : out_(out) {}
  ~WordWriter() { Flush(); }
  WordWriter(const WordWriter&) = delete;
  WordWriter& operator=(const WordWriter&) = delete;
  void Put(uint32_t word) {
    if (n_ == kBlock) Flush();
    block_[n_++] = word;
  }
  void Flush();

 private:
  static constexpr size_t kBlock = 256;
  std::vector<uint8_t>* out_;
  uint32_t block_[kBlock];
  size_t n_ = 0;
};

// Builds small BTF from raw records; ids count from 1 in the order added.
class BtfWriter {
 public:
  BtfWriter();

  // The offset of `name` in the string section, to pass as a name_off.
  uint32_t Str(absl::string_view name);

  // One btf_type and the words its kind appends after it; returns its id.
  uint32_t Add(uint32_t name_off, BtfKind kind, uint32_t vlen, uint32_t size_or_type,
               std::initializer_list<uint32_t> tail = {});

  // A signed 32-bit `int`: what most probes need something to point at.
  uint32_t Int();

  std::vector<uint8_t> Bytes() const;

 private:
  std::vector<uint8_t> types_;
  std::string strings_;
  uint32_t next_id_ = 1;
};

}  // namespace tether::btf

#endif  // TETHER_LIB_BTF_BTF_WRITER_H_
