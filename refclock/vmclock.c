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
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmclock.h"
#include "convert.h"
#include "counter.h"
#include "internal.h"

#define PAGE_WORDS (VMCLOCK_ABI_SIZE / sizeof(uint64_t))
/* The kernel maps exactly one page of the device; files are read up to this. */
#define MAX_MAP_BYTES 65536u
/* Brackets taken per offset measurement; the narrowest wins. */
#define OFFSET_BRACKETS 5
/* Spins before a retry loop starts yielding the CPU to a descheduled writer. */
#define SPINS_BEFORE_YIELD 1000

struct vmclock {
	int fd;
	bool is_device;
	dev_t dev;  /* identity of the file opened, to notice replacement */
	ino_t ino;
	char *path;
	size_t map_len;
	const uint64_t *words; /* the mapping, read as 64-bit words */
};

static int fail(int err)
{
	errno = err;
	return -1;
}

/* Checks that make a copy a vmclock page this library understands. */
static int validate(const struct vmclock_abi *p, size_t available)
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

bool vmclock_needs_reopen(const vmclock_t *vc)
{
	struct stat now, open_file;

	if (stat(vc->path, &now) < 0 || now.st_dev != vc->dev || now.st_ino != vc->ino)
		return true;
	if (vc->is_device)
		return false;
	return fstat(vc->fd, &open_file) < 0 || (uint64_t)open_file.st_size < vc->map_len;
}

static inline uint32_t load_seq_acquire(const vmclock_t *vc)
{
	const uint32_t *seq = (const uint32_t *)((const char *)vc->words +
						 offsetof(struct vmclock_abi, seq_count));
	return vmclock_le32(__atomic_load_n(seq, __ATOMIC_ACQUIRE));
}

/* 64-bit words that may alias the page structure. */
typedef uint64_t __attribute__((may_alias)) page_word;

/* Word by word straight into the destination: staging the words in a local
 * array and memcpy()ing it costs a store-forwarding stall per 16 bytes,
 * which doubled vmclock_gettime()'s cost. */
static inline void copy_words(const vmclock_t *vc, struct vmclock_abi *out)
{
	page_word *dst = (page_word *)(void *)out;

	for (size_t i = 0; i < PAGE_WORDS; i++)
		dst[i] = __atomic_load_n(&vc->words[i], __ATOMIC_RELAXED);
}

/* True once the section that started at seq is known to be consistent. */
static inline bool section_ok(const vmclock_t *vc, uint32_t seq)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return !(seq & 1) && seq == vmclock_le32(__atomic_load_n(
		(const uint32_t *)((const char *)vc->words + offsetof(struct vmclock_abi, seq_count)),
		__ATOMIC_RELAXED));
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Called after an inconsistent section: 0 to try again, -1 ETIMEDOUT.  The
 * clock is only read once a retry happens, keeping the fast path free of it. */
static int retry_or_give_up(int64_t *deadline, unsigned *spins)
{
	if (*deadline == 0)
		*deadline = monotonic_ns() + VMCLOCK_MAX_WAIT_NS;
	else if (monotonic_ns() > *deadline)
		return fail(ETIMEDOUT);
	if (++*spins < SPINS_BEFORE_YIELD)
		counter_relax();
	else
		sched_yield();
	return 0;
}

/*
 * One consistent section: inside() reads the counter (or takes brackets) and
 * the page is copied, both between the two seq_count loads.  Static inline with
 * constant callbacks, so the compiler flattens it on the hot path.
 */
static inline int consistent_read(const vmclock_t *vc, struct vmclock_abi *page,
				  void (*inside)(void *), void *ctx)
{
	int64_t deadline = 0;
	unsigned spins = 0;

	for (;;) {
		uint32_t seq = load_seq_acquire(vc);

		/* The counter first: its fence then waits for the seq_count
		 * load alone, and the copy's loads overlap the counter read. */
		if (inside)
			inside(ctx);
		copy_words(vc, page);
		if (section_ok(vc, seq))
			break;
		if (retry_or_give_up(&deadline, &spins) < 0)
			return -1;
	}
	return validate(page, vc->map_len);
}

int vmclock_has_time(const struct vmclock_abi *page)
{
	if (!convert_has_time(page))
		return fail(ENODATA);
	if (!counter_supported(page->counter_id))
		return fail(EOPNOTSUPP);
	if (page->counter_period_shift > MAX_PERIOD_SHIFT)
		return fail(ERANGE);
	return 0;
}
int vmclock_snapshot(const vmclock_t *vc, struct vmclock_abi *out)
{
	return consistent_read(vc, out, NULL, NULL);
}

int vmclock_snapshot_once(const vmclock_t *vc, struct vmclock_abi *out)
{
	uint32_t seq = load_seq_acquire(vc);

	copy_words(vc, out);
	if (!section_ok(vc, seq))
		return fail(EAGAIN);
	return validate(out, vc->map_len);
}

static void read_counter_cb(void *ctx)
{
	*(uint64_t *)ctx = counter_read_native();
}

int vmclock_gettime(const vmclock_t *vc, struct vmclock_time *out)
{
	struct vmclock_abi page;
	uint64_t counter;

	if (consistent_read(vc, &page, read_counter_cb, &counter) < 0 || vmclock_has_time(&page) < 0)
		return -1;
	return convert_page(&page, counter, out);
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

/* The narrowest of OFFSET_BRACKETS (counter, CLOCK_REALTIME, counter). */
static void narrowest_bracket_cb(void *ctx)
{
	struct bracket *best = ctx, b;

	take_bracket(best);
	for (int i = 1; i < OFFSET_BRACKETS; i++) {
		take_bracket(&b);
		if (b.after - b.before < best->after - best->before)
			*best = b;
	}
}

/* Seconds apart beyond which a nanosecond offset would not fit. */
#define MAX_OFFSET_SEC 9000000000ll

int vmclock_offset(const vmclock_t *vc, struct vmclock_offset *out)
{
	struct vmclock_abi page;
	struct bracket best;
	uint64_t width;
	int64_t dsec;

	if (consistent_read(vc, &page, narrowest_bracket_cb, &best) < 0 ||
	    vmclock_has_time(&page) < 0)
		return -1;
	width = best.after - best.before;
	if (convert_page(&page, best.before + width / 2, &out->time) < 0)
		return -1;
	if (!out->time.utc_valid)
		return fail(ENODATA);
	dsec = out->time.utc_sec - (int64_t)best.system.tv_sec;
	if (dsec > MAX_OFFSET_SEC || dsec < -MAX_OFFSET_SEC)
		return fail(ERANGE);
	out->system = best.system;
	out->offset_ns = dsec * 1000000000 + ((int64_t)out->time.utc_nsec - best.system.tv_nsec);
	out->uncertainty_ns = convert_ticks_to_ns_ceil(width - width / 2,
		vmclock_le64(page.counter_period_frac_sec), page.counter_period_shift);
	return 0;
}
