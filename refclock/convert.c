/* SPDX-License-Identifier: BSD-2-Clause
 *
 * convert.c - the exported conversion (the arithmetic is in convert.h).
 */
#include "convert.h"

int vmclock_convert(const struct vmclock_abi *page, uint64_t counter, struct vmclock_time *out)
{
	return convert_page(page, counter, out);
}
