/* SPDX-License-Identifier: BSD-2-Clause
 *
 * fuzz_page.c - libFuzzer target: the input is a vmclock page file.
 *
 * Two halves.  The file half writes the input to a memfd and goes through
 * the public API a reader uses: vmclock_open (whose errno must be the one
 * the header promises for these bytes), vmclock_snapshot (a copy equal to
 * the file), vmclock_gettime and vmclock_offset with the real counter
 * (equal to vmclock_convert of the counter they report), and
 * vmclock_needs_reopen (false while the file is untouched, true once it is
 * truncated below the mapping).  The seq_count is made even first: an odd
 * one only makes every read wait 100 ms for ETIMEDOUT, which the unit tests
 * cover.
 *
 * The conversion half gives the raw bytes, zero-padded, straight to
 * vmclock_convert at many counters: near the anchor, across the signed
 * wrap, at the extremes and at counters taken from the input's tail.  Each
 * result must satisfy the invariants in check_time(), and time must not go
 * backwards from a counter to the next (except across the deliberate wrap
 * at anchor + 2^63) while error bounds grow with the distance from the
 * anchor.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vmclock.h"
#include "fuzz.h"

/* Field offsets, written out rather than taken from struct vmclock_abi. */
enum {
	OFF_MAGIC = 0,
	OFF_SIZE = 4,
	OFF_VERSION = 8,
	OFF_SEQ = 12,
	OFF_TIME_SEC = 72,
	OFF_TIME_FRAC = 80,
	OFF_TIME_ESTERR = 88,
	OFF_TIME_MAXERR = 96,
	PAGE_BYTES = 112,
};

#define MAX_MAP_BYTES 65536u /* refclock/vmclock.c maps no more of a file */
#define MAX_TAIL_COUNTERS 16

static struct fuzz_file page_file;

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int cmp_time(const struct vmclock_time *a, const struct vmclock_time *b)
{
	if (a->sec != b->sec)
		return a->sec < b->sec ? -1 : 1;
	if (a->nsec != b->nsec)
		return a->nsec < b->nsec ? -1 : 1;
	return 0;
}

/* The fuzzer's own statement of "no time" (an oracle, kept apart from the
 * library's predicate on purpose): invalid counter, unreliable status, or a
 * zero period (a frozen clock). */
static bool oracle_no_time(const struct vmclock_abi *p)
{
	return p->counter_id == VMCLOCK_COUNTER_INVALID ||
	       p->clock_status == VMCLOCK_STATUS_UNRELIABLE ||
	       vmclock_le64(p->counter_period_frac_sec) == 0;
}

