/* SPDX-License-Identifier: BSD-2-Clause
 *
 * vmclock.c - open, validate and read a vmclock page under seq_count.
 *
 * The page is mapped read-only, whether it is the kernel's /dev/vmclockN (one
 * page, offset 0, as ptp_vmclock insists) or a page file written by
 * vmclock-sim.  Readers follow the hypervisor's protocol: load seq_count with
 * acquire ordering, copy, order the copy before a second load, and retry
 * while the count was odd or has moved.  The copy is made of relaxed atomic
 * 64-bit loads so that a concurrent writer is a defined race, not undefined
 * behaviour.  Retries are bounded by VMCLOCK_MAX_WAIT_NS, as in the kernel.
 * vmclock_gettime() keeps what a page version allows in the handle (struct
 * prep_slot), so that its calls at that version skip the checks and most
 * of the arithmetic of a first reading.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmclock.h"
#include "convert.h"
#include "counter.h"
#include "internal.h"
#include "phc.h"
#include "seqlock.h"

#define PAGE_WORDS (VMCLOCK_ABI_SIZE / sizeof(uint64_t))
/* The kernel maps exactly one page of the device; files are read up to this. */
#define MAX_MAP_BYTES 65536u
/* Brackets taken per offset measurement; the narrowest wins. */
#define OFFSET_BRACKETS 5

/*
 * What the page's current version allows, kept for vmclock_gettime(): the
 * convert_prep worked out from a validated copy of one version, under the
 * key a call finds on the page before it trusts the rest (the version's
 * seq_count, disruption marker and generation counter: a page rewritten
 * from scratch, e.g. on a restored snapshot, with a seq_count that happens
 * to match still shows).  Written under the slot's own count by one caller
 * at a time (prep_publish), the call that met a new version.
 *   P_KEY: seq_count | PREP_VALID | utc_valid << 33 | est.fixed << 34 |
 *          max.fixed << 35 | est.shift << 36 | max.shift << 42 |
 *          utc_offset_sec << 48
 */
enum {
	P_KEY, P_MARKER, P_GEN,
	P_EST_LO, P_EST_HI, P_EST_ERR,
	P_MAX_LO, P_MAX_HI, P_MAX_ERR,
	P_WORDS
};
#define PREP_VALID (1ull << 32)
#define PREP_KEY_MASK 0x1ffffffffull

struct prep_slot {
	_Alignas(64) uint32_t seq; /* native: the slot's own count */
	uint64_t w[P_WORDS];
};

struct vmclock {
	struct prep_slot prep;
	int prep_busy;         /* atomic: taken by the caller writing prep */
	int fd;
	bool is_device;
	dev_t dev;  /* identity of the file opened, to notice replacement */
	ino_t ino;
	char *path;
	size_t map_len;
	const uint64_t *words; /* the mapping, read as 64-bit words */
	dev_t dev_rdev;        /* the character device's number */
	int phc_fd;            /* the driver's PTP clock for the device, or -1 */
	int phc_index;
};

static int fail(int err)
{
	errno = err;
	return -1;
}

/* Checks that make a copy a vmclock page this library understands. */
static inline int validate(const struct vmclock_abi *p, size_t available)
{
	if (vmclock_le32(p->magic) != VMCLOCK_MAGIC)
		return fail(EBADMSG);
	if (vmclock_le16(p->version) != VMCLOCK_VERSION)
		return fail(EPROTO);
	if (vmclock_le32(p->size) < VMCLOCK_ABI_SIZE || vmclock_le32(p->size) > available)
		return fail(EMSGSIZE);
	return 0;
}

