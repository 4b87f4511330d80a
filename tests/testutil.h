/* SPDX-License-Identifier: BSD-2-Clause
 *
 * testutil.h - what the daemon modules' unit tests share: a stream captured
 * in memory, and file permissions that bind the test even as root.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stdio.h>

/* What the code under test writes to *stream (&stderr, &stdout) between
 * tu_capture_begin and tu_capture_end: text, NUL-terminated, valid until
 * the next tu_capture_begin or tu_capture_free on it. */
typedef struct {
	FILE **stream;
	FILE *saved;
	char *text;
	size_t len;
} TU_Capture;

void tu_capture_begin(TU_Capture *c, FILE **stream);
void tu_capture_end(TU_Capture *c);
void tu_capture_free(TU_Capture *c);

/* How many times needle occurs in text (0 for a NULL text). */
unsigned tu_count(const char *text, const char *needle);
/* Lines in text (a last line without '\n' counts). */
unsigned tu_lines(const char *text);

/* From now on this process obeys file permissions even as root (it drops
 * CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its effective set): for
 * Check's forked tests of unreadable and unwritable files. */
void tu_obey_permissions(void);

#endif /* TESTUTIL_H */
