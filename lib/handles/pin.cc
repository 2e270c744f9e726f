#include "tether/pin.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "graph/graph_internal.h"
#include "handles/pin_internal.h"
#include "sys/bpf.h"
#include "base/printable.h"
#include "base/status_macros.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

namespace tether {
namespace {

std::string Parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// statfs of the path, or of its nearest existing ancestor.
absl::Status StatfsExisting(const std::string& path, struct statfs* st, std::string* checked) {
  std::string cur = path;
  for (int depth = 0; depth < 256; ++depth) {
    if (statfs(cur.c_str(), st) == 0) {
      *checked = cur;
      return absl::OkStatus();
    }
    if (errno != ENOENT) return sys::ErrnoStatus(errno, absl::StrCat("pin path ", path), "statfs");
    if (cur == "/" || cur == ".") break;
    cur = Parent(cur);
  }
  return absl::NotFoundError(absl::StrCat("pin path ", path, ": no existing ancestor"));
}

}  // namespace

absl::Status CheckOnBpffs(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("pin path: empty");
  struct statfs st;
  std::string checked;
  TETHER_RETURN_IF_ERROR(StatfsExisting(path, &st, &checked));
  if (static_cast<uint32_t>(st.f_type) != BPF_FS_MAGIC) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "pin path %s: %s is not on bpffs (filesystem magic 0x%x); pins live on a bpf "
        "filesystem, e.g. `mount -t bpf bpf /sys/fs/bpf`",
        path, checked, static_cast<uint32_t>(st.f_type)));
  }
  return absl::OkStatus();
}

absl::Status EnsureBpffsMounted(const std::string& mount_point) {
  struct statfs st;
  if (statfs(mount_point.c_str(), &st) == 0 && static_cast<uint32_t>(st.f_type) == BPF_FS_MAGIC)
    return absl::OkStatus();
  mkdir(mount_point.c_str(), 0755);
  if (mount("bpf", mount_point.c_str(), "bpf", 0, "mode=0700") != 0) {
    return sys::ErrnoStatus(errno, absl::StrCat("bpffs at ", mount_point), "mount");
  }
  return absl::OkStatus();
}

namespace {
// bpffs objects are anon inodes; their link target names the kind.
std::string FdKind(int fd) {
  char link[64] = {0};
  std::string proc = absl::StrCat("/proc/self/fd/", fd);
  ssize_t n = readlink(proc.c_str(), link, sizeof(link) - 1);
  std::string target(link, n > 0 ? n : 0);
  if (target == "anon_inode:bpf-map") return "map";
  if (target == "anon_inode:bpf-prog") return "prog";
  if (target.rfind("anon_inode:bpf_link", 0) == 0 || target.rfind("anon_inode:bpf-link", 0) == 0)
    return "link";
  return target;
}
}  // namespace

absl::StatusOr<std::string> PinnedObjectKind(const std::string& path) {
  auto fd = sys::ObjGet(path.c_str(), 0);
  if (!fd.ok()) {
    return sys::ErrnoStatus(sys::StatusErrno(fd.status()), absl::StrCat("pin ", path), "BPF_OBJ_GET");
  }
  return FdKind(fd->get());
}