vmclock_t *vmclock_open(const char *path)
{
	struct vmclock_abi first;
	struct stat st;
	vmclock_t *vc;
	void *map;
	int err;

	vc = calloc(1, sizeof(*vc));
	if (!vc)
		return NULL;
	vc->fd = -1;
	vc->phc_fd = -1;
	vc->phc_index = -1;
	vc->path = strdup(path ? path : VMCLOCK_DEFAULT_DEVICE);
	if (!vc->path)
		goto fail_errno;
	/* O_NONBLOCK: a FIFO must not block the open (it is then refused). */
	vc->fd = open(vc->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (vc->fd < 0)
		goto fail_errno;
	if (fstat(vc->fd, &st) < 0)
		goto fail_errno;
	vc->dev = st.st_dev;
	vc->ino = st.st_ino;

	if (S_ISCHR(st.st_mode)) {
		vc->is_device = true;
		vc->map_len = (size_t)sysconf(_SC_PAGESIZE);
	} else if (S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size < VMCLOCK_ABI_SIZE) {
			err = EMSGSIZE;
			goto fail_err;
		}
		vc->map_len = (uint64_t)st.st_size < MAX_MAP_BYTES ? (size_t)st.st_size : MAX_MAP_BYTES;
	} else {
		err = ENODEV;
		goto fail_err;
	}

	map = mmap(NULL, vc->map_len, PROT_READ, MAP_SHARED, vc->fd, 0);
	if (map == MAP_FAILED)
		goto fail_errno;
	vc->words = map;

	if (vmclock_snapshot(vc, &first) < 0)
		goto fail_errno;
	vc->dev_rdev = st.st_rdev;
	return vc;

fail_errno:
	err = errno;
fail_err:
	vmclock_close(vc);
	errno = err;
	return NULL;
}

void vmclock_close(vmclock_t *vc)
{
	if (!vc)
		return;
	if (vc->words)
		munmap((void *)(uintptr_t)vc->words, vc->map_len);
	if (vc->fd >= 0)
		close(vc->fd);
	if (vc->phc_fd >= 0)
		close(vc->phc_fd);
	free(vc->path);
	free(vc);
}

int vmclock_fd(const vmclock_t *vc)
{
	return vc->fd;
}

const struct vmclock_abi *vmclock_page_map(const vmclock_t *vc)
{
	return (const struct vmclock_abi *)(const void *)vc->words;
}

bool vmclock_is_device(const vmclock_t *vc)
{
	return vc->is_device;
}

int vmclock_phc_index(const vmclock_t *vc)
{
	return vc->phc_fd >= 0 ? vc->phc_index : -1;
}

int vmclock_phc_open(vmclock_t *vc)
{
	if (vc->phc_fd >= 0)
		return vc->phc_index;
	if (!vc->is_device) {
		errno = ENODEV;
		return -1;
	}
	vc->phc_fd = phc_open(vc->dev_rdev, &vc->phc_index);
	return vc->phc_fd >= 0 ? vc->phc_index : -1;
}

bool vmclock_needs_reopen(const vmclock_t *vc)
{
	struct stat now, open_file;

	if (stat(vc->path, &now) < 0 || now.st_dev != vc->dev || now.st_ino != vc->ino)
		return true;
	if (vc->is_device)
		return false;
	return fstat(vc->fd, &open_file) < 0 || (uint64_t)open_file.st_size < vc->map_len;
}

/* 64-bit words that may alias the page structure. */
typedef uint64_t __attribute__((may_alias)) page_word;

static int page_load_seq(const void *src, bool after, uint32_t *seq)
{
	const vmclock_t *vc = src;

	*seq = seq_load_mem((const uint32_t *)((const char *)vc->words +
					      offsetof(struct vmclock_abi, seq_count)), after);
	return 0;
}

/* Word by word straight into the destination: staging the words in a local
 * array and memcpy()ing it costs a store-forwarding stall per 16 bytes,
 * which doubled vmclock_gettime()'s cost. */
static inline void copy_words(const vmclock_t *vc, struct vmclock_abi *out)
{
	page_word *dst = (page_word *)(void *)out;

#pragma GCC unroll 16
	for (size_t i = 0; i < PAGE_WORDS; i++)
		dst[i] = __atomic_load_n(&vc->words[i], __ATOMIC_RELAXED);
}

