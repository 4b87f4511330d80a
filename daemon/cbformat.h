/* SPDX-License-Identifier: BSD-2-Clause
 *
 * cbformat.h - what vmclockd's ClockBound segment says, and its bytes.
 *
 * AWS ClockBound (2.0.x) has applications read clock error bounds from a
 * file they map, /var/run/clockbound/shm0, format version 2, through its
 * libclockbound (C) or its Rust crate.  vmclockd can write that segment
 * (cbshm.c) with the truth it publishes for libvmclock (publish.c), so that
 * such applications switch daemons without a change.
 *
 * The segment, every field little-endian (the format is the writer's host
 * order; the hosts ClockBound supports, x86-64 and arm64, are
 * little-endian, and CBF_Encode* write that order on any host):
 *   0  u32 magic[0]   0x414d5a4e        4  u32 magic[1]   0x43420200
 *   8  u32 segsize    80                12 u16 version    2
 *   14 u16 generation odd while being written, never 0 once written
 *   16 i64 as_of.tv_sec, 24 i64 as_of.tv_nsec: CLOCK_MONOTONIC_COARSE
 *      when the bound was computed
 *   32 i64 void_after.tv_sec, 40 i64 void_after.tv_nsec: same clock
 *   48 i64 bound_nsec: |system - true| at as_of
 *   56 u64 disruption_marker: the vmclock marker the bound is valid for
 *   64 u32 max_drift_ppb: how fast the bound grows after as_of (< 10^9)
 *   68 i32 clock_status: CBF_STATUS_*
 *   72 u8  clock_disruption_support_enabled, then 7 bytes of padding
 *
 * What a reader does with it (libclockbound 2.0.2): the status as written
 * for 5 s after as_of, then FREE_RUNNING (SYNCHRONIZED or FREE_RUNNING
 * written) until void_after, UNKNOWN after; the bound grown by drift times
 * the coarse monotonic time since as_of; an error (CAUSALITY_BREACH) if
 * its coarse clock reads more than 1 us before as_of; MALFORMED if the
 * drift is 10^9 or more; and, with disruption support, UNKNOWN whenever
 * the vmclock page's marker differs from the segment's.
 *
 * Pure: no clock, no I/O.  cbshm.c reads the clocks and writes the file;
 * tests/check_cbshm.c drives this.
 */
#ifndef VMCLOCKD_CBFORMAT_H
#define VMCLOCKD_CBFORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "vmclockd-state.h"

#define CBF_MAGIC0 0x414d5a4eu
#define CBF_MAGIC1 0x43420200u
#define CBF_VERSION 2u
#define CBF_HEADER_SIZE 16u
#define CBF_SIZE 80u
#define CBF_GENERATION_OFFSET 14u
#define CBF_DEFAULT_PATH "/var/run/clockbound/shm0"

/* clock_status */
#define CBF_STATUS_UNKNOWN 0
#define CBF_STATUS_SYNCHRONIZED 1
#define CBF_STATUS_FREE_RUNNING 2
#define CBF_STATUS_DISRUPTED 3

/* The largest bound written (about 31.7 years): readers add the bound to
 * and subtract it from the realtime clock in signed 64-bit nanoseconds, so
 * an unknown bound is written as this, with the status UNKNOWN. */
#define CBF_BOUND_MAX_NS 1000000000000000000ll
/* Readers refuse a drift from 10^9 ppb up. */
#define CBF_DRIFT_MAX_PPB 999999999u

/* The clocks when the segment is written. */
typedef struct {
	uint64_t realtime_ns;   /* CLOCK_REALTIME */
	uint64_t coarse_ns;     /* CLOCK_MONOTONIC_COARSE, read just before it */
	uint64_t coarse_res_ns; /* that clock's resolution */
} CBF_Now;

/* The segment's body, in host order. */
typedef struct {
	uint64_t as_of_ns;      /* CLOCK_MONOTONIC_COARSE */
	uint64_t void_after_ns; /* likewise */
	int64_t bound_ns;       /* 0 .. CBF_BOUND_MAX_NS */
	uint64_t disruption_marker;
	uint32_t drift_ppb;     /* 0 .. CBF_DRIFT_MAX_PPB */
	int32_t status;         /* CBF_STATUS_* */
	bool disruption_support;
} CBF_Bound;

/*
 * The body from the state vmclockd publishes (host order), written at now:
 * the state's bound grown at its drift to now, plus one resolution of the
 * coarse clock of growth (a reader measures the time since as_of on that
 * clock, up to one resolution short), plus 1 ns (readers truncate the
 * growth they compute); the status as libvmclock's verdict would be
 * (UNKNOWN without a heartbeat, a bound or a drift under 10^9 ppb); the
 * handled marker; void_after the state's heartbeat timeout after as_of.
 * Disruption support (readers compare the page's marker) while the last
 * tick could read the page.
 */
CBF_Bound CBF_FromState(const struct vmclockd_state *state, const CBF_Now *now);
/* The header with this generation, little-endian. */
void CBF_EncodeHeader(uint16_t generation, uint8_t out[CBF_HEADER_SIZE]);
/* The body, little-endian, padding zeroed. */
void CBF_EncodeBody(const CBF_Bound *bound, uint8_t out[CBF_SIZE - CBF_HEADER_SIZE]);
/* The generation of a segment whose header is ours to go on from (magic,
 * version and size right), or false. */
bool CBF_Adopt(const uint8_t image[CBF_SIZE], uint16_t *generation);
/* ClockBound's generation protocol: the count made odd before an update
 * (an odd count, left by a writer that died mid-update, stays), and the
 * count after it (the next one, skipping 0, which readers take as "not
 * initialised"). */
uint16_t CBF_Begin(uint16_t generation);
uint16_t CBF_End(uint16_t odd);

#endif /* VMCLOCKD_CBFORMAT_H */