absl::StatusOr<std::vector<std::string>> ListPins(const std::string& dir) {
  TETHER_RETURN_IF_ERROR(CheckOnBpffs(dir));
  DIR* d = opendir(dir.c_str());
  if (!d) return sys::ErrnoStatus(errno, absl::StrCat("pin directory ", dir), "opendir");
  std::vector<std::string> out;
  while (struct dirent* ent = readdir(d)) {
    if (ent->d_name[0] == '.') continue;
    std::string path = absl::StrCat(dir, "/", ent->d_name);
    struct stat st;
    if (lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) out.push_back(path);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

absl::Status LoadPinsInto(const std::string& dir, bool recursive, int depth, PinnedObjects* out) {
  if (depth > 64) return absl::FailedPreconditionError(absl::StrCat("pin directory ", dir, ": too deep"));
  auto pins = ListPins(dir);
  if (!pins.ok()) return pins.status();
  for (const std::string& path : *pins) {
    auto kind = PinnedObjectKind(path);
    if (!kind.ok()) return kind.status();
    if (*kind == "map") {
      auto m = Map::LoadPinned(path);
      if (!m.ok()) return m.status();
      out->maps.emplace(path, std::move(*m));
    } else if (*kind == "prog") {
      auto p = Program::LoadPinned(path);
      if (!p.ok()) return p.status();
      out->programs.emplace(path, std::move(*p));
    } else if (*kind == "link") {
      auto l = Link::LoadPinned(path);
      if (!l.ok()) return l.status();
      out->links.emplace(path, std::move(*l));
    } else {
      return absl::UnimplementedError(
          absl::StrCat("pin ", path, ": holds a ", *kind, ", which tether has no handle for"));
    }
  }
  if (!recursive) return absl::OkStatus();
  DIR* d = opendir(dir.c_str());
  if (!d) return sys::ErrnoStatus(errno, absl::StrCat("pin directory ", dir), "opendir");
  std::vector<std::string> subdirs;
  while (struct dirent* ent = readdir(d)) {
    if (ent->d_name[0] == '.') continue;
    std::string path = absl::StrCat(dir, "/", ent->d_name);
    struct stat st;
    if (lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) subdirs.push_back(path);
  }
  closedir(d);
  for (const std::string& sub : subdirs) {
    TETHER_RETURN_IF_ERROR(LoadPinsInto(sub, true, depth + 1, out));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PinnedObjects> LoadPinDirectory(const std::string& dir, bool recursive) {
  PinnedObjects out;
  TETHER_RETURN_IF_ERROR(LoadPinsInto(dir, recursive, 0, &out));
  return out;
}

namespace {

// Why `name` cannot be a file of its own in a pin directory, or empty.
std::string PinNameProblem(absl::string_view name) {
  if (name.empty()) return "it is empty";
  if (name == "." || name == "..") return "it names a directory, not a file in it";
  if (name.find('/') != absl::string_view::npos) return "it contains '/', which would leave the pin directory";
  if (name.size() > NAME_MAX) {
    return absl::StrFormat("it is %d bytes long, more than a file name may be (%d)", name.size(), NAME_MAX);
  }
  for (size_t i = 0; i < name.size();) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (c == '.') return "it contains '.', which bpffs refuses in names";
    if (c < 0x20 || c == 0x7f) return absl::StrFormat("it contains the control byte \\x%02x", c);
    size_t n = base::Utf8SequenceLength(name.substr(i));
    if (n == 0) return absl::StrFormat("it contains the byte \\x%02x, which is not UTF-8", c);
    if (n == 2 && c == 0xc2 && static_cast<unsigned char>(name[i + 1]) <= 0x9f) {
      return "it contains a C1 control character";
    }
    i += n;
  }
  return "";
}

}  // namespace

absl::Status ValidatePinName(absl::string_view name) {
  std::string problem = PinNameProblem(name);
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("pin name \"%s\" refused: %s", base::Printable(name), problem));
}

absl::StatusOr<std::string> PinPathInside(const std::string& dir, absl::string_view name,
                                          absl::string_view what) {
  absl::Status valid = ValidatePinName(name);
  if (!valid.ok()) return base::Annotate(valid, absl::StrCat(what, ": pin in ", base::Printable(dir)));
  std::string clean_dir = dir;
  while (clean_dir.size() > 1 && clean_dir.back() == '/') clean_dir.pop_back();
  std::string path = absl::StrCat(clean_dir, "/", name);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return path;
  // Something pinned a symbolic link here: follow it only if it stays in
  // the directory, or the object would reuse (or pin into) another's.
  char resolved[PATH_MAX], resolved_dir[PATH_MAX];
  bool ok = realpath(path.c_str(), resolved) != nullptr && realpath(clean_dir.c_str(), resolved_dir) != nullptr;
  if (ok) {
    std::string inside = absl::StrCat(resolved_dir, "/");
    ok = absl::string_view(resolved).substr(0, inside.size()) == inside;
  }
  if (!ok) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: pin path %s is a symbolic link that does not resolve inside the pin directory %s; "
        "refusing to follow it",
        what, base::Printable(path), base::Printable(clean_dir)));
  }
  return path;
}

namespace detail {

absl::Status PinFdAt(int fd, const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.find('.') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pin path ", path, ": bpffs refuses names that contain '.' (", base, ")"));
  }
  TETHER_RETURN_IF_ERROR(CheckOnBpffs(path));
  // Create missing parents; they are inside bpffs, since the nearest
  // existing ancestor is.
  for (size_t pos = 1; (pos = path.find('/', pos)) != std::string::npos; ++pos) {
    std::string dir = path.substr(0, pos);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return sys::ErrnoStatus(errno, absl::StrCat("pin path ", path), absl::StrCat("mkdir ", dir));
    }
  }
  int err = sys::ObjPin(fd, path.c_str());
  if (err < 0) return sys::ErrnoStatus(-err, absl::StrCat("pin path ", path), "BPF_OBJ_PIN");
  return absl::OkStatus();
}

std::vector<std::string> MissingDirectories(const std::string& dir) {
  std::vector<std::string> missing;
  std::string cur = dir;
  while (cur.size() > 1 && cur.back() == '/') cur.pop_back();
  struct stat st;
  while (!cur.empty() && cur != "/" && cur != "." && lstat(cur.c_str(), &st) != 0 && errno == ENOENT) {
    missing.push_back(cur);
    cur = Parent(cur);
  }
  return missing;  // deepest first
}

void RemoveDirectoriesIfEmpty(const std::vector<std::string>& dirs) {
  // rmdir refuses a directory that something else filled meanwhile.
  for (const std::string& d : dirs) rmdir(d.c_str());
}

absl::Status PinTracked(int fd, NodeRef ref, const std::string& what, const std::string& path) {
  std::string old = GraphPinPathOf(ref);
  if (path == old) return absl::OkStatus();
  absl::Status st = PinFdAt(fd, path);
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat(what, ": pin: ", st.message()));
  if (!old.empty()) {
    unlink(old.c_str());
    GraphRemovePin(old);
  }
  GraphAddPin(ref, path);
  return absl::OkStatus();
}

absl::StatusOr<sys::Fd> OpenPinned(const std::string& path, absl::string_view kind) {
  std::string what = absl::StrCat("pinned ", kind, " ", path);
  TETHER_RETURN_IF_ERROR(CheckOnBpffs(path));
  auto fd = sys::ObjGet(path.c_str());
  if (!fd.ok()) return sys::ErrnoStatus(sys::StatusErrno(fd.status()), what, "BPF_OBJ_GET");
  // A pin of another kind opens fine; refuse it now rather than at first use.
  std::string actual = FdKind(fd->get());
  if (actual != kind) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the pin holds a ", actual, ", not a ", kind));
  }
  return fd;
}

absl::Status UnpinTracked(NodeRef ref, const std::string& what) {
  std::string path = GraphPinPathOf(ref);
  if (path.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": unpin: not pinned by this process"));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return sys::ErrnoStatus(errno, what, absl::StrCat("unpin ", path));
  }
  GraphRemovePin(path);
  return absl::OkStatus();
}

}  // namespace detail
}  // namespace tether