/* Invariants of one conversion result, whatever the page. */
static void check_time(const struct vmclock_abi *p, uint64_t counter, int r, int err,
		       const struct vmclock_time *t)
{
	uint64_t flags = vmclock_le64(p->flags);
	bool no_time = oracle_no_time(p);

	if (r != 0) {
		FUZZ_CHECK(r == -1);
		FUZZ_CHECK(err == ENODATA || err == ERANGE);
		FUZZ_CHECK((err == ENODATA) == no_time);
		return;
	}
	FUZZ_CHECK(!no_time);
	FUZZ_CHECK(p->counter_period_shift <= 63);
	FUZZ_CHECK(t->sec >= 0);
	FUZZ_CHECK(t->nsec < 1000000000u);
	FUZZ_CHECK(t->utc_nsec < 1000000000u);
	FUZZ_CHECK(t->time_type == p->time_type);
	/* A TAI page has UTC with a valid offset that is plausible: UTC - TAI
	 * in -99..-10 s (written out here, as the ABI says it, not taken from
	 * the library). */
	int16_t tai_offset = (int16_t)vmclock_le16((uint16_t)p->tai_offset_sec);

	FUZZ_CHECK(t->utc_valid == (p->time_type == VMCLOCK_TIME_UTC ||
				    (p->time_type == VMCLOCK_TIME_TAI &&
				     (flags & VMCLOCK_FLAG_TAI_OFFSET_VALID) && tai_offset >= -99 &&
				     tai_offset <= -10)));
	if (t->utc_valid) {
		FUZZ_CHECK(t->utc_nsec == t->nsec);
		FUZZ_CHECK(t->utc_sec - t->sec ==
			   (p->time_type == VMCLOCK_TIME_UTC ? 0 : (int16_t)vmclock_le16((uint16_t)p->tai_offset_sec)));
	} else {
		FUZZ_CHECK(t->utc_sec == 0 && t->utc_nsec == 0);
	}
	if (!(flags & VMCLOCK_FLAG_TIME_ESTERROR_VALID))
		FUZZ_CHECK(t->esterror_ns == VMCLOCK_ERROR_UNKNOWN);
	else if (t->esterror_ns != VMCLOCK_ERROR_UNKNOWN)
		FUZZ_CHECK(t->esterror_ns >= vmclock_le64(p->time_esterror_nanosec));
	if (!(flags & VMCLOCK_FLAG_TIME_MAXERROR_VALID))
		FUZZ_CHECK(t->maxerror_ns == VMCLOCK_ERROR_UNKNOWN);
	else if (t->maxerror_ns != VMCLOCK_ERROR_UNKNOWN)
		FUZZ_CHECK(t->maxerror_ns >= vmclock_le64(p->time_maxerror_nanosec));
	FUZZ_CHECK(t->counter == counter);
	FUZZ_CHECK(t->counter_period_frac_sec == vmclock_le64(p->counter_period_frac_sec));
	FUZZ_CHECK(t->counter_period_shift == p->counter_period_shift);
	FUZZ_CHECK(t->flags == flags);
	FUZZ_CHECK(t->clock_status == p->clock_status);
	FUZZ_CHECK(t->disruption_marker == vmclock_le64(p->disruption_marker));
	FUZZ_CHECK(t->vm_generation_counter == vmclock_le64(p->vm_generation_counter));
}

static int convert(const struct vmclock_abi *p, uint64_t counter, struct vmclock_time *t)
{
	int r;

	memset(t, 0, sizeof(*t));
	errno = 0;
	r = vmclock_convert(p, counter, t);
	check_time(p, counter, r, errno, t);
	return r;
}

/* At the anchor the result is the page's own time: checked against the raw
 * bytes, with arithmetic of this file's own. */
static void check_anchor(const struct vmclock_abi *p, const uint8_t *raw)
{
	uint64_t sec = fuzz_le64(raw + OFF_TIME_SEC), frac = fuzz_le64(raw + OFF_TIME_FRAC);
	uint64_t flags = vmclock_le64(p->flags);
	/* floor(frac * 10^9 / 2^64) from 32-bit halves. */
	uint64_t hi = (frac >> 32) * 1000000000u, lo = (frac & 0xffffffffu) * 1000000000u;
	uint32_t nsec = (uint32_t)((hi + (lo >> 32)) >> 32);
	struct vmclock_time t;
	int r = convert(p, vmclock_le64(p->counter_value), &t);

	if (oracle_no_time(p))
		return;
	if (p->counter_period_shift > 63 || sec > (uint64_t)INT64_MAX - 0x8000) {
		FUZZ_CHECK(r == -1);
		return;
	}
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK((uint64_t)t.sec == sec);
	FUZZ_CHECK(t.nsec == nsec);
	if (flags & VMCLOCK_FLAG_TIME_ESTERROR_VALID)
		FUZZ_CHECK(t.esterror_ns == fuzz_le64(raw + OFF_TIME_ESTERR));
	if (flags & VMCLOCK_FLAG_TIME_MAXERROR_VALID)
		FUZZ_CHECK(t.maxerror_ns == fuzz_le64(raw + OFF_TIME_MAXERR));
}

