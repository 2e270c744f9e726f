#include "sys/type_names.h"

#include "sys/bpf.h"

namespace tether::sys {

const char* MapTypeName(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_UNSPEC: return "unspec";
    case BPF_MAP_TYPE_HASH: return "hash";
    case BPF_MAP_TYPE_ARRAY: return "array";
    case BPF_MAP_TYPE_PROG_ARRAY: return "prog_array";
    case BPF_MAP_TYPE_PERF_EVENT_ARRAY: return "perf_event_array";
    case BPF_MAP_TYPE_PERCPU_HASH: return "percpu_hash";
    case BPF_MAP_TYPE_PERCPU_ARRAY: return "percpu_array";
    case BPF_MAP_TYPE_STACK_TRACE: return "stack_trace";
    case BPF_MAP_TYPE_CGROUP_ARRAY: return "cgroup_array";
    case BPF_MAP_TYPE_LRU_HASH: return "lru_hash";
    case BPF_MAP_TYPE_LRU_PERCPU_HASH: return "lru_percpu_hash";
    case BPF_MAP_TYPE_LPM_TRIE: return "lpm_trie";
    case BPF_MAP_TYPE_ARRAY_OF_MAPS: return "array_of_maps";
    case BPF_MAP_TYPE_HASH_OF_MAPS: return "hash_of_maps";
    case BPF_MAP_TYPE_DEVMAP: return "devmap";
    case BPF_MAP_TYPE_SOCKMAP: return "sockmap";
    case BPF_MAP_TYPE_CPUMAP: return "cpumap";
    case BPF_MAP_TYPE_XSKMAP: return "xskmap";
    case BPF_MAP_TYPE_SOCKHASH: return "sockhash";
    case BPF_MAP_TYPE_CGROUP_STORAGE: return "cgroup_storage";
    case BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: return "reuseport_sockarray";
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE: return "percpu_cgroup_storage";
    case BPF_MAP_TYPE_QUEUE: return "queue";
    case BPF_MAP_TYPE_STACK: return "stack";
    case BPF_MAP_TYPE_SK_STORAGE: return "sk_storage";
    case BPF_MAP_TYPE_DEVMAP_HASH: return "devmap_hash";
    case BPF_MAP_TYPE_STRUCT_OPS: return "struct_ops";
    case BPF_MAP_TYPE_RINGBUF: return "ringbuf";
    case BPF_MAP_TYPE_INODE_STORAGE: return "inode_storage";
    case BPF_MAP_TYPE_TASK_STORAGE: return "task_storage";
    case BPF_MAP_TYPE_BLOOM_FILTER: return "bloom_filter";
    case BPF_MAP_TYPE_USER_RINGBUF: return "user_ringbuf";
    case uapi::kMapTypeCgrpStorage: return "cgrp_storage";
    case uapi::kMapTypeArena: return "arena";
    default: return "unknown";
  }
}

const char* ProgramTypeName(uint32_t type) {
  switch (type) {
    case BPF_PROG_TYPE_UNSPEC: return "unspec";
    case BPF_PROG_TYPE_SOCKET_FILTER: return "socket_filter";
    case BPF_PROG_TYPE_KPROBE: return "kprobe";
    case BPF_PROG_TYPE_SCHED_CLS: return "sched_cls";
    case BPF_PROG_TYPE_SCHED_ACT: return "sched_act";
    case BPF_PROG_TYPE_TRACEPOINT: return "tracepoint";
    case BPF_PROG_TYPE_XDP: return "xdp";
    case BPF_PROG_TYPE_PERF_EVENT: return "perf_event";
    case BPF_PROG_TYPE_CGROUP_SKB: return "cgroup_skb";
    case BPF_PROG_TYPE_CGROUP_SOCK: return "cgroup_sock";
    case BPF_PROG_TYPE_LWT_IN: return "lwt_in";
    case BPF_PROG_TYPE_LWT_OUT: return "lwt_out";
    case BPF_PROG_TYPE_LWT_XMIT: return "lwt_xmit";
    case BPF_PROG_TYPE_SOCK_OPS: return "sock_ops";
    case BPF_PROG_TYPE_SK_SKB: return "sk_skb";
    case BPF_PROG_TYPE_CGROUP_DEVICE: return "cgroup_device";
    case BPF_PROG_TYPE_SK_MSG: return "sk_msg";
    case BPF_PROG_TYPE_RAW_TRACEPOINT: return "raw_tracepoint";
    case BPF_PROG_TYPE_CGROUP_SOCK_ADDR: return "cgroup_sock_addr";
    case BPF_PROG_TYPE_LWT_SEG6LOCAL: return "lwt_seg6local";
    case BPF_PROG_TYPE_LIRC_MODE2: return "lirc_mode2";
    case BPF_PROG_TYPE_SK_REUSEPORT: return "sk_reuseport";
    case BPF_PROG_TYPE_FLOW_DISSECTOR: return "flow_dissector";
    case BPF_PROG_TYPE_CGROUP_SYSCTL: return "cgroup_sysctl";
    case BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE: return "raw_tracepoint_writable";
    case BPF_PROG_TYPE_CGROUP_SOCKOPT: return "cgroup_sockopt";
    case BPF_PROG_TYPE_TRACING: return "tracing";
    case BPF_PROG_TYPE_STRUCT_OPS: return "struct_ops";
    case BPF_PROG_TYPE_EXT: return "ext";
    case BPF_PROG_TYPE_LSM: return "lsm";
    case BPF_PROG_TYPE_SK_LOOKUP: return "sk_lookup";
    case BPF_PROG_TYPE_SYSCALL: return "syscall";
    case uapi::kProgTypeNetfilter: return "netfilter";
    default: return "unknown";
  }
}

}  // namespace tether::sys
