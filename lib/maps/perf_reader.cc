#include "tether/perf_reader.h"

#include <linux/perf_event.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "sys/cpus.h"
#include "sys/bpf.h"

namespace tether {

namespace {

constexpr uint64_t kWakeTag = ~uint64_t{0};

std::string Describe(const Map& map) {
  return absl::StrFormat("perf event array '%s' (id %u)", map.name(), map.id());
}

}  // namespace

std::vector<uint32_t> OnlineCpus() {
  std::vector<uint32_t> cpus = detail::ReadCpuList("/sys/devices/system/cpu/online");
  if (cpus.empty()) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < n; ++c) cpus.push_back(static_cast<uint32_t>(c));
  }
  return cpus;
}

struct PerfReader::CpuRing {
  uint32_t cpu = 0;
  int fd = -1;
  uint8_t* base = nullptr;  // the metadata page, then the data pages
  size_t length = 0;
  uint8_t* data = nullptr;
  uint64_t size = 0;

  perf_event_mmap_page* meta() const { return reinterpret_cast<perf_event_mmap_page*>(base); }
  ~CpuRing() {
    if (base) munmap(base, length);
    if (fd >= 0) close(fd);
  }
};

PerfReader::PerfReader(Map map, PerfReaderOptions options, int epoll_fd, int event_fd)
    : map_(std::move(map)), options_(std::move(options)), epoll_fd_(epoll_fd), event_fd_(event_fd) {}

PerfReader::~PerfReader() {
  // Leave no stale entries: a program writing to a slot whose ring is gone
  // would get ENOENT and we would keep the event alive through the map.
  for (const auto& r : rings_) sys::MapDeleteElem(map_.fd(), &r->cpu);
  rings_.clear();
  close(event_fd_);
  close(epoll_fd_);
}

absl::StatusOr<std::unique_ptr<PerfReader>> PerfReader::Create(const Map& map,
                                                               PerfReaderOptions options) {
  if (!map) return absl::InvalidArgumentError("perf reader: the map handle is empty");
  if (map.type() != BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
    return absl::InvalidArgumentError(absl::StrFormat("map '%s' (id %u): perf reader: a %s, not a perf_event_array",
                                                      map.name(), map.id(), MapTypeName(map.type())));
  }
  if (!options.on_sample)
    return absl::InvalidArgumentError(absl::StrCat(Describe(map), ": perf reader: no on_sample callback"));
  const uint32_t pages = options.pages_per_cpu;
  if (pages == 0 || (pages & (pages - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: perf reader: pages_per_cpu %u is not a power of two", Describe(map), pages));
  }

  sys::Fd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) return sys::ErrnoStatus(errno, Describe(map), "epoll_create1");
  sys::Fd ev(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!ev.valid()) return sys::ErrnoStatus(errno, Describe(map), "eventfd");
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = kWakeTag;
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, ev.get(), &e) < 0)
    return sys::ErrnoStatus(errno, Describe(map), "epoll_ctl (eventfd)");
  uint32_t wakeup = options.wakeup_events ? options.wakeup_events : 1;
  std::unique_ptr<PerfReader> reader(
      new PerfReader(map, std::move(options), ep.Release(), ev.Release()));

  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (uint32_t cpu : OnlineCpus()) {
    if (cpu >= map.max_entries()) continue;
    auto ring = std::make_unique<CpuRing>();
    ring->cpu = cpu;
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_BPF_OUTPUT;
    attr.sample_type = PERF_SAMPLE_RAW;
    attr.sample_period = 1;
    attr.wakeup_events = wakeup;
    int fd = static_cast<int>(syscall(__NR_perf_event_open, &attr, -1, static_cast<int>(cpu), -1,
                                      PERF_FLAG_FD_CLOEXEC));
    if (fd < 0) {
      return sys::ErrnoStatus(errno, Describe(map),
                              absl::StrFormat("perf_event_open (bpf output, cpu %u)", cpu));
    }
    ring->fd = fd;
    ring->length = page * (1 + size_t{pages});
    void* base = mmap(nullptr, ring->length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
      return sys::ErrnoStatus(errno, Describe(map), absl::StrFormat("mmap (perf ring, cpu %u)", cpu));
    }
    ring->base = static_cast<uint8_t*>(base);
    // data_offset/data_size exist since 4.1; older kernels leave them 0
    // and put the data right after the metadata page.
    perf_event_mmap_page* meta = ring->meta();
    ring->data = ring->base + (meta->data_offset ? meta->data_offset : page);
    ring->size = meta->data_size ? meta->data_size : page * pages;
    if (ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) < 0)
      return sys::ErrnoStatus(errno, Describe(map), absl::StrFormat("enable perf event (cpu %u)", cpu));
    uint32_t value = static_cast<uint32_t>(fd);
    int ret = sys::MapUpdateElem(map.fd(), &cpu, &value, BPF_ANY);
    if (ret < 0) return sys::ErrnoStatus(-ret, Describe(map), absl::StrFormat("store ring fd at [%u]", cpu));
    e.events = EPOLLIN;
    e.data.u64 = reader->rings_.size();
    // Pushed before epoll_ctl so that a failure still deletes the entry.
    reader->rings_.push_back(std::move(ring));
    if (epoll_ctl(reader->epoll_fd_, EPOLL_CTL_ADD, fd, &e) < 0)
      return sys::ErrnoStatus(errno, Describe(map), absl::StrFormat("epoll_ctl (cpu %u)", cpu));
  }
  if (reader->rings_.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: perf reader: no online CPU is below max_entries %u", Describe(map), map.max_entries()));
  }
  reader->events_capacity_ = reader->rings_.size() + 1;
  reader->events_.reset(new epoll_event[reader->events_capacity_]);
  // The largest record is 64 KiB (perf_event_header::size is 16 bits).
  reader->scratch_.resize(size_t{1} << 16);
  return reader;
}

