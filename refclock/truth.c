/* SPDX-License-Identifier: BSD-2-Clause
 *
 * truth.c - truthful timestamps: the device marker and vmclockd's state.
 *
 * The fast path is one vDSO clock_gettime(), a 64-bit load of the device's
 * disruption marker (a single aligned load: no seq_count needed for one
 * field), a consistent copy of part of the handle's cached view of the
 * state file, in process memory, and one multiplication: each view, when
 * it is read, works out the window of instants in which only the marker
 * can change its verdict and its bound is linear in the clock reading
 * (view_prepare_fast).  Calls outside that window apply every rule to the
 * view (timestamp_judged).  Staleness is judged on CLOCK_REALTIME, the
 * clock already read, rather than by paying for a second clock: a step of
 * the realtime clock larger than the heartbeat timeout reads as UNKNOWN
 * until the next heartbeat.
 *
 * Why the published state is read with pread(2) into a cache, never mapped:
 * whoever can truncate the file (the daemon's user, or a confused admin)
 * would make every load from a mapping beyond the new end of file raise
 * SIGBUS in every application, and a library must not install a signal
 * handler to survive it.  Checking the size with fstat() before each load
 * leaves a window between the check and the load that a truncation loop
 * wins sooner or later, and costs a system call per read anyway.  pread()
 * of a truncated file returns fewer bytes instead: the view is then "no
 * state" (UNKNOWN), and the next complete write brings it back.  The cost,
 * three pread() calls, is paid at most once per STATE_REFRESH_NS per
 * handle, by whichever caller finds the view due; every other call copies
 * the view from memory.  A view says what the file said at most
 * STATE_REFRESH_NS ago: the daemon's own decisions are spaced by its tick
 * (tens of ms) and the disruption that matters most is seen on the device's
 * marker, read at every call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmclock.h"
#include "vmclockd-state.h"
#include "../common/timeutil.h"
#include "counter.h"
#include "internal.h"
#include "seqlock.h"

/* How often a handle missing its device or state, or whose state looks
 * dead, tries to open them again. */
#define REOPEN_INTERVAL_NS 1000000000ull
/* How often the cached view of the published state is read again. */
#define STATE_REFRESH_NS 1000000ull
/* A view older than this (its refreshes failing, e.g. a count held odd by
 * a writer that died mid-update) is no longer used: UNKNOWN. */
#define STATE_VIEW_MAX_AGE_NS 20000000ull
/* How long one read of the published state may retry an odd or moving count.
 * The daemon's update takes a few microseconds; a reader that cannot get a
 * consistent copy within this answers at once rather than spin. */
#define STATE_READ_BUDGET_NS 10000ull
/* The cache's own writer is another thread of this process, rewriting the
 * slot readers are not copying (the primary only while the backup holds the
 * same view): a retry is rare and short. */
#define VIEW_READ_BUDGET_NS 20000ull

/* A heartbeat this far after the caller's clock reading is still fresh: the
 * caller that refreshes the view reads the file after its clock, and the
 * daemon may write between the two.  Further ahead, the realtime clock was
 * stepped back (or the file lies): UNKNOWN. */
#define HEARTBEAT_AHEAD_NS 10000000ull

/* What a view says about the published state. */
enum { VIEW_NONE = 0, VIEW_OK = 1 };

/*
 * The fields a verdict needs, decoded, as 64-bit words so that a slot can
 * be written and copied with relaxed atomics:
 *   V_HEAD: status | sync_state << 8 | heartbeat_timeout_ms << 16 | drift_ppb << 32
 * and what a call needs beside them, worked out once per view
 * (view_prepare_fast): the fast window, the instants from V_FAST_FROM on
 * for V_FAST_SPAN ns at which the verdict depends on the device's marker
 * alone and the bound is TIM_GrownAt(V_FAST_M, V_FAST_C_LO, V_FAST_C_HI,
 * tv_nsec).  The first V_FAST_WORDS, all a call in the window reads, share
 * a cache line with the count.
 */
enum {
	V_FAST_FROM, V_FAST_SPAN, V_FAST_M, V_FAST_C_LO, V_FAST_C_HI, V_MARKER, V_HEAD,
	V_FAST_WORDS,
	V_HEARTBEAT = V_FAST_WORDS, V_BOUND, V_BOUND_TIME, V_READ_AT, V_WORDS
};

struct view_slot {
	_Alignas(64) uint32_t seq; /* native: the cache's own seq_count */
	uint64_t w[V_WORDS];
};

