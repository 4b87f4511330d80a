/* SPDX-License-Identifier: BSD-2-Clause
 *
 * journal_double.h - the journal as log.c sends to it, for the unit tests:
 * each entry kept as the journal would store it, field by field.
 *
 * A program using it links with
 * -Wl,--wrap=sd_journal_sendv_with_location,--wrap=access: JRD_Start()
 * makes log.c take stderr for the journal ($JOURNAL_STREAM naming it, the
 * journal's socket there), and every entry log.c sends is kept here instead
 * (MESSAGE=, PRIORITY=, MESSAGE_ID=, the event's own fields, CODE_FILE=,
 * CODE_LINE=, CODE_FUNC=).  Tests assert on identifiers and fields, never
 * on the text.
 */
#ifndef VMCLOCKD_TESTS_JOURNAL_DOUBLE_H
#define VMCLOCKD_TESTS_JOURNAL_DOUBLE_H

#include <stdbool.h>
#include <stdint.h>

/* LOG_Initialise(debug, false) with stderr the journal; what was kept is
 * forgotten. */
void JRD_Start(bool debug);
/* Forgets what was kept. */
void JRD_Clear(void);
/* Entries kept: all of them (message_id NULL), or those with that
 * MESSAGE_ID. */
int JRD_Count(const char *message_id);
/* The index of the nth entry (from 0) with that MESSAGE_ID (NULL: any), or
 * -1. */
int JRD_Find(const char *message_id, int nth);
/* The value of FIELD in entry I, or NULL if it has none. */
const char *JRD_Field(int i, const char *field);
/* The same as a number (the test fails if it is not one). */
uint64_t JRD_FieldU64(int i, const char *field);
int64_t JRD_FieldI64(int i, const char *field);

#endif /* VMCLOCKD_TESTS_JOURNAL_DOUBLE_H */
