#include "tether/section_names.h"

#include <linux/bpf.h>

#include <catch2/catch.hpp>

#include "sys/uapi_compat.h"

namespace tether {
namespace {

struct Case {
  const char* section;
  uint32_t type;
  uint32_t attach;
  const char* target;
  uint32_t flags;
  bool ret;
};

TEST_CASE("section names map to program and attach types", "[section_names]") {
  namespace uapi = sys::uapi;
  const Case cases[] = {
      {"socket", BPF_PROG_TYPE_SOCKET_FILTER, 0, "", 0, false},
      {"socket1", BPF_PROG_TYPE_SOCKET_FILTER, 0, "", 0, false},
      {"socket/http", BPF_PROG_TYPE_SOCKET_FILTER, 0, "", 0, false},
      {"xdp", BPF_PROG_TYPE_XDP, BPF_XDP, "", 0, false},
      {"xdp.frags", BPF_PROG_TYPE_XDP, BPF_XDP, "", kProgFlagXdpHasFrags, false},
      {"xdp/devmap", BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP, "", 0, false},
      {"xdp_drop", BPF_PROG_TYPE_XDP, BPF_XDP, "", 0, false},
      {"tc", BPF_PROG_TYPE_SCHED_CLS, 0, "", 0, false},
      {"tcx/ingress", BPF_PROG_TYPE_SCHED_CLS, uapi::kAttachTcxIngress, "", 0, false},
      {"tcx/egress", BPF_PROG_TYPE_SCHED_CLS, uapi::kAttachTcxEgress, "", 0, false},
      {"classifier", BPF_PROG_TYPE_SCHED_CLS, 0, "", 0, false},
      {"classifier/3", BPF_PROG_TYPE_SCHED_CLS, 0, "", 0, false},
      {"action", BPF_PROG_TYPE_SCHED_ACT, 0, "", 0, false},
      {"kprobe/do_sys_open", BPF_PROG_TYPE_KPROBE, 0, "do_sys_open", 0, false},
      {"kretprobe/do_sys_open", BPF_PROG_TYPE_KPROBE, 0, "do_sys_open", 0, true},
      {"kprobe.multi/vfs_*", BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI, "vfs_*", 0, false},
      {"uprobe//bin/sh:main", BPF_PROG_TYPE_KPROBE, 0, "/bin/sh:main", 0, false},
      {"uretprobe.s/lib:f", BPF_PROG_TYPE_KPROBE, 0, "lib:f", kProgFlagSleepable, true},
      {"uprobe.multi/x:y*", BPF_PROG_TYPE_KPROBE, uapi::kAttachTraceUprobeMulti, "x:y*", 0, false},
      {"usdt/lib:prov:name", BPF_PROG_TYPE_KPROBE, 0, "lib:prov:name", 0, false},
      {"tracepoint/syscalls/sys_enter_open", BPF_PROG_TYPE_TRACEPOINT, 0,
       "syscalls/sys_enter_open", 0, false},
      {"tp/sched/sched_switch", BPF_PROG_TYPE_TRACEPOINT, 0, "sched/sched_switch", 0, false},
      {"raw_tracepoint/sys_enter", BPF_PROG_TYPE_RAW_TRACEPOINT, 0, "sys_enter", 0, false},
      {"raw_tp/sys_enter", BPF_PROG_TYPE_RAW_TRACEPOINT, 0, "sys_enter", 0, false},
      {"tp_btf/task_newtask", BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, "task_newtask", 0, false},
      {"fentry/tcp_connect", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, "tcp_connect", 0, false},
      {"fentry.s/tcp_connect", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, "tcp_connect",
       kProgFlagSleepable, false},
      {"fexit/tcp_connect", BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, "tcp_connect", 0, false},
      {"fmod_ret/f", BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, "f", 0, false},
      {"lsm/file_open", BPF_PROG_TYPE_LSM, BPF_LSM_MAC, "file_open", 0, false},
      {"lsm.s/file_open", BPF_PROG_TYPE_LSM, BPF_LSM_MAC, "file_open", kProgFlagSleepable, false},
      {"iter/task", BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, "task", 0, false},
      {"cgroup_skb/ingress", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS, "", 0, false},
      {"cgroup_skb/egress", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS, "", 0, false},
      {"cgroup/connect4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, "", 0, false},
      {"cgroup/sock_create", BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, "", 0, false},
      {"cgroup/getsockopt", BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_GETSOCKOPT, "", 0, false},
      {"cgroup/dev", BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, "", 0, false},
      {"cgroup/sysctl", BPF_PROG_TYPE_CGROUP_SYSCTL, BPF_CGROUP_SYSCTL, "", 0, false},
      {"sockops", BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS, "", 0, false},
      {"sk_skb/stream_parser", BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_PARSER, "", 0, false},
      {"sk_skb/stream_verdict", BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_VERDICT, "", 0, false},
      {"sk_msg", BPF_PROG_TYPE_SK_MSG, BPF_SK_MSG_VERDICT, "", 0, false},
      {"sk_lookup", BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP, "", 0, false},
      {"flow_dissector", BPF_PROG_TYPE_FLOW_DISSECTOR, BPF_FLOW_DISSECTOR, "", 0, false},
      {"lwt_xmit", BPF_PROG_TYPE_LWT_XMIT, 0, "", 0, false},
      {"perf_event", BPF_PROG_TYPE_PERF_EVENT, 0, "", 0, false},
      {"struct_ops/test_1", BPF_PROG_TYPE_STRUCT_OPS, 0, "test_1", 0, false},
      {"freplace/subprog", BPF_PROG_TYPE_EXT, 0, "subprog", 0, false},
      {"syscall", BPF_PROG_TYPE_SYSCALL, 0, "", kProgFlagSleepable, false},
      {"netfilter", uapi::kProgTypeNetfilter, uapi::kAttachNetfilter, "", 0, false},
  };
  for (const Case& c : cases) {
    INFO("section " << c.section);
    SectionInfo info = ParseSectionName(c.section);
    CHECK(info.known);
    CHECK(info.prog_type == c.type);
    CHECK(info.expected_attach_type == c.attach);
    CHECK(info.attach_to == c.target);
    CHECK(info.prog_flags == c.flags);
    CHECK(info.return_probe == c.ret);
  }
}

TEST_CASE("unknown section names give UNSPEC", "[section_names]") {
  for (const char* name : {"other", ".text", "my_section", ""}) {
    SectionInfo info = ParseSectionName(name);
    CHECK_FALSE(info.known);
    CHECK(info.prog_type == BPF_PROG_TYPE_UNSPEC);
  }
}

}  // namespace
}  // namespace tether