int PerfReader::ConsumeRing(CpuRing& r) {
  perf_event_mmap_page* meta = r.meta();
  // Acquire pairs with the kernel's release of data_head after writing.
  const uint64_t head = std::atomic_ref<__u64>(meta->data_head).load(std::memory_order_acquire);
  uint64_t tail = meta->data_tail;  // only we write it
  int delivered = 0;
  while (tail < head) {
    const uint64_t off = tail & (r.size - 1);
    // Records are 8-aligned and the ring a power of two, so the header
    // itself never straddles the end; the body may.
    const auto* hdr = reinterpret_cast<const perf_event_header*>(r.data + off);
    const uint16_t size = hdr->size;
    if (size < sizeof(perf_event_header)) break;  // corrupt; stop rather than spin
    const uint8_t* rec = r.data + off;
    if (off + size > r.size) {
      const size_t first = r.size - off;
      memcpy(scratch_.data(), r.data + off, first);
      memcpy(scratch_.data() + first, r.data, size - first);
      rec = scratch_.data();
    }
    if (hdr->type == PERF_RECORD_SAMPLE && size >= sizeof(perf_event_header) + 4) {
      uint32_t raw = 0;
      memcpy(&raw, rec + sizeof(perf_event_header), 4);
      const uint32_t room = size - sizeof(perf_event_header) - 4;
      if (raw > room) raw = room;
      options_.on_sample(r.cpu, absl::MakeConstSpan(rec + sizeof(perf_event_header) + 4, raw));
      ++delivered;
    } else if (hdr->type == PERF_RECORD_LOST && size >= sizeof(perf_event_header) + 16) {
      uint64_t lost = 0;
      memcpy(&lost, rec + sizeof(perf_event_header) + 8, 8);  // after the event id
      lost_ += lost;
      if (options_.on_lost) options_.on_lost(r.cpu, lost);
    }
    tail += size;
  }
  // Release: we are done reading what lies before the new tail.
  std::atomic_ref<__u64>(meta->data_tail).store(tail, std::memory_order_release);
  return delivered;
}

int PerfReader::Consume() {
  int total = 0;
  for (auto& r : rings_) total += ConsumeRing(*r);
  return total;
}

absl::StatusOr<int> PerfReader::Poll(std::chrono::milliseconds timeout) {
  woken_ = false;
  int ms = timeout.count() < 0 ? -1
           : timeout.count() > INT32_MAX ? INT32_MAX
                                        : static_cast<int>(timeout.count());
  int n = epoll_wait(epoll_fd_, events_.get(), static_cast<int>(events_capacity_), ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return sys::ErrnoStatus(errno, Describe(map_), "epoll_wait");
  }
  int total = 0;
  for (int i = 0; i < n; ++i) {
    uint64_t tag = events_[i].data.u64;
    if (tag == kWakeTag) {
      uint64_t count;
      (void)!read(event_fd_, &count, sizeof(count));
      woken_ = true;
      continue;
    }
    total += ConsumeRing(*rings_[tag]);
  }
  return total;
}

void PerfReader::Wakeup() const {
  uint64_t one = 1;
  (void)!write(event_fd_, &one, sizeof(one));
}

std::vector<uint32_t> PerfReader::cpus() const {
  std::vector<uint32_t> out;
  for (const auto& r : rings_) out.push_back(r->cpu);
  return out;
}

}  // namespace tether
