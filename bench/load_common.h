// The objects the load benchmarks run over, and one load with each loader,
// shared by load_bench.cc, elf_open_once.cc (callgrind) and agent_memory.cc.
//
// Every comparison uses the same set for both loaders: objects that one of
// them cannot open or load here are left out of both, and listed.
#ifndef TETHER_BENCH_LOAD_COMMON_H_
#define TETHER_BENCH_LOAD_COMMON_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

struct bpf_object;

namespace tether::bench {

struct BenchObject {
  std::string name;
  std::vector<uint8_t> bytes;
};

// How many objects ElfOpenSet considered, and how many each loader refused.
struct ElfOpenRefusals {
  size_t candidates = 0;
  size_t tether = 0;
  size_t libbpf = 0;
};
// Every test object (test/bpf/*.bpf.c) and every corpus object (*.elf),
// kept if both tether and libbpf open them. The first call prints the set's
// size and what was left out, with each refusal, to stderr.
const std::vector<BenchObject>& ElfOpenSet(std::vector<std::string>* left_out = nullptr,
                                           ElfOpenRefusals* refusals = nullptr);
// The test objects and the corpus objects that load here, kept if both
// loaders load them.
const std::vector<BenchObject>& LoadSet(std::vector<std::string>* left_out = nullptr);
// The agent-scale object (bench/gen_agent.py).
const BenchObject& AgentObject();

// Parse only.
absl::Status TetherOpen(const BenchObject& o);
absl::Status LibbpfOpen(const BenchObject& o);
// Open, load everything, then close it all and remove the pins it made
// (under a bpffs directory of the caller's).
absl::Status TetherLoad(const BenchObject& o, const std::string& pin_dir);
// The same with CollectionOptions::load_threads = 1: programs one after
// another, as before threaded loading.
absl::Status TetherLoadSerial(const BenchObject& o, const std::string& pin_dir);
absl::Status LibbpfLoad(const BenchObject& o, const std::string& pin_dir);
// libbpf loads, kept open (for RSS measurements); close with bpf_object__close.
struct bpf_object* LibbpfLoadKeep(const BenchObject& o, const std::string& pin_dir, absl::Status* status);

// A fresh directory on bpffs for pins; removed by RemovePinDir.
std::string MakePinDir();
void RemovePinDir(const std::string& dir);

// Time spent inside BPF_PROG_LOAD (the verifier, mostly), and inside any
// bpf() call, by this process, tether's or libbpf's, while counting is on.
void CountProgLoad(bool on);
uint64_t ProgLoadNanos();
uint64_t ProgLoadCalls();
uint64_t BpfNanos();
uint64_t BpfCalls();
void ResetProgLoad();

}  // namespace tether::bench

#endif  // TETHER_BENCH_LOAD_COMMON_H_
