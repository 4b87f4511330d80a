/* SPDX-License-Identifier: BSD-2-Clause
 *
 * seqlock.h - libvmclock's one reader of the seq_count protocol, and the
 * writer of its own caches.
 *
 * A writer makes the count odd, changes the fields, and makes it even
 * again.  A reader loads the count, copies, loads the count again, and
 * keeps the copy only if both loads saw the same even count.  Every
 * consistent copy the library takes goes through seq_try() or seq_read():
 * the vmclock page (a mapping), vmclockd's published state (read with
 * pread(2)) and the per-handle caches of that state and of what a page
 * version allows (process memory, written with seq_write_words()).  Only the
 * way the count and the fields are loaded differs, given as two callbacks.
 *
 * Retries are bounded in time, never in iterations: a count that stays odd
 * (a writer that died mid-update) costs at most budget_ns per call, however
 * fast or slow one try is.  The clock is read only once a try has failed,
 * so the fast path never pays for it.
 *
 * Static inline with constant callbacks: the compiler flattens the loop on
 * vmclock_gettime()'s path.
 */
#ifndef VMCLOCK_SEQLOCK_H
#define VMCLOCK_SEQLOCK_H

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/timeutil.h"
#include "counter.h"
#include "vmclock-abi.h"

/* Tries that spin (a writer on another CPU finishes in well under a
 * microsecond) before the reader yields to a writer it may have preempted. */
#define SEQ_SPINS_BEFORE_YIELD 64u

/* Loads the count: the first load of a try (after == false) has acquire
 * ordering; the second (after == true) is ordered after the copy.  Returns
 * -1 with errno set if the source cannot be read at all. */
typedef int (*seq_load_fn)(const void *src, bool after, uint32_t *seq);
/* Copies the fields; -1 with errno set to give up. */
typedef int (*seq_copy_fn)(const void *src, void *dst);

/*
 * One try: 0 if the copy is consistent, -1 with errno EAGAIN if a writer
 * was mid-update (the count odd, or moved during the copy), or with the
 * errno of a callback.
 */
static inline __attribute__((always_inline)) int seq_try(seq_load_fn load, seq_copy_fn copy,
							 const void *src, void *dst)
{
	uint32_t before, after;

	if (load(src, false, &before) < 0 || copy(src, dst) < 0 || load(src, true, &after) < 0)
		return -1;
	if (!(before & 1) && before == after)
		return 0;
	errno = EAGAIN;
	return -1;
}

/*
 * One consistent copy of src into dst.  Returns 0, or -1 with errno from a
 * callback, or ETIMEDOUT once budget_ns have passed since the first try
 * failed (at least two tries are always made).
 */
static inline __attribute__((always_inline)) int seq_read(seq_load_fn load, seq_copy_fn copy,
							  const void *src, void *dst,
							  uint64_t budget_ns)
{
	uint64_t deadline = 0;
	unsigned tries = 0;

	while (seq_try(load, copy, src, dst) < 0) {
		if (errno != EAGAIN)
			return -1;
		if (deadline == 0) {
			deadline = TIM_NowNs(CLOCK_MONOTONIC) + budget_ns;
		} else if (TIM_NowNs(CLOCK_MONOTONIC) >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (++tries < SEQ_SPINS_BEFORE_YIELD)
			counter_relax();
		else
			sched_yield();
	}
	return 0;
}

/* The count of a seq_count protocol held in memory (a mapping or the
 * process's own), little-endian as every count this library reads. */
static inline __attribute__((always_inline)) uint32_t seq_load_mem(const uint32_t *seq, bool after)
{
	if (after) {
		/* The copy's loads happen before this one. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		return vmclock_le32(__atomic_load_n(seq, __ATOMIC_RELAXED));
	}
	return vmclock_le32(__atomic_load_n(seq, __ATOMIC_ACQUIRE));
}

/* The writer's side for a count and words held in process memory (the
 * caches a handle keeps), by one writer at a time: the count odd, the
 * words, the count even again, each word a relaxed atomic store so that a
 * reader copying them meanwhile races in a defined way. */
static inline void seq_write_words(uint32_t *seq, uint64_t *dst, const uint64_t *src, int n)
{
	__atomic_store_n(seq, *seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (int i = 0; i < n; i++)
		__atomic_store_n(&dst[i], src[i], __ATOMIC_RELAXED);
	__atomic_store_n(seq, *seq + 1, __ATOMIC_RELEASE);
}

#endif /* VMCLOCK_SEQLOCK_H */
