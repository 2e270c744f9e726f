// The pipeline of pipeline.bpf.c as tcx ingress programs.
#define PIPELINE_TCX
#include "pipeline.bpf.c"
