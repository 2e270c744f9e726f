// From counter.bpf.c to a loaded, attached program: see docs/getting-started.md.
#include <unistd.h>

#include <cstdio>

#include "counter.skel.hpp"

int main() {
  auto skel = counter::Skel::Open();  // the object is embedded in the header
  if (!skel.ok()) return fprintf(stderr, "%s\n", skel.status().ToString().c_str()), 1;
  skel->mutable_rodata()->target_pid = getpid();  // a constant the verifier will see
  if (auto st = skel->Load(); !st.ok()) return fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  if (auto st = skel->Attach(); !st.ok()) return fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  for (int i = 0; i < 3; ++i) getpid();
  unsigned long long calls = skel->bss()->calls;  // the .bss, mapped into this process
  printf("count_getpid saw %llu getpid() calls\n", calls);
  return calls == 3 ? 0 : 1;
}  // the skeleton closes everything: the link detaches, the program and maps go