/* From counter a to b = a + k (k > 0, no signed wrap of the distance to the
 * anchor in between): time does not go backwards, and the error bounds grow
 * with the distance from the anchor. */
static void check_order(const struct vmclock_abi *p, uint64_t a, uint64_t k)
{
	uint64_t anchor = vmclock_le64(p->counter_value);
	int64_t da = (int64_t)(a - anchor), db = (int64_t)(a + k - anchor);
	struct vmclock_time ta, tb;

	if (k == 0 || db < da)
		return;
	if (convert(p, a, &ta) != 0 || convert(p, a + k, &tb) != 0)
		return;
	FUZZ_CHECK(cmp_time(&ta, &tb) <= 0);
	if (da >= 0) {
		FUZZ_CHECK(ta.esterror_ns <= tb.esterror_ns);
		FUZZ_CHECK(ta.maxerror_ns <= tb.maxerror_ns);
	} else if (db <= 0) {
		FUZZ_CHECK(ta.esterror_ns >= tb.esterror_ns);
		FUZZ_CHECK(ta.maxerror_ns >= tb.maxerror_ns);
	}
}

static void fuzz_convert(const uint8_t *data, size_t len)
{
	static const int64_t deltas[] = {
		0, 1, -1, 2, -2, 1000, -1000, INT64_C(1) << 32, -(INT64_C(1) << 32),
		INT64_C(1) << 40, -(INT64_C(1) << 40), INT64_MAX - 1, INT64_MIN + 1,
	};
	uint8_t raw[PAGE_BYTES] = { 0 };
	struct vmclock_abi page;
	uint64_t anchor, tail[MAX_TAIL_COUNTERS];
	const uint8_t *rest = data + (len < PAGE_BYTES ? len : PAGE_BYTES);
	size_t rest_len = len - (size_t)(rest - data), n_tail = 0;
	struct vmclock_time t;

	memcpy(raw, data, len < PAGE_BYTES ? len : PAGE_BYTES);
	memcpy(&page, raw, sizeof(page));
	anchor = vmclock_le64(page.counter_value);

	check_anchor(&page, raw);
	for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
		check_order(&page, anchor + (uint64_t)deltas[i], 1);
		check_order(&page, anchor + (uint64_t)deltas[i] - 1000, 1000);
	}
	/* The deliberate wrap: anchor + 2^63 - 1 and anchor + 2^63 convert to
	 * opposite ends; both must still be valid results. */
	convert(&page, anchor + (UINT64_C(1) << 63) - 1, &t);
	convert(&page, anchor + (UINT64_C(1) << 63), &t);
	convert(&page, 0, &t);
	convert(&page, UINT64_MAX, &t);

	while (rest_len > 0 && n_tail < MAX_TAIL_COUNTERS)
		tail[n_tail++] = fuzz_take64(&rest, &rest_len);
	for (size_t i = 0; i < n_tail; i++) {
		check_order(&page, tail[i], 1);
		check_order(&page, anchor, tail[i]);
		if (i + 1 < n_tail)
			check_order(&page, tail[i], tail[i + 1] - tail[i]);
	}
}

/* The errno vmclock_open must fail with for these bytes, 0 if it opens. */
static int expected_open_errno(const uint8_t *data, size_t len)
{
	size_t mapped = len < MAX_MAP_BYTES ? len : MAX_MAP_BYTES;

	if (len < PAGE_BYTES)
		return EMSGSIZE;
	if (le32(data + OFF_MAGIC) != VMCLOCK_MAGIC)
		return EBADMSG;
	if ((uint16_t)(data[OFF_VERSION] | data[OFF_VERSION + 1] << 8) != VMCLOCK_VERSION)
		return EPROTO;
	if (le32(data + OFF_SIZE) < PAGE_BYTES || le32(data + OFF_SIZE) > mapped)
		return EMSGSIZE;
	return 0;
}