struct vmclock_truth {
	vmclock_t *device;                  /* atomic; NULL until it opens */
	const struct vmclock_abi *page;     /* atomic; the device's mapping */
	char *device_path, *state_path;
	uint64_t next_try_ns;               /* atomic; CLOCK_REALTIME */
	uint64_t refresh_at_ns;             /* atomic; CLOCK_REALTIME of the last refresh */
	/* The cached view twice: readers copy the primary, and the backup
	 * while the primary is being rewritten. */
	struct view_slot primary, backup;
	/* Taken (try-lock, never waited on by vmclock_timestamp beyond a few
	 * microseconds) by whoever touches the published state's descriptor:
	 * the refresh, vmclock_daemon_state(), a reopen.  The descriptor and
	 * its identity are only used under it. */
	int busy;                           /* atomic */
	int state_fd;
	dev_t state_dev;
	ino_t state_ino;
};

static const char *const verdict_names[] = { "unknown", "synchronized", "freerunning", "disrupted" };

const char *vmclock_verdict_name(vmclock_verdict_t v)
{
	return (unsigned)v < sizeof(verdict_names) / sizeof(verdict_names[0]) ? verdict_names[v] : NULL;
}

/* ---- the published state, read with pread ------------------------------ */

static int state_load_seq(const void *src, bool after, uint32_t *seq)
{
	int fd = *(const int *)src;
	uint32_t le;

	if (after)
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (pread(fd, &le, sizeof(le), offsetof(struct vmclockd_state, seq_count)) != sizeof(le)) {
		errno = ENOENT; /* truncated below the count */
		return -1;
	}
	if (!after)
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	*seq = vmclock_le32(le);
	return 0;
}

static int state_copy(const void *src, void *dst)
{
	ssize_t n = pread(*(const int *)src, dst, sizeof(struct vmclockd_state), 0);

	if (n != (ssize_t)sizeof(struct vmclockd_state)) {
		/* Shorter than a state: truncated, or not written yet. */
		errno = ENOENT;
		return -1;
	}
	return 0;
}

