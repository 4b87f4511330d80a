/* SPDX-License-Identifier: BSD-2-Clause
 *
 * testpage.h - build vmclock pages byte by byte for libvmclock's tests.
 *
 * The offsets here are written out from the layout in the project's notes,
 * not taken from struct vmclock_abi, so that a page built with these helpers
 * also checks the structure the library reads it through.  Every multi-byte
 * field is stored little-endian one byte at a time, whatever the host.
 */
#ifndef TESTPAGE_H
#define TESTPAGE_H

#include <stddef.h>
#include <stdint.h>

/* Byte offsets of the page's fields. */
enum {
	TP_MAGIC = 0,          /* u32 */
	TP_SIZE = 4,           /* u32 */
	TP_VERSION = 8,        /* u16 */
	TP_COUNTER_ID = 10,    /* u8 */
	TP_TIME_TYPE = 11,     /* u8 */
	TP_SEQ_COUNT = 12,     /* u32 */
	TP_MARKER = 16,        /* u64 disruption_marker */
	TP_FLAGS = 24,         /* u64 */
	TP_PAD = 32,           /* u8[2] */
	TP_STATUS = 34,        /* u8 clock_status */
	TP_SMEARING = 35,      /* u8 leap_second_smearing_hint */
	TP_TAI_OFFSET = 36,    /* s16 tai_offset_sec */
	TP_LEAP = 38,          /* u8 leap_indicator */
	TP_SHIFT = 39,         /* u8 counter_period_shift */
	TP_COUNTER = 40,       /* u64 counter_value */
	TP_PERIOD = 48,        /* u64 counter_period_frac_sec */
	TP_PERIOD_ESTERR = 56, /* u64 counter_period_esterror_rate_frac_sec */
	TP_PERIOD_MAXERR = 64, /* u64 counter_period_maxerror_rate_frac_sec */
	TP_TIME_SEC = 72,      /* u64 */
	TP_TIME_FRAC = 80,     /* u64 */
	TP_TIME_ESTERR = 88,   /* u64 time_esterror_nanosec */
	TP_TIME_MAXERR = 96,   /* u64 time_maxerror_nanosec */
	TP_GENERATION = 104,   /* u64 vm_generation_counter */
	TP_PAGE_BYTES = 112,   /* the whole structure */
};

/* The page's constants, spelt out independently of vmclock-abi.h. */
#define TP_MAGIC_VALUE 0x4b4c4356u /* "VCLK" */
#define TP_FLAG(bit) ((uint64_t)1 << (bit))

/* Room for the largest page the tests build (a hypervisor may publish more
 * than the structure; a page file can be a whole 4 KiB page). */
#define TP_MAX_BYTES 4096u

struct testpage {
	uint8_t b[TP_MAX_BYTES];
	size_t len; /* bytes written to a page file */
};

/* Little-endian stores and loads at a byte offset. */
void tp_put8(struct testpage *p, size_t off, uint8_t v);
void tp_put16(struct testpage *p, size_t off, uint16_t v);
void tp_put32(struct testpage *p, size_t off, uint32_t v);
void tp_put64(struct testpage *p, size_t off, uint64_t v);
uint8_t tp_get8(const struct testpage *p, size_t off);
uint16_t tp_get16(const struct testpage *p, size_t off);
uint32_t tp_get32(const struct testpage *p, size_t off);
uint64_t tp_get64(const struct testpage *p, size_t off);
/* A field of a datagram or segment in this machine's byte order (what
 * chronyd's SOCK refclock and ntpd's SHM read), at byte off of b. */
int32_t tp_native_i32(const uint8_t *b, size_t off);
int64_t tp_native_i64(const uint8_t *b, size_t off);
double tp_native_double(const uint8_t *b, size_t off);
/* The same for a raw byte buffer (a writable mapping of a page file). */
void tp_store64(volatile uint8_t *base, size_t off, uint64_t v);

/* A valid, empty page: magic, size 112, version 1, seq_count 0, everything
 * else zero (counter ARM_VCNT, UTC, status unknown). len = 112. */
void tp_init(struct testpage *p);

/* A page that carries time: counter X86_TSC (or the counter the CPU has),
 * UTC, synchronized, the given anchor and period, every error flag set with
 * zero errors. */
void tp_init_time(struct testpage *p, uint8_t counter_id, uint64_t counter_value,
		  uint64_t period_frac, uint8_t shift, uint64_t time_sec, uint64_t time_frac);

/* Copy the page's bytes into a struct-sized buffer for vmclock_convert(). */
struct vmclock_abi;
void tp_to_abi(const struct testpage *p, struct vmclock_abi *out);

/* A fresh private directory (mkdtemp under $TMPDIR or /tmp); malloc'd. */
char *tp_tmpdir(void);
/* dir/name, malloc'd. */
char *tp_path(const char *dir, const char *name);
/* Write p->len bytes of the page to dir/name (created or truncated, mode
 * 0644); returns the malloc'd path. */
char *tp_write_file(const char *dir, const char *name, const struct testpage *p);
/* Write len raw bytes to dir/name; returns the malloc'd path. */
char *tp_write_bytes(const char *dir, const char *name, const void *bytes, size_t len);
/* Remove everything directly inside dir, then dir itself. */
void tp_rmdir(const char *dir);

/* The counter the library would read on this CPU (VMCLOCK_COUNTER_*), or
 * 0xff if none. */
uint8_t tp_native_counter(void);

/* Counter period measured against CLOCK_MONOTONIC_RAW over about ms
 * milliseconds, in units of 2^-(64+shift) s per tick. */
uint64_t tp_calibrate_period(uint8_t counter_id, unsigned shift, unsigned ms);

/* A page file anchored at the live counter: the page says the time at the
 * anchor is CLOCK_REALTIME + offset_ns (UTC page). */
void tp_init_live(struct testpage *p, uint8_t counter_id, uint64_t period_frac, uint8_t shift,
		  int64_t offset_ns);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t tp_now_ns(void);

/* Seed for random tests: VMCLOCK_TEST_SEED if set, else time-based; printed
 * once to stderr so that a failure can be replayed. */
uint64_t tp_seed(void);
/* splitmix64 step. */
uint64_t tp_rand64(uint64_t *state);

#endif /* TESTPAGE_H */
