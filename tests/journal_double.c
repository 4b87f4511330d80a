/* SPDX-License-Identifier: BSD-2-Clause
 *
 * journal_double.c - the journal as log.c sends to it (journal_double.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <check.h>

#include "../daemon/log.h"
#include "journal_double.h"

#define MAX_ENTRIES 256
#define MAX_FIELDS 32

typedef struct {
	int n;
	char *field[MAX_FIELDS]; /* "NAME=value" */
} Entry;

static Entry entries[MAX_ENTRIES];
static int n_entries;

int __real_access(const char *path, int mode);
int __wrap_access(const char *path, int mode);
int __wrap_sd_journal_sendv_with_location(const char *file, const char *line, const char *func,
					  const struct iovec *iov, int n);

/* The journal's socket is there. */
int __wrap_access(const char *path, int mode)
{
	if (strcmp(path, "/run/systemd/journal/socket") == 0)
		return 0;
	return __real_access(path, mode);
}

static void keep(Entry *e, const char *text, size_t len)
{
	ck_assert_int_lt(e->n, MAX_FIELDS);
	e->field[e->n] = strndup(text, len);
	ck_assert_ptr_nonnull(e->field[e->n]);
	e->n++;
}

int __wrap_sd_journal_sendv_with_location(const char *file, const char *line, const char *func,
					  const struct iovec *iov, int n)
{
	Entry *e;
	char code_func[256];

	ck_assert_int_lt(n_entries, MAX_ENTRIES);
	e = &entries[n_entries++];
	for (int i = 0; i < n; i++)
		keep(e, iov[i].iov_base, iov[i].iov_len);
	snprintf(code_func, sizeof(code_func), "CODE_FUNC=%s", func);
	keep(e, file, strlen(file));
	keep(e, line, strlen(line));
	keep(e, code_func, strlen(code_func));
	return 0;
}

void JRD_Clear(void)
{
	for (int i = 0; i < n_entries; i++) {
		for (int k = 0; k < entries[i].n; k++)
			free(entries[i].field[k]);
		entries[i].n = 0;
	}
	n_entries = 0;
}

void JRD_Start(bool debug)
{
	struct stat st;
	char stream[64];

	ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", stream, 1), 0);
	LOG_Initialise(debug, false);
	JRD_Clear();
}

const char *JRD_Field(int i, const char *field)
{
	size_t len = strlen(field);

	ck_assert(i >= 0 && i < n_entries);
	for (int k = 0; k < entries[i].n; k++)
		if (strncmp(entries[i].field[k], field, len) == 0 && entries[i].field[k][len] == '=')
			return entries[i].field[k] + len + 1;
	return NULL;
}

static bool has_id(int i, const char *message_id)
{
	const char *id = JRD_Field(i, "MESSAGE_ID");

	return !message_id || (id && strcmp(id, message_id) == 0);
}

int JRD_Count(const char *message_id)
{
	int n = 0;

	for (int i = 0; i < n_entries; i++)
		n += has_id(i, message_id);
	return n;
}

int JRD_Find(const char *message_id, int nth)
{
	for (int i = 0; i < n_entries; i++)
		if (has_id(i, message_id) && nth-- == 0)
			return i;
	return -1;
}

/* FIELD's value in entry I, which must be there. */
static const char *present(int i, const char *field)
{
	const char *v = JRD_Field(i, field);

	ck_assert_msg(v != NULL, "entry %d has no %s", i, field);
	return v;
}

uint64_t JRD_FieldU64(int i, const char *field)
{
	const char *v = present(i, field);
	char *end;
	uint64_t x;

	errno = 0;
	x = strtoull(v, &end, 10);
	ck_assert_msg(errno == 0 && end != v && !*end && *v != '-', "%s=%s", field, v);
	return x;
}

int64_t JRD_FieldI64(int i, const char *field)
{
	const char *v = present(i, field);
	char *end;
	int64_t x;

	errno = 0;
	x = strtoll(v, &end, 10);
	ck_assert_msg(errno == 0 && end != v && !*end, "%s=%s", field, v);
	return x;
}
