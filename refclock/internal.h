/* SPDX-License-Identifier: BSD-2-Clause
 *
 * internal.h - helpers shared between libvmclock's files, not exported.
 */
#ifndef VMCLOCK_INTERNAL_H
#define VMCLOCK_INTERNAL_H

#include <stdint.h>

#define VMCLOCK_HIDDEN __attribute__((visibility("hidden")))

/* ticks * rate >> (64 + shift), in nanoseconds, rounded up; saturates just
 * below VMCLOCK_ERROR_UNKNOWN. */
VMCLOCK_HIDDEN uint64_t convert_ticks_to_ns_ceil(uint64_t ticks, uint64_t rate, unsigned shift);

struct vmclock;
struct vmclock_abi;
/* The mapped page itself, for single-field atomic loads. */
VMCLOCK_HIDDEN const struct vmclock_abi *vmclock_page_map(const struct vmclock *vc);

#endif /* VMCLOCK_INTERNAL_H */
