/* SPDX-License-Identifier: BSD-2-Clause
 *
 * vmclock-abi.h - layout of the vmclock shared page, in vmclockd's own words.
 *
 * The facts (offsets, widths, constants) follow Linux's
 * include/uapi/linux/vmclock-abi.h, which is the canonical description of the
 * page a hypervisor shares with its guests.  Where the UAPI group's VMClock
 * specification v1.0 disagrees (the generation counter's offset, the numbers of
 * the last three flags, the sign of the TAI offset), the kernel header wins.
 *
 * Every multi-byte field is little-endian on the wire.  On a big-endian host
 * use vmclock_le16/32/64() below; the library does so everywhere.
 */
#ifndef VMCLOCK_ABI_H
#define VMCLOCK_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "VCLK" read as a little-endian 32-bit word. */
#define VMCLOCK_MAGIC 0x4b4c4356u

/* The only layout version defined so far. */
#define VMCLOCK_VERSION 1u

/* counter_id: which CPU counter the time is a linear function of. */
#define VMCLOCK_COUNTER_ARM_VCNT 0u
#define VMCLOCK_COUNTER_X86_TSC 1u
#define VMCLOCK_COUNTER_INVALID 0xffu

/* time_type: the timescale of time_sec/time_frac_sec. */
#define VMCLOCK_TIME_UTC 0u
#define VMCLOCK_TIME_TAI 1u
#define VMCLOCK_TIME_MONOTONIC 2u

/* clock_status: how far the hypervisor vouches for the time it publishes. */
#define VMCLOCK_STATUS_UNKNOWN 0u
#define VMCLOCK_STATUS_INITIALIZING 1u
#define VMCLOCK_STATUS_SYNCHRONIZED 2u
#define VMCLOCK_STATUS_FREERUNNING 3u
#define VMCLOCK_STATUS_UNRELIABLE 4u

/* leap_second_smearing_hint: how the host handles leap seconds. */
#define VMCLOCK_SMEARING_STRICT 0u
#define VMCLOCK_SMEARING_NOON_LINEAR 1u
#define VMCLOCK_SMEARING_UTC_SLS 2u

/* leap_indicator: a leap second announced for the end of the month (PRE_*),
 * the inserted second itself (23:59:60, POS), or one that has happened at
 * the end of the previous month (POST_*: for a guest that smears it
 * afterwards).  Only PRE_* and POS announce anything. */
#define VMCLOCK_LEAP_NONE 0x00u
#define VMCLOCK_LEAP_PRE_POS 0x01u
#define VMCLOCK_LEAP_PRE_NEG 0x02u
#define VMCLOCK_LEAP_POS 0x03u
#define VMCLOCK_LEAP_POST_POS 0x04u
#define VMCLOCK_LEAP_POST_NEG 0x05u

/* flags: which optional fields carry meaning, and warnings of disruption. */
#define VMCLOCK_FLAG_TAI_OFFSET_VALID (1ull << 0)
#define VMCLOCK_FLAG_DISRUPTION_SOON (1ull << 1)
#define VMCLOCK_FLAG_DISRUPTION_IMMINENT (1ull << 2)
#define VMCLOCK_FLAG_PERIOD_ESTERROR_VALID (1ull << 3)
#define VMCLOCK_FLAG_PERIOD_MAXERROR_VALID (1ull << 4)
#define VMCLOCK_FLAG_TIME_ESTERROR_VALID (1ull << 5)
#define VMCLOCK_FLAG_TIME_MAXERROR_VALID (1ull << 6)
#define VMCLOCK_FLAG_TIME_MONOTONIC (1ull << 7)
#define VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT (1ull << 8)
#define VMCLOCK_FLAG_NOTIFICATION_PRESENT (1ull << 9)
#define VMCLOCK_FLAG_COUNT 10

/*
 * The page.  Field names are the kernel's, so that code and documentation can
 * be read side by side.  The structure is 112 bytes; a hypervisor may publish
 * a larger page (size says how much is meaningful), never a smaller one that
 * this project accepts.
 */
