/* SPDX-License-Identifier: BSD-2-Clause
 *
 * truth.c - truthful timestamps: the device marker and vmclockd's state.
 *
 * The fast path is one vDSO clock_gettime(), a 64-bit load of the device's
 * disruption marker (a single aligned load: no seq_count needed for one
 * field) and a seq_count-protected copy of four fields of the state file.
 * Staleness is judged on CLOCK_REALTIME, the clock already read, rather
 * than by paying for a second clock: a step of the realtime clock larger
 * than the heartbeat timeout reads as UNKNOWN until the next heartbeat.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmclock.h"
#include "vmclockd-state.h"
#include "counter.h"
#include "internal.h"

/* Retries of a state copy before ETIMEDOUT: a writer holds the count odd
 * for well under a microsecond. */
#define MAX_STATE_TRIES 1000000u

/* How often a handle missing its device or state tries to open them. */
#define REOPEN_INTERVAL_NS 1000000000ull

/* Pointers are published once, with compare-and-swap, so that concurrent
 * callers never see a half-made handle and never leak a mapping. */
/* Mappings of state files a restarted daemon replaced: another thread may
 * still be reading one, so they are unmapped only at close. */
#define MAX_RETIRED 8

struct vmclock_truth {
	vmclock_t *device;                  /* atomic; NULL until it opens */
	const struct vmclock_abi *page;     /* atomic; the device's mapping */
	const struct vmclockd_state *state; /* atomic; mapping, or NULL */
	uint64_t state_ino;                 /* atomic; the mapped file's inode */
	char *device_path, *state_path;
	uint64_t next_try_ns;               /* atomic; CLOCK_REALTIME */
	const struct vmclockd_state *retired[MAX_RETIRED]; /* atomic slots */
};

static const char *const verdict_names[] = { "unknown", "synchronized", "freerunning", "disrupted" };

const char *vmclock_verdict_name(vmclock_verdict_t v)
{
	return (unsigned)v < sizeof(verdict_names) / sizeof(verdict_names[0]) ? verdict_names[v] : NULL;
}

static const struct vmclockd_state *map_state(const char *path, uint64_t *ino)
{
	struct stat st;
	void *map;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < sizeof(struct vmclockd_state)) {
		close(fd);
		return NULL;
	}
	map = mmap(NULL, sizeof(struct vmclockd_state), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	*ino = (uint64_t)st.st_ino;
	return map == MAP_FAILED ? NULL : map;
}

