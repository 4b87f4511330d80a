/* SPDX-License-Identifier: BSD-2-Clause
 *
 * internal.h - helpers shared between libvmclock's files, not exported.
 */
#ifndef VMCLOCK_INTERNAL_H
#define VMCLOCK_INTERNAL_H

#include <stdint.h>

#define VMCLOCK_HIDDEN __attribute__((visibility("hidden")))


struct vmclock;
struct vmclock_abi;
/* The mapped page itself, for single-field atomic loads. */
VMCLOCK_HIDDEN const struct vmclock_abi *vmclock_page_map(const struct vmclock *vc);

#endif /* VMCLOCK_INTERNAL_H */
