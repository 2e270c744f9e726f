// The object graph of the whole live system, built from kernel ids rather
// than from this process's handles: every program with the maps it uses,
// every program array with its entries, every map-in-map with its inner
// maps, every link with its program and target, every pin under bpffs,
// and every process holding an fd on any of them.
//
// The result is an ObjectGraph of its own, so Explain, WhatBreaks, Cycles
// and the text / DOT / JSON exports work on it as on graph().
#ifndef TETHER_SYSTEM_GRAPH_H_
#define TETHER_SYSTEM_GRAPH_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tether/graph.h"

namespace tether {

struct SystemScanOptions {
  // Walked recursively for pins. Missing or not bpffs: no pins.
  std::string pin_root = "/sys/fs/bpf";
  // Scan /proc/*/fdinfo for processes holding fds (the scanning process
  // itself is left out: its fds exist only for the scan).
  bool fd_holders = true;
};

// Needs root (CAP_SYS_ADMIN) to open objects by id.
absl::StatusOr<std::unique_ptr<ObjectGraph>> ScanSystem(const SystemScanOptions& options = {});

}  // namespace tether

#endif  // TETHER_SYSTEM_GRAPH_H_