/* True at most once per REOPEN_INTERVAL_NS per handle, for one caller. */
static bool may_try(vmclock_truth_t *t, uint64_t now_ns)
{
	uint64_t next = __atomic_load_n(&t->next_try_ns, __ATOMIC_RELAXED);

	return now_ns >= next && __atomic_compare_exchange_n(&t->next_try_ns, &next,
		now_ns + REOPEN_INTERVAL_NS, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* Opens what is missing, at most once per REOPEN_INTERVAL_NS per handle. */
static void try_open_missing(const vmclock_truth_t *ct, uint64_t now_ns)
{
	vmclock_truth_t *t = (vmclock_truth_t *)(uintptr_t)ct; /* only atomics change */
	const struct vmclockd_state *map, *none = NULL;
	vmclock_t *dev, *no_dev = NULL;
	uint64_t ino;

	if (!may_try(t, now_ns))
		return;
	if (!__atomic_load_n(&t->device, __ATOMIC_ACQUIRE) && (dev = vmclock_open(t->device_path))) {
		if (__atomic_compare_exchange_n(&t->device, &no_dev, dev, false, __ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			/* Published last: a reader that sees the page sees it whole. */
			__atomic_store_n(&t->page, vmclock_page_map(dev), __ATOMIC_RELEASE);
		else
			vmclock_close(dev);
	}
	if (!__atomic_load_n(&t->state, __ATOMIC_ACQUIRE) && (map = map_state(t->state_path, &ino))) {
		if (__atomic_compare_exchange_n(&t->state, &none, map, false, __ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			__atomic_store_n(&t->state_ino, ino, __ATOMIC_RELAXED);
		else
			munmap((void *)(uintptr_t)map, sizeof(*map));
	}
}

/* With a stale heartbeat: has the daemon come back with a new state file
 * (removed and recreated)?  Then read that one from now on. */
static void try_reopen_state(const vmclock_truth_t *ct, uint64_t now_ns)
{
	vmclock_truth_t *t = (vmclock_truth_t *)(uintptr_t)ct;
	const struct vmclockd_state *old, *map;
	struct stat st;
	uint64_t ino;

	if (!may_try(t, now_ns) || stat(t->state_path, &st) < 0 ||
	    (uint64_t)st.st_ino == __atomic_load_n(&t->state_ino, __ATOMIC_RELAXED) ||
	    !(map = map_state(t->state_path, &ino)))
		return;
	old = __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
	if (!__atomic_compare_exchange_n(&t->state, &old, map, false, __ATOMIC_RELEASE,
					 __ATOMIC_RELAXED)) {
		munmap((void *)(uintptr_t)map, sizeof(*map));
		return;
	}
	__atomic_store_n(&t->state_ino, ino, __ATOMIC_RELAXED);
	for (int i = 0; i < MAX_RETIRED && old; i++) {
		const struct vmclockd_state *empty = NULL;

		if (__atomic_compare_exchange_n(&t->retired[i], &empty, old, false,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			old = NULL;
	}
	/* More replacements than slots: the old page stays mapped (a leak of
	 * one page per replacement) rather than fault a concurrent reader. */
}

vmclock_truth_t *vmclock_truth_open(const char *device, const char *state_path)
{
	vmclock_truth_t *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->device_path = strdup(device ? device : VMCLOCK_DEFAULT_DEVICE);
	t->state_path = strdup(state_path ? state_path : VMCLOCKD_STATE_DEFAULT_PATH);
	if (!t->device_path || !t->state_path) {
		vmclock_truth_close(t);
		errno = ENOMEM;
		return NULL;
	}
	try_open_missing(t, 0);
	errno = 0;
	return t;
}

void vmclock_truth_close(vmclock_truth_t *t)
{
	if (!t)
		return;
	free(t->device_path);
	free(t->state_path);
	vmclock_close(t->device);
	if (t->state)
		munmap((void *)(uintptr_t)t->state, sizeof(*t->state));
	for (int i = 0; i < MAX_RETIRED; i++)
		if (t->retired[i])
			munmap((void *)(uintptr_t)t->retired[i], sizeof(*t->retired[i]));
	free(t);
}

/* A consistent copy of the state file, bounded like the page's reads. */
static int copy_state(const struct vmclockd_state *s, struct vmclockd_state *out)
{
	const uint64_t *src = (const uint64_t *)(const void *)s;
	uint64_t words[sizeof(*out) / sizeof(uint64_t)];

	for (unsigned tries = 0; tries < MAX_STATE_TRIES; tries++) {
		uint32_t seq = __atomic_load_n(&s->seq_count, __ATOMIC_ACQUIRE);

		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			words[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(seq & 1) && seq == __atomic_load_n(&s->seq_count, __ATOMIC_RELAXED)) {
			memcpy(out, words, sizeof(*out));
			if (vmclock_le32(out->magic) != VMCLOCKD_STATE_MAGIC ||
			    vmclock_le16(out->version) != VMCLOCKD_STATE_VERSION) {
				errno = EBADMSG;
				return -1;
			}
			return 0;
		}
		counter_relax();
	}
	errno = ETIMEDOUT;
	return -1;
}

static struct timespec ts_add_ns(struct timespec t, int64_t ns)
{
	int64_t total = (int64_t)t.tv_nsec + ns % 1000000000;

	t.tv_sec += (time_t)(ns / 1000000000 + total / 1000000000);
	t.tv_nsec = (long)(total % 1000000000);
	if (t.tv_nsec < 0) {
		t.tv_nsec += 1000000000;
		t.tv_sec--;
	}
	return t;
}

/* Bounds from an error bound in ns, or unbounded.  Bounds under a second,
 * the usual case, need no division. */
static inline __attribute__((always_inline)) void set_bounds(struct vmclock_timestamp *out,
							     uint64_t bound_ns)
{
	out->bound_ns = bound_ns;
	if (bound_ns < 1000000000u) {
		/* Field by field from scalars: copying out->time as a whole right
		 * after clock_gettime() wrote it stalled on store forwarding. */
		time_t sec = out->time.tv_sec;
		long nsec = out->time.tv_nsec, lo = nsec - (long)bound_ns, hi = nsec + (long)bound_ns;

		out->earliest.tv_sec = lo < 0 ? sec - 1 : sec;
		out->earliest.tv_nsec = lo < 0 ? lo + 1000000000 : lo;
		out->latest.tv_sec = hi >= 1000000000 ? sec + 1 : sec;
		out->latest.tv_nsec = hi >= 1000000000 ? hi - 1000000000 : hi;
		return;
	}
	if (bound_ns >= (uint64_t)INT64_MAX / 2) {
		out->bound_ns = VMCLOCK_ERROR_UNKNOWN;
		out->earliest = (struct timespec){ 0, 0 };
		out->latest = (struct timespec){ INT64_MAX, 999999999 };
		return;
	}
	out->earliest = ts_add_ns(out->time, -(int64_t)bound_ns);
	out->latest = ts_add_ns(out->time, (int64_t)bound_ns);
}

/* The fields a verdict needs, read straight from the mapping inside one
 * seq_count section: copying the whole state through a local array cost a
 * store-forwarding stall per 16 bytes on the hot path. */
struct verdict_view {
	uint8_t sync_state;
	uint16_t heartbeat_timeout_ms;
	uint32_t drift_ppb;
	uint64_t head, heartbeat_ns, marker, bound_ns, bound_time_ns;
};

#define LOAD(field) __atomic_load_n(&s->field, __ATOMIC_RELAXED)

static inline __attribute__((always_inline)) int read_view(const struct vmclockd_state *s,
							   struct verdict_view *v)
{
	for (unsigned tries = 0; tries < MAX_STATE_TRIES; tries++) {
		uint32_t seq = __atomic_load_n(&s->seq_count, __ATOMIC_ACQUIRE);

		v->head = __atomic_load_n((const uint64_t *)(const void *)s, __ATOMIC_RELAXED);
		v->sync_state = LOAD(sync_state);
		v->heartbeat_timeout_ms = vmclock_le16(LOAD(heartbeat_timeout_ms));
		v->drift_ppb = vmclock_le32(LOAD(drift_ppb));
		v->heartbeat_ns = vmclock_le64(LOAD(heartbeat_realtime_ns));
		v->marker = vmclock_le64(LOAD(disruption_marker));
		v->bound_ns = vmclock_le64(LOAD(error_bound_ns));
		v->bound_time_ns = vmclock_le64(LOAD(error_bound_realtime_ns));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(seq & 1) && seq == __atomic_load_n(&s->seq_count, __ATOMIC_RELAXED))
			return 0;
		counter_relax();
	}
	return -1;
}

#undef LOAD

/* magic and version as the first eight bytes hold them (size ignored). */
#define STATE_HEAD_MASK 0x0000ffffffffffffull
#define STATE_HEAD ((uint64_t)VMCLOCKD_STATE_MAGIC | (uint64_t)VMCLOCKD_STATE_VERSION << 32)

/* ceil(age * ppb / 1e9): in 64 bits (a multiply, no division call) while
 * the product fits, which covers any bound younger than 4 s. */
static uint64_t grown(uint64_t age_ns, uint32_t ppb)
{
	if (age_ns < (1ull << 32))
		return (age_ns * ppb + 999999999u) / 1000000000u;
	return (uint64_t)(((unsigned __int128)age_ns * ppb + 999999999u) / 1000000000u);
}

int vmclock_timestamp(const vmclock_truth_t *t, struct vmclock_timestamp *out)
{
	const struct vmclockd_state *state = __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
	const struct vmclock_abi *page = __atomic_load_n(&t->page, __ATOMIC_ACQUIRE);
	struct verdict_view v;
	uint64_t now_ns, age_ns, growth;

	clock_gettime(CLOCK_REALTIME, &out->time);
	now_ns = (uint64_t)out->time.tv_sec * 1000000000u + (uint64_t)out->time.tv_nsec;
	out->verdict = VMCLOCK_VERDICT_UNKNOWN;
	out->disruption_marker =
		page ? vmclock_le64(__atomic_load_n(&page->disruption_marker, __ATOMIC_ACQUIRE)) : 0;
	if (!page || !state) {
		set_bounds(out, VMCLOCK_ERROR_UNKNOWN);
		try_open_missing(t, now_ns);
		return 0;
	}
	if (read_view(state, &v) < 0 || (vmclock_le64(v.head) & STATE_HEAD_MASK) != STATE_HEAD) {
		set_bounds(out, VMCLOCK_ERROR_UNKNOWN);
		return 0;
	}
	age_ns = now_ns - v.heartbeat_ns;
	if (now_ns < v.heartbeat_ns || age_ns > (uint64_t)v.heartbeat_timeout_ms * 1000000u) {
		set_bounds(out, VMCLOCK_ERROR_UNKNOWN);
		/* A daemon that went away may have come back with a new file. */
		try_reopen_state(t, now_ns);
		return 0;
	}
	if (out->disruption_marker != v.marker || v.sync_state == VMCLOCKD_SYNC_DISRUPTED) {
		out->verdict = VMCLOCK_VERDICT_DISRUPTED;
		set_bounds(out, VMCLOCK_ERROR_UNKNOWN);
		return 0;
	}
	if (v.sync_state == VMCLOCKD_SYNC_SYNCHRONIZED)
		out->verdict = VMCLOCK_VERDICT_SYNCHRONIZED;
	else if (v.sync_state == VMCLOCKD_SYNC_UNSYNCHRONIZED)
		out->verdict = VMCLOCK_VERDICT_FREERUNNING;
	else {
		set_bounds(out, VMCLOCK_ERROR_UNKNOWN);
		return 0;
	}
	/* chrony's bound, grown at its drift rate since it was read. */
	age_ns = now_ns > v.bound_time_ns ? now_ns - v.bound_time_ns : 0;
	growth = grown(age_ns, v.drift_ppb);
	/* A sum that wraps would be a tight bound from a huge one. */
	set_bounds(out, growth > VMCLOCK_ERROR_UNKNOWN - v.bound_ns ? VMCLOCK_ERROR_UNKNOWN
								    : v.bound_ns + growth);
	return 0;
}

int vmclock_daemon_state(const vmclock_truth_t *t, struct vmclockd_state *out)
{
	const struct vmclockd_state *state = __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
	struct timespec now;

	if (!state) {
		clock_gettime(CLOCK_REALTIME, &now);
		try_open_missing(t, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
		state = __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
	}
	if (!state) {
		errno = ENOENT;
		return -1;
	}
	return copy_state(state, out);
}
