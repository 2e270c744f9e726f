#include "test_support.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

namespace tether::testing {

std::string BpfObjectPath(const std::string& name) {
  return std::string(TETHER_TEST_BPF_DIR) + "/" + name + ".bpf.o";
}

std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> OpenFds() {
  std::vector<std::string> out;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return out;
  int self = dirfd(dir);
  while (struct dirent* ent = readdir(dir)) {
    if (ent->d_name[0] == '.') continue;
    int fd = atoi(ent->d_name);
    if (fd == self) continue;
    char target[512] = {0};
    std::string link = std::string("/proc/self/fd/") + ent->d_name;
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    out.push_back(std::string(ent->d_name) + " -> " + (n > 0 ? std::string(target, n) : "?"));
  }
  closedir(dir);
  return out;
}

size_t CountOpenFds() { return OpenFds().size(); }

bool UnderCi() {
  const char* ci = getenv("CI");
  return ci && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

bool EnsureBpffs(std::string* why) {
  struct statfs st;
  if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC) return true;
  mkdir("/sys/fs/bpf", 0755);
  if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0) {
    *why = std::string("cannot mount bpffs at /sys/fs/bpf: ") + strerror(errno);
    return false;
  }
  return true;
}

void RemoveTree(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir) {
    while (struct dirent* ent = readdir(dir)) {
      std::string name = ent->d_name;
      if (name == "." || name == "..") continue;
      std::string child = path + "/" + name;
      struct stat st;
      if (lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        RemoveTree(child);
      } else {
        unlink(child.c_str());
      }
    }
    closedir(dir);
  }
  rmdir(path.c_str());
}

TempPinDir::TempPinDir() {
  static std::atomic<int> counter{0};
  std::string why;
  REQUIRE(EnsureBpffs(&why));
  mkdir("/sys/fs/bpf/tether-test", 0700);
  path_ = "/sys/fs/bpf/tether-test/" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  RemoveTree(path_);
  REQUIRE(mkdir(path_.c_str(), 0700) == 0);
}

TempPinDir::~TempPinDir() {
  RemoveTree(path_);
  rmdir("/sys/fs/bpf/tether-test");  // only succeeds when empty
}

}  // namespace tether::testing

#include "sys/bpf.h"
#include "test_programs.h"

namespace tether::testing {
// Walks ids instead of opening the object: an fd by id is a user
// reference, and closing it on an orphaned program array queues the
// kernel's clearing work again. If that work is still pending, the kernel
// (6.18 here) leaks the map reference it took for it, and the array is
// never freed.
bool KernelHasId(sys::ObjectKind kind, uint32_t id) {
  uint32_t cur = id - 1;
  uint32_t next = 0;
  return id > 0 && sys::GetNextId(kind, cur, &next) == 0 && next == id;
}
bool KernelHasMap(uint32_t id) { return KernelHasId(sys::ObjectKind::kMap, id); }
bool KernelHasProgram(uint32_t id) { return KernelHasId(sys::ObjectKind::kProgram, id); }
}  // namespace tether::testing
