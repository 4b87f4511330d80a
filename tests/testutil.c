/* SPDX-License-Identifier: BSD-2-Clause
 *
 * testutil.c - see testutil.h.
 */
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <check.h>

#include "testutil.h"

void tu_capture_begin(TU_Capture *c, FILE **stream)
{
	tu_capture_free(c);
	c->stream = stream;
	c->saved = *stream;
	*stream = open_memstream(&c->text, &c->len);
	ck_assert_ptr_nonnull(*stream);
}

void tu_capture_end(TU_Capture *c)
{
	fclose(*c->stream);
	*c->stream = c->saved;
}

void tu_capture_free(TU_Capture *c)
{
	free(c->text);
	c->text = NULL;
	c->len = 0;
}

unsigned tu_count(const char *text, const char *needle)
{
	unsigned n = 0;

	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

unsigned tu_lines(const char *text)
{
	size_t len = text ? strlen(text) : 0;

	return tu_count(text, "\n") + (len > 0 && text[len - 1] != '\n');
}

void tu_obey_permissions(void)
{
	struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	ck_assert_int_eq(syscall(SYS_capget, &head, data), 0);
	data[CAP_TO_INDEX(CAP_DAC_OVERRIDE)].effective &= ~CAP_TO_MASK(CAP_DAC_OVERRIDE);
	data[CAP_TO_INDEX(CAP_DAC_READ_SEARCH)].effective &= ~CAP_TO_MASK(CAP_DAC_READ_SEARCH);
	ck_assert_int_eq(syscall(SYS_capset, &head, data), 0);
}