static int page_copy(const void *src, void *dst)
{
	copy_words(src, dst);
	return 0;
}

/* A call at a prepared version: inside one section of the page, the
 * counter, a copy of the prep with its own count, and the page. */
struct prepared_copy {
	struct vmclock_abi page;
	uint64_t counter;
	uint32_t prep_seq;
	uint64_t prep[P_WORDS];
};

/*
 * The prep is read under its own count the way seq_try() reads, with one
 * difference: the fence that orders its words before the second load of
 * its count is the page section's (seq_try()'s second load of seq_count),
 * so that the second load comes after seq_try() returns (prep_matches).
 * A seq_try() of its own nested here cost a tenth of the call.
 */
static int page_copy_prepared(const void *src, void *dst)
{
	const vmclock_t *vc = src;
	struct prepared_copy *c = dst;

	/* The counter first, as page_copy_counter() does. */
	c->counter = counter_read_native();
	c->prep_seq = __atomic_load_n(&vc->prep.seq, __ATOMIC_ACQUIRE);
#pragma GCC unroll 16
	for (int i = 0; i < P_WORDS; i++)
		c->prep[i] = __atomic_load_n(&vc->prep.w[i], __ATOMIC_RELAXED);
	copy_words(vc, &c->page);
	return 0;
}

/* After a consistent page section: true if the prep copied with it was
 * whole (its count even and unmoved) and belongs to the page's version. */
static inline __attribute__((always_inline)) bool prep_matches(const vmclock_t *vc,
							       const struct prepared_copy *c)
{
	return !(c->prep_seq & 1) &&
	       c->prep_seq == __atomic_load_n(&vc->prep.seq, __ATOMIC_RELAXED) &&
	       (c->prep[P_KEY] & PREP_KEY_MASK) == (vmclock_le32(c->page.seq_count) | PREP_VALID) &&
	       c->prep[P_MARKER] == vmclock_le64(c->page.disruption_marker) &&
	       c->prep[P_GEN] == vmclock_le64(c->page.vm_generation_counter);
}

static inline __attribute__((always_inline)) void prep_of_words(const uint64_t w[P_WORDS],
								 struct convert_prep *p)
{
	p->est = (struct convert_bound){ { w[P_EST_LO], w[P_EST_HI] }, w[P_EST_ERR],
					 (w[P_KEY] >> 36) & 63, (w[P_KEY] >> 34) & 1 };
	p->max = (struct convert_bound){ { w[P_MAX_LO], w[P_MAX_HI] }, w[P_MAX_ERR],
					 (w[P_KEY] >> 42) & 63, (w[P_KEY] >> 35) & 1 };
	p->utc_valid = (w[P_KEY] >> 33) & 1;
	p->utc_offset_sec = (int16_t)(uint16_t)(w[P_KEY] >> 48);
}

/* Keeps p as what the version of the validated copy page allows, unless
 * another caller is writing the slot.  A caller that publishes an older
 * version after a newer one (it was preempted meanwhile) only sends the
 * calls after it the full way once more: the key no longer matches. */
static void prep_publish(const vmclock_t *cvc, const struct vmclock_abi *page,
			 const struct convert_prep *p)
{
	vmclock_t *vc = (vmclock_t *)(uintptr_t)cvc; /* only atomics change */
	const uint64_t w[P_WORDS] = {
		[P_KEY] = vmclock_le32(page->seq_count) | PREP_VALID |
			  (uint64_t)p->utc_valid << 33 | (uint64_t)p->est.fixed << 34 |
			  (uint64_t)p->max.fixed << 35 | (uint64_t)(p->est.shift & 63) << 36 |
			  (uint64_t)(p->max.shift & 63) << 42 |
			  (uint64_t)(uint16_t)p->utc_offset_sec << 48,
		[P_MARKER] = vmclock_le64(page->disruption_marker),
		[P_GEN] = vmclock_le64(page->vm_generation_counter),
		[P_EST_LO] = p->est.rate_ns.lo,
		[P_EST_HI] = p->est.rate_ns.hi,
		[P_EST_ERR] = p->est.err,
		[P_MAX_LO] = p->max.rate_ns.lo,
		[P_MAX_HI] = p->max.rate_ns.hi,
		[P_MAX_ERR] = p->max.err,
	};

	if (__atomic_exchange_n(&vc->prep_busy, 1, __ATOMIC_ACQUIRE))
		return;
	seq_write_words(&vc->prep.seq, vc->prep.w, w, P_WORDS);
	__atomic_store_n(&vc->prep_busy, 0, __ATOMIC_RELEASE);
}