struct vmclock_abi {
	uint32_t magic;                 /* VMCLOCK_MAGIC */
	uint32_t size;                  /* bytes of the page that are meaningful */
	uint16_t version;               /* VMCLOCK_VERSION */
	uint8_t counter_id;             /* VMCLOCK_COUNTER_* */
	uint8_t time_type;              /* VMCLOCK_TIME_* */
	uint32_t seq_count;             /* odd while the hypervisor writes */
	uint64_t disruption_marker;     /* changes when the counter's relation to time breaks */
	uint64_t flags;                 /* VMCLOCK_FLAG_* */
	uint8_t pad[2];
	uint8_t clock_status;           /* VMCLOCK_STATUS_* */
	uint8_t leap_second_smearing_hint; /* VMCLOCK_SMEARING_* */
	int16_t tai_offset_sec;         /* UTC - TAI in seconds (negative today) */
	uint8_t leap_indicator;         /* VMCLOCK_LEAP_* */
	uint8_t counter_period_shift;   /* extra right shift of the period product */
	uint64_t counter_value;         /* counter reading at time_sec/time_frac_sec */
	uint64_t counter_period_frac_sec; /* seconds per tick, units of 2^-(64+shift) */
	uint64_t counter_period_esterror_rate_frac_sec; /* same units */
	uint64_t counter_period_maxerror_rate_frac_sec; /* same units */
	uint64_t time_sec;              /* whole seconds at counter_value */
	uint64_t time_frac_sec;         /* fraction of a second, units of 2^-64 */
	uint64_t time_esterror_nanosec;
	uint64_t time_maxerror_nanosec;
	uint64_t vm_generation_counter; /* changes on restore or clone */
};

#define VMCLOCK_ABI_SIZE 112u

_Static_assert(offsetof(struct vmclock_abi, magic) == 0x00, "magic");
_Static_assert(offsetof(struct vmclock_abi, size) == 0x04, "size");
_Static_assert(offsetof(struct vmclock_abi, version) == 0x08, "version");
_Static_assert(offsetof(struct vmclock_abi, counter_id) == 0x0a, "counter_id");
_Static_assert(offsetof(struct vmclock_abi, time_type) == 0x0b, "time_type");
_Static_assert(offsetof(struct vmclock_abi, seq_count) == 0x0c, "seq_count");
_Static_assert(offsetof(struct vmclock_abi, disruption_marker) == 0x10, "disruption_marker");
_Static_assert(offsetof(struct vmclock_abi, flags) == 0x18, "flags");
_Static_assert(offsetof(struct vmclock_abi, pad) == 0x20, "pad");
_Static_assert(offsetof(struct vmclock_abi, clock_status) == 0x22, "clock_status");
_Static_assert(offsetof(struct vmclock_abi, leap_second_smearing_hint) == 0x23, "smearing hint");
_Static_assert(offsetof(struct vmclock_abi, tai_offset_sec) == 0x24, "tai_offset_sec");
_Static_assert(offsetof(struct vmclock_abi, leap_indicator) == 0x26, "leap_indicator");
_Static_assert(offsetof(struct vmclock_abi, counter_period_shift) == 0x27, "counter_period_shift");
_Static_assert(offsetof(struct vmclock_abi, counter_value) == 0x28, "counter_value");
_Static_assert(offsetof(struct vmclock_abi, counter_period_frac_sec) == 0x30, "counter_period_frac_sec");
_Static_assert(offsetof(struct vmclock_abi, counter_period_esterror_rate_frac_sec) == 0x38, "period esterror");
_Static_assert(offsetof(struct vmclock_abi, counter_period_maxerror_rate_frac_sec) == 0x40, "period maxerror");
_Static_assert(offsetof(struct vmclock_abi, time_sec) == 0x48, "time_sec");
_Static_assert(offsetof(struct vmclock_abi, time_frac_sec) == 0x50, "time_frac_sec");
_Static_assert(offsetof(struct vmclock_abi, time_esterror_nanosec) == 0x58, "time_esterror_nanosec");
_Static_assert(offsetof(struct vmclock_abi, time_maxerror_nanosec) == 0x60, "time_maxerror_nanosec");
_Static_assert(offsetof(struct vmclock_abi, vm_generation_counter) == 0x68, "vm_generation_counter");
_Static_assert(sizeof(struct vmclock_abi) == VMCLOCK_ABI_SIZE, "struct vmclock_abi size");

/* Little-endian accessors: identity on little-endian hosts. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define vmclock_le16(x) __builtin_bswap16(x)
#define vmclock_le32(x) __builtin_bswap32(x)
#define vmclock_le64(x) __builtin_bswap64(x)
#else
#define vmclock_le16(x) ((uint16_t)(x))
#define vmclock_le32(x) ((uint32_t)(x))
#define vmclock_le64(x) ((uint64_t)(x))
#endif

#ifdef __cplusplus
}
#endif

#endif /* VMCLOCK_ABI_H */