static bool same_time(const struct vmclock_time *a, const struct vmclock_time *b)
{
	return a->sec == b->sec && a->nsec == b->nsec && a->utc_valid == b->utc_valid &&
	       a->utc_sec == b->utc_sec && a->utc_nsec == b->utc_nsec &&
	       a->esterror_ns == b->esterror_ns && a->maxerror_ns == b->maxerror_ns &&
	       a->counter == b->counter && a->seq_count == b->seq_count &&
	       a->disruption_marker == b->disruption_marker && a->flags == b->flags;
}

static void fuzz_file(const uint8_t *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct vmclock_abi snap;
	struct vmclock_time t, again;
	struct vmclock_offset off;
	vmclock_t *vc;
	int want, r;
	bool no_time, readable;

	FUZZ_CHECK(copy);
	memcpy(copy, data, len);
	if (len > OFF_SEQ)
		copy[OFF_SEQ] &= (uint8_t)~1u;
	fuzz_file_set(&page_file, copy, len);
	want = expected_open_errno(copy, len);

	errno = 0;
	vc = vmclock_open(page_file.path);
	if (!vc) {
		FUZZ_CHECK(want != 0 && errno == want);
		free(copy);
		return;
	}
	FUZZ_CHECK(want == 0);
	FUZZ_CHECK(vmclock_fd(vc) >= 0);
	FUZZ_CHECK(!vmclock_is_device(vc));
	FUZZ_CHECK(!vmclock_needs_reopen(vc));

	FUZZ_CHECK(vmclock_snapshot(vc, &snap) == 0);
	FUZZ_CHECK(memcmp(&snap, copy, PAGE_BYTES) == 0);

	no_time = oracle_no_time(&snap);
	readable = vmclock_read_counter(snap.counter_id, &(uint64_t){ 0 });

	errno = 0;
	r = vmclock_gettime(vc, &t);
	if (r != 0) {
		FUZZ_CHECK(r == -1);
		FUZZ_CHECK(errno == (no_time ? ENODATA : !readable ? EOPNOTSUPP : ERANGE));
	} else {
		FUZZ_CHECK(!no_time && readable);
		check_time(&snap, t.counter, 0, 0, &t);
		/* gettime is convert() at the counter it read. */
		FUZZ_CHECK(vmclock_convert(&snap, t.counter, &again) == 0);
		FUZZ_CHECK(same_time(&t, &again));
	}

	errno = 0;
	r = vmclock_offset(vc, &off);
	if (r != 0) {
		FUZZ_CHECK(r == -1);
		FUZZ_CHECK(errno == ENODATA || errno == EOPNOTSUPP || errno == ERANGE);
		if (no_time)
			FUZZ_CHECK(errno == ENODATA);
		else if (!readable)
			FUZZ_CHECK(errno == EOPNOTSUPP);
	} else {
		FUZZ_CHECK(!no_time && readable);
		FUZZ_CHECK(off.time.utc_valid);
		check_time(&snap, off.time.counter, 0, 0, &off.time);
		FUZZ_CHECK(off.system.tv_nsec >= 0 && off.system.tv_nsec < 1000000000);
		FUZZ_CHECK(off.offset_ns == (off.time.utc_sec - (int64_t)off.system.tv_sec) * 1000000000 +
						    ((int64_t)off.time.utc_nsec - off.system.tv_nsec));
		FUZZ_CHECK(vmclock_convert(&snap, off.time.counter, &again) == 0);
		FUZZ_CHECK(same_time(&off.time, &again));
	}

	FUZZ_CHECK(!vmclock_needs_reopen(vc));
	/* Truncated below the mapping: the reader must be told to reopen (and
	 * must not read the page again, which would fault). */
	if (ftruncate(page_file.fd, PAGE_BYTES - 1) == 0)
		FUZZ_CHECK(vmclock_needs_reopen(vc));
	vmclock_close(vc);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	fuzz_file_init(&page_file, "fuzz_page");
	fuzz_convert(data, len);
	fuzz_file(data, len);
	return 0;
}