/* A page copy and the counter read inside the same section. */
struct timed_copy {
	struct vmclock_abi page;
	uint64_t counter;
};

static int page_copy_counter(const void *src, void *dst)
{
	struct timed_copy *c = dst;

	/* The counter first: its fence then waits for the seq_count load
	 * alone, and the copy's loads overlap the counter read. */
	c->counter = counter_read_native();
	copy_words(src, &c->page);
	return 0;
}

/* A validated consistent copy, retried for up to VMCLOCK_MAX_WAIT_NS as
 * the kernel's read() does. */
#define PAGE_READ(vc, copy_fn, dst, page)                                                    \
	(seq_read(page_load_seq, copy_fn, vc, dst, VMCLOCK_MAX_WAIT_NS) < 0 ? -1             \
									    : validate(page, (vc)->map_len))

/* The body of vmclock_has_time(), inlined where this file reads time
 * (a call through the PLT was a tenth of vmclock_gettime()). */
static inline __attribute__((always_inline)) int has_time(const struct vmclock_abi *page)
{
	if (!convert_has_time(page))
		return fail(ENODATA);
	if (!counter_supported(page->counter_id))
		return fail(EOPNOTSUPP);
	if (page->counter_period_shift > MAX_PERIOD_SHIFT)
		return fail(ERANGE);
	return 0;
}

int vmclock_has_time(const struct vmclock_abi *page)
{
	return has_time(page);
}

int vmclock_snapshot(const vmclock_t *vc, struct vmclock_abi *out)
{
	return PAGE_READ(vc, page_copy, out, out);
}

int vmclock_snapshot_once(const vmclock_t *vc, struct vmclock_abi *out)
{
	if (seq_try(page_load_seq, page_copy, vc, out) < 0)
		return -1;
	return validate(out, vc->map_len);
}

/* vmclock_gettime() at a version not prepared yet, or once its first try
 * met a writer: the retrying read of the whole page, validated, and the
 * version's prep worked out and kept for the calls that follow.  Out of
 * line, so that its state costs the common case nothing. */
static __attribute__((noinline)) int gettime_full(const vmclock_t *vc, struct vmclock_time *out)
{
	struct timed_copy c;
	struct convert_prep p;
	struct convert_in in;

	if (PAGE_READ(vc, page_copy_counter, &c, &c.page) < 0 || has_time(&c.page) < 0)
		return -1;
	convert_prepare(&c.page, &p);
	prep_publish(vc, &c.page, &p);
	convert_in_of(&c.page, &in);
	return convert_prepared(&in, &p, c.counter, out);
}

/*
 * The common case: the page at the version the handle prepared.  One
 * section of the page covers the counter, a copy of the prep and a copy
 * of the page; the checks gettime_full() made of that version (magic,
 * size, layout, counter, status, period, shift), the flags' verdict on
 * each bound and the rates times 10^9 are not made again.  Each bound is
 * then one product of the ticks (two where its rate times 10^9 exceeds 64
 * bits even over what the shift cancels), the time two, as in the kernel.
 */
