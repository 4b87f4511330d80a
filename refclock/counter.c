/* SPDX-License-Identifier: BSD-2-Clause
 *
 * counter.c - the exported counter read, for tools and the simulator.
 */
#include "vmclock.h"
#include "counter.h"

bool vmclock_read_counter(uint8_t counter_id, uint64_t *value)
{
	if (!counter_supported(counter_id))
		return false;
	*value = counter_read_native();
	return true;
}
