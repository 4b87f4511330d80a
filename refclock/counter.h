/* SPDX-License-Identifier: BSD-2-Clause
 *
 * counter.h - read the CPU counter a vmclock page is a function of.
 *
 * Inline because the read sits on vmclock_gettime()'s hot path.  The reads are
 * ordered after earlier loads (the seq_count), as the kernel's vDSO orders
 * its own: LFENCE before RDTSC on x86, ISB before reading CNTVCT_EL0 on arm64.
 */
#ifndef VMCLOCK_COUNTER_H
#define VMCLOCK_COUNTER_H

#include <stdbool.h>
#include <stdint.h>

#include "vmclock-abi.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define COUNTER_NATIVE_ID VMCLOCK_COUNTER_X86_TSC
static inline uint64_t counter_read_native(void)
{
	_mm_lfence();
	return __rdtsc();
}
static inline void counter_relax(void)
{
	_mm_pause();
}
#elif defined(__aarch64__)
#define COUNTER_NATIVE_ID VMCLOCK_COUNTER_ARM_VCNT
static inline uint64_t counter_read_native(void)
{
	uint64_t v;
	__asm__ __volatile__("isb\n\tmrs %0, cntvct_el0" : "=r"(v)::"memory");
	return v;
}
static inline void counter_relax(void)
{
	__asm__ __volatile__("yield" ::: "memory");
}
#else
#define COUNTER_NATIVE_ID 0x100 /* matches no counter_id */
static inline uint64_t counter_read_native(void)
{
	return 0;
}
static inline void counter_relax(void)
{
}
#endif

/* True if this CPU can read the counter the page names. */
static inline bool counter_supported(uint8_t counter_id)
{
	return counter_id == COUNTER_NATIVE_ID;
}

#endif /* VMCLOCK_COUNTER_H */