int vmclock_gettime(const vmclock_t *vc, struct vmclock_time *out)
{
	struct prepared_copy c;
	struct convert_prep p;
	struct convert_in in;

	if (__builtin_expect(seq_try(page_load_seq, page_copy_prepared, vc, &c) < 0 ||
				     !prep_matches(vc, &c), 0))
		return gettime_full(vc, out);
	prep_of_words(c.prep, &p);
	convert_in_of(&c.page, &in);
	return convert_prepared(&in, &p, c.counter, out);
}

struct bracket {
	uint64_t before, after;
	struct timespec system;
};

static void take_bracket(struct bracket *b)
{
	b->before = counter_read_native();
	clock_gettime(CLOCK_REALTIME, &b->system);
	b->after = counter_read_native();
}

/* A page copy and the narrowest of OFFSET_BRACKETS (counter,
 * CLOCK_REALTIME, counter) taken inside the same section, after the PTP
 * clock's cross-timestamp where there is one: the section then vouches
 * that the driver converted with the page copied (its seq_count did not
 * move), and the bounds, computed at the brackets, are the later ones. */
struct bracketed_copy {
	struct vmclock_abi page;
	struct bracket best;
	bool have_phc;
	struct phc_reading phc;
};

static int page_copy_brackets(const void *src, void *dst)
{
	const vmclock_t *vc = src;
	struct bracketed_copy *c = dst;
	struct bracket b;

	c->have_phc = vc->phc_fd >= 0 && phc_read(vc->phc_fd, &c->phc) == 0;
	take_bracket(&c->best);
	for (int i = 1; i < OFFSET_BRACKETS; i++) {
		take_bracket(&b);
		if (b.after - b.before < c->best.after - c->best.before)
			c->best = b;
	}
	copy_words(src, &c->page);
	return 0;
}

/* Seconds apart beyond which a nanosecond offset would not fit. */
#define MAX_OFFSET_SEC 9000000000ll

/* The cross-timestamp's offset replaces the bracket's when it lies within
 * the bracket's uncertainty (plus its own): a clock that disagrees (an
 * older driver whose clock read UTC, a clock not this page's) is not used.
 * The offset changes by picoseconds between the two instants. */
static void use_phc(const struct vmclock_abi *page, const struct phc_reading *r,
		    struct vmclock_offset *out)
{
	int64_t ns, diff;
	uint64_t mag;

	if (!phc_offset_ns(page, r, &ns))
		return;
	diff = ns - out->offset_ns;
	mag = diff < 0 ? 0 - (uint64_t)diff : (uint64_t)diff;
	if (mag > out->uncertainty_ns + PHC_UNCERTAINTY_NS)
		return;
	out->offset_ns = ns;
	out->uncertainty_ns = PHC_UNCERTAINTY_NS;
}

int vmclock_offset(const vmclock_t *vc, struct vmclock_offset *out)
{
	struct bracketed_copy c;
	const struct vmclock_abi *page = &c.page;
	const struct bracket *best = &c.best;
	uint64_t width;
	int64_t dsec;

	if (PAGE_READ(vc, page_copy_brackets, &c, &c.page) < 0 || has_time(page) < 0)
		return -1;
	width = best->after - best->before;
	if (convert_usable_page(page, best->before + width / 2, &out->time) < 0)
		return -1;
	if (!out->time.utc_valid)
		return fail(ENODATA);
	dsec = out->time.utc_sec - (int64_t)best->system.tv_sec;
	if (dsec > MAX_OFFSET_SEC || dsec < -MAX_OFFSET_SEC)
		return fail(ERANGE);
	out->system = best->system;
	out->offset_ns = dsec * (int64_t)NSEC_PER_SEC + ((int64_t)out->time.utc_nsec - best->system.tv_nsec);
	out->uncertainty_ns = convert_ticks_to_ns_ceil(width - width / 2,
		vmclock_le64(page->counter_period_frac_sec), page->counter_period_shift);
	if (c.have_phc)
		use_phc(page, &c.phc, out);
	return 0;
}