/* A consistent copy of the published state, checked to be one.  Under busy. */
static int read_state_fd(int fd, struct vmclockd_state *out)
{
	if (fd < 0) {
		errno = ENOENT;
		return -1;
	}
	if (seq_read(state_load_seq, state_copy, &fd, out, STATE_READ_BUDGET_NS) < 0)
		return -1;
	if (vmclock_le32(out->magic) != VMCLOCKD_STATE_MAGIC ||
	    vmclock_le16(out->version) != VMCLOCKD_STATE_VERSION) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

/* Opens the published state, refusing what is not a regular file: a FIFO put
 * there must not block us.  A symlink is followed: a reader opens with its
 * own rights, so it reaches nothing it could not open itself (and a state
 * path may be given as a link, e.g. /proc/self/fd/N). */
static int open_state(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool lock_try(vmclock_truth_t *t)
{
	return __atomic_exchange_n(&t->busy, 1, __ATOMIC_ACQUIRE) == 0;
}

static void unlock(vmclock_truth_t *t)
{
	__atomic_store_n(&t->busy, 0, __ATOMIC_RELEASE);
}

/* Waits for busy up to budget_ns (its holders do a few system calls). */
static bool lock_wait(vmclock_truth_t *t, uint64_t budget_ns)
{
	uint64_t deadline = 0;

	while (!lock_try(t)) {
		if (deadline == 0)
			deadline = TIM_NowNs(CLOCK_MONOTONIC) + budget_ns;
		else if (TIM_NowNs(CLOCK_MONOTONIC) >= deadline)
			return false;
		sched_yield();
	}
	return true;
}

/* Under busy: the path names another file than the one open (removed and
 * recreated by a restarted daemon, or replaced by rename), or none is open:
 * open what it names now. */
static void reopen_state_locked(vmclock_truth_t *t)
{
	struct stat st;
	int fd;

	if (t->state_fd >= 0 && stat(t->state_path, &st) == 0 && st.st_dev == t->state_dev &&
	    st.st_ino == t->state_ino)
		return;
	fd = open_state(t->state_path, &st);
	if (fd < 0)
		return;
	if (t->state_fd >= 0)
		close(t->state_fd);
	t->state_fd = fd;
	t->state_dev = st.st_dev;
	t->state_ino = st.st_ino;
}

/* ---- the cached view ----------------------------------------------------- */

static int view_load_seq(const void *src, bool after, uint32_t *seq)
{
	/* The cache's count is native; seq_load_mem reads little-endian. */
	*seq = vmclock_le32(seq_load_mem(&((const struct view_slot *)src)->seq, after));
	return 0;
}

static inline __attribute__((always_inline)) void copy_slot_words(const struct view_slot *s,
								   uint64_t *w, int n)
{
#pragma GCC unroll 16
	for (int i = 0; i < n; i++)
		w[i] = __atomic_load_n(&s->w[i], __ATOMIC_RELAXED);
}

static int view_copy(const void *src, void *dst)
{
	copy_slot_words(src, dst, V_WORDS);
	return 0;
}

/* The words a call in the fast window reads. */
static int view_copy_fast(const void *src, void *dst)
{
	copy_slot_words(src, dst, V_FAST_WORDS);
	return 0;
}

/* The view's words; false if none could be copied.  The primary slot sits
 * at a fixed place, so its loads wait for nothing (an index saying which
 * slot is current was one more dependent load on every call).  It is odd
 * only while the refresh rewrites it, after the backup already holds the
 * same view. */
static inline __attribute__((always_inline)) bool view_read(const vmclock_truth_t *t,
							    uint64_t w[V_WORDS])
{
	if (__builtin_expect(seq_try(view_load_seq, view_copy, &t->primary, w) == 0, 1))
		return true;
	if (seq_read(view_load_seq, view_copy, &t->backup, w, VIEW_READ_BUDGET_NS) == 0)
		return true;
	/* The next refresh is rewriting the backup: the primary is whole. */
	return seq_read(view_load_seq, view_copy, &t->primary, w, VIEW_READ_BUDGET_NS) == 0;
}

/* Under busy: the backup first, then the primary, so that whichever one a
 * reader finds being written (its writer may be preempted there), the
 * other holds a whole view. */
static void view_publish(vmclock_truth_t *t, const uint64_t w[V_WORDS])
{
	seq_write_words(&t->backup.seq, t->backup.w, w, V_WORDS);
	seq_write_words(&t->primary.seq, t->primary.w, w, V_WORDS);
}

static void view_of_state(const struct vmclockd_state *s, uint64_t now_ns, uint64_t w[V_WORDS])
{
	w[V_HEAD] = VIEW_OK | (uint64_t)s->sync_state << 8 |
		    (uint64_t)vmclock_le16(s->heartbeat_timeout_ms) << 16 |
		    (uint64_t)vmclock_le32(s->drift_ppb) << 32;
	w[V_HEARTBEAT] = vmclock_le64(s->heartbeat_realtime_ns);
	w[V_MARKER] = vmclock_le64(s->disruption_marker);
	w[V_BOUND] = vmclock_le64(s->error_bound_ns);
	w[V_BOUND_TIME] = vmclock_le64(s->error_bound_realtime_ns);
	w[V_READ_AT] = now_ns;
}

/* True if a view read at read_ns may still be used at now_ns (a realtime
 * clock stepped back makes it too old as well). */
static inline bool view_fresh(uint64_t read_ns, uint64_t now_ns)
{
	return now_ns - read_ns <= STATE_VIEW_MAX_AGE_NS;
}

static bool heartbeat_fresh(const uint64_t w[V_WORDS], uint64_t now_ns)
{
	uint64_t timeout_ms = (w[V_HEAD] >> 16) & 0xffff;

	if (w[V_HEARTBEAT] > now_ns)
		return w[V_HEARTBEAT] - now_ns <= HEARTBEAT_AHEAD_NS;
	return now_ns - w[V_HEARTBEAT] <= timeout_ms * NSEC_PER_MSEC;
}

/*
 * The view's fast window (V_FAST_*; a span of 0 if it has none): the
 * instants, all in the second of the view's reading, at which the full
 * judgement (timestamp_judged) would find the view not due for a
 * refresh, the heartbeat fresh, the daemon synchronised or unsynchronised,
 * and the bound grown from its instant still under a second: a verdict and
 * a bound that a call in the window takes without judging again, once its
 * device's marker is the one the daemon handled.  Under busy, before the
 * view is published.
 */
static void view_prepare_fast(uint64_t w[V_WORDS])
{
	uint64_t read_at = w[V_READ_AT], heartbeat = w[V_HEARTBEAT], at = w[V_BOUND_TIME];
	uint64_t timeout_ns = ((w[V_HEAD] >> 16) & 0xffff) * NSEC_PER_MSEC;
	uint64_t sec = read_at / NSEC_PER_SEC, from = read_at, until;
	uint32_t drift = (uint32_t)(w[V_HEAD] >> 32);
	unsigned sync_state = (w[V_HEAD] >> 8) & 0xff;
	struct TIM_Growth g;

	w[V_FAST_FROM] = w[V_FAST_SPAN] = w[V_FAST_M] = w[V_FAST_C_LO] = w[V_FAST_C_HI] = 0;
	if (!(w[V_HEAD] & VIEW_OK) || (sync_state != VMCLOCKD_SYNC_SYNCHRONIZED &&
					sync_state != VMCLOCKD_SYNC_UNSYNCHRONIZED))
		return;
	/* Due for a refresh (current_view) from read_at + STATE_REFRESH_NS. */
	until = read_at + STATE_REFRESH_NS;
	if (until > (sec + 1) * NSEC_PER_SEC)
		until = (sec + 1) * NSEC_PER_SEC;
	/* heartbeat_fresh(): from HEARTBEAT_AHEAD_NS before to timeout after. */
	if (heartbeat > HEARTBEAT_AHEAD_NS && heartbeat - HEARTBEAT_AHEAD_NS > from)
		from = heartbeat - HEARTBEAT_AHEAD_NS;
	if (heartbeat < until - timeout_ns - 1)
		until = heartbeat + timeout_ns + 1;
	/* Before its instant the bound does not grow: the full path's case. */
	if (at > from)
		from = at;
	if (from >= until || !TIM_PrepareGrowth(w[V_BOUND], at, drift, sec, &g) ||
	    TIM_GrowBound(w[V_BOUND], until - 1 - at, drift) >= NSEC_PER_SEC)
		return;
	w[V_FAST_FROM] = from;
	w[V_FAST_SPAN] = until - from;
	w[V_FAST_M] = g.m;
	w[V_FAST_C_LO] = g.c_lo;
	w[V_FAST_C_HI] = g.c_hi;
}

/* True at most once per REOPEN_INTERVAL_NS per handle, for one caller. */
static bool may_try(vmclock_truth_t *t, uint64_t now_ns)
{
	uint64_t next = __atomic_load_n(&t->next_try_ns, __ATOMIC_RELAXED);

	return (now_ns >= next || next - now_ns > REOPEN_INTERVAL_NS) &&
	       __atomic_compare_exchange_n(&t->next_try_ns, &next, now_ns + REOPEN_INTERVAL_NS,
					   false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static void try_open_device(vmclock_truth_t *t)
{
	vmclock_t *dev, *none = NULL;

	if (__atomic_load_n(&t->device, __ATOMIC_ACQUIRE) || !(dev = vmclock_open(t->device_path)))
		return;
	if (__atomic_compare_exchange_n(&t->device, &none, dev, false, __ATOMIC_RELEASE,
					__ATOMIC_RELAXED))
		/* Published last: a reader that sees the page sees it whole. */
		__atomic_store_n(&t->page, vmclock_page_map(dev), __ATOMIC_RELEASE);
	else
		vmclock_close(dev);
}

/*
 * Reads the published state into a new view if the current one is due, by one
 * caller at a time; the others go on with the current view.  A read that
 * fails for want of a consistent copy keeps the last good view (until it
 * is STATE_VIEW_MAX_AGE_NS old); any other failure publishes "no state".
 * A missing, dead or unreadable state (and a missing device) is looked for
 * again at most once per REOPEN_INTERVAL_NS.
 */
static __attribute__((noinline)) void refresh(vmclock_truth_t *t, uint64_t now_ns,
						  const uint64_t cur[V_WORDS], bool have_cur)
{
	struct vmclockd_state s;
	uint64_t w[V_WORDS] = { 0 };
	int err = 0;

	if (!lock_try(t))
		return;
	__atomic_store_n(&t->refresh_at_ns, now_ns, __ATOMIC_RELAXED);
	if (read_state_fd(t->state_fd, &s) == 0)
		view_of_state(&s, now_ns, w);
	else
		err = errno;
	if ((err || !heartbeat_fresh(w, now_ns) || !__atomic_load_n(&t->page, __ATOMIC_ACQUIRE)) &&
	    may_try(t, now_ns)) {
		try_open_device(t);
		reopen_state_locked(t);
		if (err) {
			if (read_state_fd(t->state_fd, &s) == 0) {
				view_of_state(&s, now_ns, w);
				err = 0;
			} else {
				err = errno;
			}
		}
	}
	/* No consistent copy in time: the last good view stands while it may. */
	if (err == ETIMEDOUT && have_cur && (cur[V_HEAD] & VIEW_OK) && view_fresh(cur[V_READ_AT], now_ns)) {
		unlock(t);
		return;
	}
	w[V_READ_AT] = now_ns;
	view_prepare_fast(w);
	view_publish(t, w);
	unlock(t);
}

/* current_view() when the view is due: refresh it, or wait for the caller
 * refreshing it if it is too old to use. */
static __attribute__((noinline)) bool current_view_slow(vmclock_truth_t *t, uint64_t now_ns,
							      uint64_t w[V_WORDS], bool have)
{
	refresh(t, now_ns, w, have);
	have = view_read(t, w);
	if (have && view_fresh(w[V_READ_AT], now_ns))
		return true;
	/* Another caller is refreshing a view too old to use: wait for it. */
	if (!lock_wait(t, STATE_READ_BUDGET_NS))
		return false;
	unlock(t);
	return view_read(t, w) && view_fresh(w[V_READ_AT], now_ns);
}

/* The view to judge by at now_ns, refreshed first if due. */
static inline __attribute__((always_inline)) bool current_view(const vmclock_truth_t *ct,
							       uint64_t now_ns, uint64_t w[V_WORDS])
{
	vmclock_truth_t *t = (vmclock_truth_t *)(uintptr_t)ct; /* only atomics change */
	bool have = view_read(t, w);

	if (__builtin_expect(have && now_ns - __atomic_load_n(&t->refresh_at_ns, __ATOMIC_RELAXED) <
					     STATE_REFRESH_NS, 1))
		return true;
	return current_view_slow(t, now_ns, w, have);
}

vmclock_truth_t *vmclock_truth_open(const char *device, const char *state_path)
{
	vmclock_truth_t *t = calloc(1, sizeof(*t));
	struct stat st;

	if (!t)
		return NULL;
	t->state_fd = -1;
	t->device_path = strdup(device ? device : VMCLOCK_DEFAULT_DEVICE);
	t->state_path = strdup(state_path ? state_path : VMCLOCKD_STATE_DEFAULT_PATH);
	if (!t->device_path || !t->state_path) {
		vmclock_truth_close(t);
		errno = ENOMEM;
		return NULL;
	}
	try_open_device(t);
	t->state_fd = open_state(t->state_path, &st);
	if (t->state_fd >= 0) {
		t->state_dev = st.st_dev;
		t->state_ino = st.st_ino;
	}
	/* The first call reads the state: the view starts due. */
	t->refresh_at_ns = 0;
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
	if (t->state_fd >= 0)
		close(t->state_fd);
	free(t);
}

/* Bounds from an error bound in ns, or unbounded.  Bounds under a second,
 * the usual case, need no division. */
static inline __attribute__((always_inline)) void set_bounds(struct vmclock_timestamp *out,
							     uint64_t bound_ns)
{
	out->bound_ns = bound_ns;
	if (bound_ns < NSEC_PER_SEC) {
		/* Field by field from scalars: copying out->time as a whole right
		 * after clock_gettime() wrote it stalled on store forwarding. */
		time_t sec = out->time.tv_sec;
		long nsec = out->time.tv_nsec, lo = nsec - (long)bound_ns, hi = nsec + (long)bound_ns;

		out->earliest.tv_sec = lo < 0 ? sec - 1 : sec;
		out->earliest.tv_nsec = lo < 0 ? lo + NSEC_PER_SEC : lo;
		out->latest.tv_sec = hi >= NSEC_PER_SEC ? sec + 1 : sec;
		out->latest.tv_nsec = hi >= NSEC_PER_SEC ? hi - NSEC_PER_SEC : hi;
		return;
	}
	if (bound_ns >= (uint64_t)INT64_MAX / 2) {
		out->bound_ns = VMCLOCK_ERROR_UNKNOWN;
		out->earliest = (struct timespec){ 0, 0 };
		out->latest = (struct timespec){ INT64_MAX, 999999999 };
		return;
	}
	out->earliest = TIM_AddNs(out->time, -(int64_t)bound_ns);
	out->latest = TIM_AddNs(out->time, (int64_t)bound_ns);
}

/* What the daemon's sync state says of a reading when no disruption is
 * pending: UNKNOWN for a state that vouches for nothing. */
static inline vmclock_verdict_t verdict_of(unsigned sync_state)
{
	if (__builtin_expect(sync_state == VMCLOCKD_SYNC_SYNCHRONIZED, 1))
		return VMCLOCK_VERDICT_SYNCHRONIZED;
	return sync_state == VMCLOCKD_SYNC_UNSYNCHRONIZED ? VMCLOCK_VERDICT_FREERUNNING
							  : VMCLOCK_VERDICT_UNKNOWN;
}

/* vmclock_timestamp() outside its view's fast window: the view refreshed
 * if due, and every rule applied to it. */
static __attribute__((noinline)) int timestamp_judged(const vmclock_truth_t *t,
							const struct vmclock_abi *page,
							uint64_t marker, uint64_t now_ns,
							struct vmclock_timestamp *out)
{
	uint64_t w[V_WORDS], age_ns;
	unsigned sync_state;

	out->verdict = VMCLOCK_VERDICT_UNKNOWN;
	if (!current_view(t, now_ns, w) || !(w[V_HEAD] & VIEW_OK) || !page ||
	    !heartbeat_fresh(w, now_ns)) {
		/* No device, no state, or a daemon that went away. */
		set_bounds(out, VMCLOCK_ERROR_UNKNOWN);
		return 0;
	}
	sync_state = (w[V_HEAD] >> 8) & 0xff;
	if (marker != w[V_MARKER] || sync_state == VMCLOCKD_SYNC_DISRUPTED) {
		out->verdict = VMCLOCK_VERDICT_DISRUPTED;
		set_bounds(out, VMCLOCK_ERROR_UNKNOWN);
		return 0;
	}
	out->verdict = verdict_of(sync_state);
	if (out->verdict == VMCLOCK_VERDICT_UNKNOWN) {
		set_bounds(out, VMCLOCK_ERROR_UNKNOWN);
		return 0;
	}
	/* The published bound, grown at its drift rate since it was read. */
	age_ns = now_ns > w[V_BOUND_TIME] ? now_ns - w[V_BOUND_TIME] : 0;
	set_bounds(out, TIM_GrowBound(w[V_BOUND], age_ns, (uint32_t)(w[V_HEAD] >> 32)));
	return 0;
}

/*
 * The common case costs the clock reading and little more: inside the
 * fast window of a consistent primary slot, with the device's marker the
 * one the daemon handled, the verdict is the view's and the bound one
 * multiplication of tv_nsec away.  The chain that follows the clock
 * reading is what each call adds (the vDSO's RDTSCP waits for it on the
 * next call); everything else overlaps the reading.
 */
int vmclock_timestamp(const vmclock_truth_t *t, struct vmclock_timestamp *out)
{
	const struct vmclock_abi *page = __atomic_load_n(&t->page, __ATOMIC_ACQUIRE);
	uint64_t f[V_FAST_WORDS], now_ns, marker;

	clock_gettime(CLOCK_REALTIME, &out->time);
	now_ns = TIM_TimespecToNs(&out->time);
	marker = page ? vmclock_le64(__atomic_load_n(&page->disruption_marker, __ATOMIC_ACQUIRE))
		      : 0;
	out->disruption_marker = marker;
	if (__builtin_expect(page && seq_try(view_load_seq, view_copy_fast, &t->primary, f) == 0 &&
				     now_ns - f[V_FAST_FROM] < f[V_FAST_SPAN] &&
				     marker == f[V_MARKER],
			     1)) {
		out->verdict = verdict_of((f[V_HEAD] >> 8) & 0xff);
		set_bounds(out, TIM_GrownAt(f[V_FAST_M], f[V_FAST_C_LO], f[V_FAST_C_HI],
					    (uint64_t)out->time.tv_nsec));
		return 0;
	}
	return timestamp_judged(t, page, marker, now_ns, out);
}

int vmclock_daemon_state(const vmclock_truth_t *ct, struct vmclockd_state *out)
{
	vmclock_truth_t *t = (vmclock_truth_t *)(uintptr_t)ct;
	int r, err;

	if (!lock_wait(t, STATE_READ_BUDGET_NS)) {
		errno = ETIMEDOUT;
		return -1;
	}
	/* A caller asking for the whole state wants the file as it is now:
	 * the one the path names, if it was replaced. */
	reopen_state_locked(t);
	r = read_state_fd(t->state_fd, out);
	err = errno;
	unlock(t);
	errno = err;
	return r;
}
