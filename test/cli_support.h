// Runs the `tether` binary (TETHER_CLI) the way a user would.
#ifndef TETHER_TEST_CLI_SUPPORT_H_
#define TETHER_TEST_CLI_SUPPORT_H_

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <catch2/catch.hpp>

namespace tether::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `prefix` goes before the binary: "nsenter --net=/proc/42/ns/net".
inline CliResult RunCli(const std::string& args, const std::string& prefix = "") {
  std::string err_file = "/tmp/tether-cli-test-" + std::to_string(getpid()) + ".err";
  std::string cmd = prefix + (prefix.empty() ? "" : " ") + std::string(TETHER_CLI) + " " + args +
                    " 2>" + err_file;
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_file);
  r.err.assign(std::istreambuf_iterator<char>(in), {});
  unlink(err_file.c_str());
  return r;
}

// The block of `text` that starts at the line containing `marker`: that
// line and the indented lines under it ("" if the marker is missing).
inline std::string BlockOf(const std::string& text, const std::string& marker) {
  size_t at = text.find(marker);
  if (at == std::string::npos) return "";
  at = text.rfind('\n', at);
  at = at == std::string::npos ? 0 : at + 1;
  size_t next = at;
  while ((next = text.find('\n', next + 1)) != std::string::npos && next + 1 < text.size() &&
         text[next + 1] == ' ') {
  }
  return text.substr(at, next == std::string::npos ? std::string::npos : next - at);
}

}  // namespace tether::testing

#endif  // TETHER_TEST_CLI_SUPPORT_H_
