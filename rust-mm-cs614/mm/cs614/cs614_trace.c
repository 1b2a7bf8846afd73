// SPDX-License-Identifier: GPL-2.0
/*
 * The trace events of cs614 (include/trace/events/cs614.h), for C and, through
 * rust_do_trace_*(), for Rust.
 */
#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include <trace/events/cs614.h>
