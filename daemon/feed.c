/* SPDX-License-Identifier: BSD-2-Clause
 *
 * feed.c - dispatch to an output's driver.
 */
#include "feed.h"

int FED_Send(FED_Output out, const FED_Sample *s)
{
	return out->driver->send(out, s);
}

const char *FED_Name(FED_Output out)
{
	return out->driver->name;
}

const char *FED_Problem(FED_Output out)
{
	return out->problem;
}

void FED_Destroy(FED_Output out)
{
	if (out)
		out->driver->destroy(out);
}
