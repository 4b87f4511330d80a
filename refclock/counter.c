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

uint8_t vmclock_native_counter(void)
{
	return counter_supported(COUNTER_NATIVE_ID & 0xff) ? (uint8_t)COUNTER_NATIVE_ID
							   : VMCLOCK_COUNTER_INVALID;
}
