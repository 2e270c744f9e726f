// Who holds fds on BPF objects: /proc/PID/fdinfo of every process.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "inspect/scan_internal.h"

namespace tether::inspect {
namespace {

// The whole of a small /proc file; fdinfo is a few hundred bytes.
bool ReadSmallFile(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[2048];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  if (n <= 0) return false;
  out->assign(buf, static_cast<size_t>(n));
  return true;
}

std::string ReadComm(const std::string& pid) {
  std::string comm;
  if (!ReadSmallFile("/proc/" + pid + "/comm", &comm)) return "?";
  return std::string(absl::StripTrailingAsciiWhitespace(comm));
}

struct FdInfo {
  uint32_t map_id = 0, map_type = 0, prog_id = 0, link_id = 0;
};

FdInfo ParseFdInfo(absl::string_view text) {
  FdInfo info;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    absl::string_view line = text.substr(0, eol);
    text = eol == absl::string_view::npos ? absl::string_view() : text.substr(eol + 1);
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    absl::string_view key = line.substr(0, colon);
    uint32_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(colon + 1)), &v)) continue;
    if (key == "map_id") info.map_id = v;
    else if (key == "map_type") info.map_type = v;
    else if (key == "prog_id") info.prog_id = v;
    else if (key == "link_id") info.link_id = v;
  }
  return info;
}

}  // namespace

std::string FdHolder::ToString() const { return absl::StrFormat("pid %d (%s) fd %d", pid, comm, fd); }

FdScan ScanFdHolders() {
  FdScan scan;
  int self = getpid();
  DIR* proc = opendir("/proc");
  if (!proc) return scan;
  while (struct dirent* p = readdir(proc)) {
    int pid = 0;
    if (!isdigit(static_cast<unsigned char>(p->d_name[0])) || !absl::SimpleAtoi(p->d_name, &pid))
      continue;
    std::string fd_dir = absl::StrFormat("/proc/%d/fd", pid);
    DIR* fds = opendir(fd_dir.c_str());
    if (!fds) {
      if (errno == EACCES || errno == EPERM) scan.unreadable.push_back(pid);
      continue;  // ENOENT: the process exited meanwhile
    }
    std::string comm;
    char target[64];
    while (struct dirent* f = readdir(fds)) {
      if (f->d_name[0] == '.') continue;
      // Only anon inodes named bpf-map, bpf-prog and bpf_link are ours: the
      // symlink is cheaper to read than fdinfo for every socket and file.
      std::string link = fd_dir + "/" + f->d_name;
      ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
      if (n < 0 && (errno == EACCES || errno == EPERM)) {
        scan.unreadable.push_back(pid);  // the directory lists, the links do not resolve
        break;
      }
      if (n <= 0) continue;
      target[n] = 0;
      if (strncmp(target, "anon_inode:bpf", 14) != 0) continue;
      std::string text;
      if (!ReadSmallFile(absl::StrFormat("/proc/%d/fdinfo/%s", pid, f->d_name), &text)) continue;
      FdInfo info = ParseFdInfo(text);
      // Link fds also report their program's id; the fd is the link's.
      NodeRef ref;
      if (info.link_id) ref = {NodeKind::kLink, info.link_id};
      else if (info.map_id) ref = {NodeKind::kMap, info.map_id};
      else if (info.prog_id) ref = {NodeKind::kProgram, info.prog_id};
      else continue;
      if (info.map_id && !info.link_id) scan.map_types[info.map_id] = info.map_type;
      if (pid == self) {
        scan.own.insert(ref);
        continue;
      }
      if (comm.empty()) comm = ReadComm(p->d_name);
      int fd = 0;
      absl::SimpleAtoi(f->d_name, &fd);
      scan.holders[ref].push_back({pid, comm, fd});
    }
    closedir(fds);
  }
  closedir(proc);
  return scan;
}

}  // namespace tether::inspect
