/* SPDX-License-Identifier: BSD-2-Clause
 *
 * cbformat.c - the ClockBound segment's contents and bytes (cbformat.h).
 */
#include <string.h>

#include "vmclock-abi.h"
#include "../common/timeutil.h"

#include "cbformat.h"

static int32_t status_of(const struct vmclockd_state *s)
{
	if (s->heartbeat_realtime_ns == 0)
		return CBF_STATUS_UNKNOWN; /* the daemon stopped */
	if (s->sync_state == VMCLOCKD_SYNC_DISRUPTED)
		return CBF_STATUS_DISRUPTED;
	if (s->error_bound_ns >= (uint64_t)CBF_BOUND_MAX_NS || s->drift_ppb > CBF_DRIFT_MAX_PPB)
		return CBF_STATUS_UNKNOWN;
	if (s->sync_state == VMCLOCKD_SYNC_SYNCHRONIZED)
		return CBF_STATUS_SYNCHRONIZED;
	if (s->sync_state == VMCLOCKD_SYNC_UNSYNCHRONIZED)
		return CBF_STATUS_FREE_RUNNING;
	return CBF_STATUS_UNKNOWN;
}

CBF_Bound CBF_FromState(const struct vmclockd_state *s, const CBF_Now *now)
{
	uint32_t drift = s->drift_ppb > CBF_DRIFT_MAX_PPB ? CBF_DRIFT_MAX_PPB : s->drift_ppb;
	uint64_t age = now->realtime_ns > s->error_bound_realtime_ns ?
			       now->realtime_ns - s->error_bound_realtime_ns : 0;
	uint64_t bound = TIM_GrowBound(s->error_bound_ns, age, drift);

	bound = TIM_GrowBound(bound, now->coarse_res_ns, drift);
	bound = bound < (uint64_t)CBF_BOUND_MAX_NS ? bound + 1 : (uint64_t)CBF_BOUND_MAX_NS;
	return (CBF_Bound){
		.as_of_ns = now->coarse_ns,
		.void_after_ns = now->coarse_ns + (uint64_t)s->heartbeat_timeout_ms * NSEC_PER_MSEC,
		.bound_ns = (int64_t)bound,
		.disruption_marker = s->disruption_marker,
		.drift_ppb = drift,
		.status = status_of(s),
		.disruption_support = s->withhold_reason != VMCLOCKD_REASON_NO_DEVICE &&
				      s->withhold_reason != VMCLOCKD_REASON_BAD_PAGE,
	};
}

static void put16(uint8_t *p, uint16_t v)
{
	v = vmclock_le16(v);
	memcpy(p, &v, sizeof(v));
}

static void put32(uint8_t *p, uint32_t v)
{
	v = vmclock_le32(v);
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
	v = vmclock_le64(v);
	memcpy(p, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return vmclock_le32(v);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return vmclock_le16(v);
}

/* A struct timespec of that clock: seconds, then nanoseconds. */
static void put_timespec(uint8_t *p, uint64_t ns)
{
	put64(p, ns / NSEC_PER_SEC);
	put64(p + 8, ns % NSEC_PER_SEC);
}

void CBF_EncodeHeader(uint16_t generation, uint8_t out[CBF_HEADER_SIZE])
{
	put32(out, CBF_MAGIC0);
	put32(out + 4, CBF_MAGIC1);
	put32(out + 8, CBF_SIZE);
	put16(out + 12, CBF_VERSION);
	put16(out + CBF_GENERATION_OFFSET, generation);
}

void CBF_EncodeBody(const CBF_Bound *b, uint8_t out[CBF_SIZE - CBF_HEADER_SIZE])
{
	memset(out, 0, CBF_SIZE - CBF_HEADER_SIZE);
	put_timespec(out, b->as_of_ns);
	put_timespec(out + 16, b->void_after_ns);
	put64(out + 32, (uint64_t)b->bound_ns);
	put64(out + 40, b->disruption_marker);
	put32(out + 48, b->drift_ppb);
	put32(out + 52, (uint32_t)b->status);
	out[56] = b->disruption_support;
}

bool CBF_Adopt(const uint8_t image[CBF_SIZE], uint16_t *generation)
{
	if (get32(image) != CBF_MAGIC0 || get32(image + 4) != CBF_MAGIC1 ||
	    get32(image + 8) != CBF_SIZE || get16(image + 12) != CBF_VERSION)
		return false;
	*generation = get16(image + CBF_GENERATION_OFFSET);
	return true;
}

uint16_t CBF_Begin(uint16_t generation)
{
	return generation | 1u;
}

uint16_t CBF_End(uint16_t odd)
{
	uint16_t next = (uint16_t)(odd + 1u);

	return next ? next : 2u;
}
