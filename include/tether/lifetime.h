// What tether does when the last user reference of a program array is
// about to go while programs still tail-call through it. See
// docs/lifecycle.md: the kernel clears such an array at that moment, and
// every tail call through it then misses without a sound.
#ifndef TETHER_LIFETIME_H_
#define TETHER_LIFETIME_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tether {

enum class LifetimePolicy : uint8_t {
  kDefault = 0,  // per-map only: use the global policy
  kWarn,         // tell the diagnostic sink, then release
  kKeepAlive,    // keep the fd until ReleaseKept() or process exit (and say so)
  kPin,          // pin under the configured directory, then release
  kIgnore,       // release silently
  // A programming error: the last handle must not go while programs
  // tail-call through the array. Dropping it sends kProgramArrayRefused
  // and keeps the fd (as KeepAlive does, until ReleaseKept) so the tail
  // calls keep working; with graph().SetAbortOnRefusal(true) (the default
  // in builds without NDEBUG) the process then aborts with the message.
  // Map::Close refuses with FailedPrecondition, even when forced.
  kRefuse,
};

const char* LifetimePolicyName(LifetimePolicy policy);

struct Diagnostic {
  enum class Kind {
    kProgramArrayOrphaned,  // the last user reference went; the kernel clears it
    kProgramArrayKept,      // KeepAlive kept it
    kProgramArrayPinned,    // Pin pinned it
    kPolicyFailed,          // the policy could not be applied (e.g. pin failed)
    kProgramArrayRefused,   // Refuse: the last handle went anyway; tether keeps the fd
  };
  Kind kind;
  std::string message;  // complete, human-readable
  std::string map_name;
  uint32_t map_id = 0;
  size_t entries = 0;
  std::vector<std::string> programs;  // "name (id N)" of programs that tail-call through it
  std::string pin_path;               // for kProgramArrayPinned
};

using DiagnosticSink = std::function<void(const Diagnostic&)>;

const char* DiagnosticKindName(Diagnostic::Kind kind);

// Replaces the process-wide sink. An empty function restores the default,
// which writes the message to stderr.
void SetDiagnosticSink(DiagnosticSink sink);

}  // namespace tether

#endif  // TETHER_LIFETIME_H_
