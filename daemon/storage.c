/* SPDX-License-Identifier: BSD-2-Clause
 *
 * storage.c - the marker record in the state directory.
 *
 * "marker M\ngeneration G\nperiod F S\n": the handled marker and
 * generation, and the counter period chronyd's frequency is right for
 * (absent: not known).  While a handover is under way it may add
 * "anchor F S FA", chronyd's frequency FA (ppm) and the period it was right
 * for, and "dfreq M F0 S0 F1 S1 D FB", a dfreq in doubt: the target marker,
 * the periods it goes from and to, the change D (ppm, as chronyd decodes
 * it) and chronyd's frequency FB before it; frequencies in hexadecimal
 * floating point, exact.  An anchor or dfreq line that does not parse
 * leaves the period unknown as well: what it stood for cannot be resolved.
 *
 * The directory must be ours (owner our uid, writable by nobody else):
 * whoever can write it could plant a marker and have a disruption handed
 * over twice.  Its path is configuration and is followed like the
 * configuration file's; inside it every call is relative to the open
 * directory, never to a path again, and the files are opened with
 * O_NOFOLLOW|O_NONBLOCK (a symbolic link or a FIFO put there is an error,
 * not a hang) and checked to be regular files of bounded size.  A save
 * writes a fresh temporary file (whatever is at its name unlinked first,
 * then created O_EXCL), flushes it to the disk, renames it over the file and
 * flushes the directory: only then does it count, for a dfreq in doubt must
 * outlive a crash.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "storage.h"

/* LOG_Repeat cause: the directory is not ours alone (errno values are > 0). */
#define DIR_NOT_OURS (-1)

static char *state_dir;
static LOG_Repeat save_failing;

/* ---- the text --------------------------------------------------------- */

static void append(char *buf, size_t size, size_t *len, const char *format, ...)
	__attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, size_t *len, const char *format, ...)
{
	va_list ap;
	int n;

	va_start(ap, format);
	n = vsnprintf(*len < size ? buf + *len : NULL, *len < size ? size - *len : 0, format, ap);
	va_end(ap);
	assert(n >= 0);
	*len += (size_t)n;
}

size_t STO_Format(const STO_Record *rec, char *buf, size_t len)
{
	const STO_Anchor *a = &rec->anchor;
	const STO_Dfreq *d = &rec->dfreq;
	size_t n = 0;

	append(buf, len, &n, "marker %" PRIu64 "\ngeneration %" PRIu64 "\n", rec->marker,
	       rec->generation);
	if (rec->period.valid)
		append(buf, len, &n, "period %" PRIu64 " %u\n", rec->period.frac, rec->period.shift);
	if (a->valid)
		append(buf, len, &n, "anchor %" PRIu64 " %u %a\n", a->period.frac, a->period.shift,
		       a->freq_ppm);
	if (d->valid)
		append(buf, len, &n, "dfreq %" PRIu64 " %" PRIu64 " %u %" PRIu64 " %u %a %a\n",
		       d->marker, d->from.frac, d->from.shift, d->to.frac, d->to.shift, d->dfreq_ppm,
		       d->freq_before_ppm);
	return n;
}

/* A period of a dfreq or anchor line: one a page could carry. */
static bool line_period(uint64_t frac, unsigned shift, STO_Period *p)
{
	if (!frac || shift >= 64)
		return false;
	*p = (STO_Period){ .valid = true, .frac = frac, .shift = (uint8_t)shift };
	return true;
}

static bool parse_dfreq(const char *line, STO_Dfreq *d)
{
	uint64_t f0, f1;
	unsigned s0, s1;

	return sscanf(line, "dfreq %" SCNu64 " %" SCNu64 " %u %" SCNu64 " %u %la %la", &d->marker,
		      &f0, &s0, &f1, &s1, &d->dfreq_ppm, &d->freq_before_ppm) == 7 &&
	       line_period(f0, s0, &d->from) && line_period(f1, s1, &d->to) &&
	       isfinite(d->dfreq_ppm) && isfinite(d->freq_before_ppm);
}

static bool parse_anchor(const char *line, STO_Anchor *a)
{
	uint64_t f;
	unsigned s;

	return sscanf(line, "anchor %" SCNu64 " %u %la", &f, &s, &a->freq_ppm) == 3 &&
	       line_period(f, s, &a->period) && isfinite(a->freq_ppm);
}

/* One line, NUL-terminated; true if it is a marker line. */
static bool parse_line(const char *line, STO_PeriodCheck check, void *arg, STO_Record *out,
		       STO_ParseNotes *notes)
{
	unsigned long long a, b;
	char key[32];
	int n = sscanf(line, "%31s %llu %llu", key, &a, &b);

	if (n < 1)
		return false;
	if (n >= 2 && !strcmp(key, "marker")) {
		out->marker = a;
		return true;
	}
	if (n >= 2 && !strcmp(key, "generation")) {
		out->generation = a;
	} else if (n == 3 && !strcmp(key, "period")) {
		STO_Period p = { .valid = true, .frac = a,
				 .shift = b > UINT8_MAX ? UINT8_MAX : (uint8_t)b };

		if (check(&p, arg)) {
			out->period = p;
		} else {
			out->period.valid = false;
			notes->period_refused = true;
			notes->refused = p;
		}
	} else if (!strcmp(key, "dfreq")) {
		STO_Dfreq d = { .valid = true };

		if (parse_dfreq(line, &d))
			out->dfreq = d;
		else
			notes->unreadable = true;
	} else if (!strcmp(key, "anchor")) {
		STO_Anchor an = { .valid = true };

		if (parse_anchor(line, &an))
			out->anchor = an;
		else
			notes->unreadable = true;
	}
	return false;
}

bool STO_Parse(const char *text, STO_PeriodCheck check, void *arg, STO_Record *out,
	       STO_ParseNotes *notes)
{
	char line[STO_MAX_BYTES + 1];
	bool have_marker = false;

	*out = (STO_Record){ .marker = 0 };
	*notes = (STO_ParseNotes){ .unreadable = false };
	while (*text) {
		size_t n = strcspn(text, "\n");

		if (n > 0 && n <= STO_MAX_BYTES) {
			memcpy(line, text, n);
			line[n] = '\0';
			if (parse_line(line, check, arg, out, notes))
				have_marker = true;
		}
		text += n;
		if (*text)
			text++;
	}
	if (notes->unreadable) {
		out->period.valid = false;
		out->anchor.valid = false;
		out->dfreq.valid = false;
	}
	return have_marker;
}

/* ---- the directory and the file --------------------------------------- */

/* "<state-dir>/marker", for messages. */
static void file_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", state_dir, STO_FILE);
}

/* Why the record cannot be read or saved: an errno, or the directory not
 * being ours alone, in words and in the journal's fields (CAUSE, the
 * directory's owner and mode for the latter). */
typedef struct {
	int cause; /* errno, or DIR_NOT_OURS */
	char why[128];
	char uid[32], mode[32];
	const char *fields[4];
} Problem;

static void problem_errno(Problem *p, int err)
{
	p->cause = err;
	snprintf(p->why, sizeof(p->why), "%s", strerror(err));
	p->fields[0] = NULL;
}

/* The state directory, open, if it is ours alone; else -1 and why. */
static int open_dir(bool create, Problem *p)
{
	struct stat st;
	int fd;

	if (create && mkdir(state_dir, 0755) < 0 && errno != EEXIST)
		goto fail;
	fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) < 0) {
		close(fd);
		goto fail;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		p->cause = DIR_NOT_OURS;
		snprintf(p->why, sizeof(p->why),
			 "the directory is not vmclockd's alone (owner uid %u, mode %04o)",
			 (unsigned)st.st_uid, (unsigned)st.st_mode & 07777);
		snprintf(p->uid, sizeof(p->uid), "OWNER_UID=%u", (unsigned)st.st_uid);
		snprintf(p->mode, sizeof(p->mode), "MODE=%04o", (unsigned)st.st_mode & 07777);
		p->fields[0] = "CAUSE=directory_not_ours";
		p->fields[1] = p->uid;
		p->fields[2] = p->mode;
		p->fields[3] = NULL;
		close(fd);
		return -1;
	}
	return fd;
fail:
	problem_errno(p, errno);
	return -1;
}

int STO_Save(const STO_Record *rec)
{
	char path[4096], text[STO_TEXT_MAX];
	size_t len = STO_Format(rec, text, sizeof(text)), done = 0;
	int dir, fd = -1;
	Problem p;

	assert(len < sizeof(text));
	file_path(path, sizeof(path));
	dir = open_dir(true, &p);
	if (dir < 0)
		goto fail;
	if (unlinkat(dir, STO_TMP_FILE, 0) < 0 && errno != ENOENT)
		goto fail_errno;
	fd = openat(dir, STO_TMP_FILE,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
	if (fd < 0)
		goto fail_errno;
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = ENOSPC; /* no room for the rest */
		if (n <= 0)
			goto fail_errno;
		done += (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail_errno;
	if (close(fd) < 0) {
		fd = -1;
		goto fail_errno;
	}
	fd = -1;
	if (renameat(dir, STO_TMP_FILE, dir, STO_FILE) < 0)
		goto fail_errno;
	/* The rename itself on the disk.  Not undone if this fails: the new
	 * file is the truth either way, it is the old one that may come back. */
	if (fsync(dir) < 0)
		goto fail_errno;
	close(dir);
	if (LOG_RepeatRecovered(&save_failing))
		LOG_FileState(LOGS_INFO, path, "saved", 0, NULL, "saved the handled marker in %s again",
			      path);
	return 0;
fail_errno:
	problem_errno(&p, errno ? errno : EIO);
fail:
	if (LOG_RepeatFailing(&save_failing, p.cause))
		LOG_FileState(LOGS_WARN, path, "unsaved", p.cause > 0 ? p.cause : 0,
			      p.fields, "cannot save the handled marker in %s: %s; a restart will not "
			      "know it until it is saved", path, p.why);
	if (fd >= 0)
		close(fd);
	if (dir >= 0) {
		unlinkat(dir, STO_TMP_FILE, 0);
		close(dir);
	}
	return p.cause > 0 ? -p.cause : -EACCES;
}

/* The file's text, NUL-terminated, if it is a regular file of at most
 * STO_MAX_BYTES in a directory of ours; else why not (said, unless there is
 * simply no file yet). */
static STO_Status read_file(const char *path, char *buf)
{
	struct stat st;
	size_t len = 0;
	int dir, fd;
	Problem p;

	dir = open_dir(false, &p);
	if (dir < 0) {
		if (p.cause == ENOENT)
			return STO_NOT_FOUND;
		LOG_FileState(LOGS_WARN, path, "unreadable",
			      p.cause > 0 ? p.cause : 0, p.fields,
			      "not reading the handled marker in %s: %s; starting afresh", path, p.why);
		return STO_UNUSABLE;
	}
	fd = openat(dir, STO_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	close(dir);
	if (fd < 0) {
		int err = errno;

		if (err == ENOENT)
			return STO_NOT_FOUND;
		LOG_FileState(LOGS_WARN, path, "unreadable", err, NULL,
			      "cannot read %s: %s; starting afresh", path, strerror(err));
		return STO_UNUSABLE;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		LOG_FileState(LOGS_WARN, path, "not_regular", 0, NULL,
			      "%s is not a regular file; starting afresh", path);
		close(fd);
		return STO_UNUSABLE;
	}
	while (len <= STO_MAX_BYTES) {
		ssize_t n = read(fd, buf + len, STO_MAX_BYTES + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			LOG_FileState(LOGS_WARN, path, "unreadable", err, NULL,
				      "cannot read %s: %s; starting afresh", path, strerror(err));
			close(fd);
			return STO_UNUSABLE;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > STO_MAX_BYTES) {
		LOG_FileState(LOGS_WARN, path, "too_large", 0, NULL,
			      "%s is larger than %d bytes; starting afresh", path, STO_MAX_BYTES);
		return STO_UNUSABLE;
	}
	buf[len] = '\0';
	return STO_FOUND;
}

STO_Status STO_Load(STO_Record *out, STO_PeriodCheck check, void *arg)
{
	char path[4096], buf[STO_MAX_BYTES + 1];
	STO_ParseNotes notes;
	STO_Status status;
	bool have_marker;

	file_path(path, sizeof(path));
	status = read_file(path, buf);
	if (status != STO_FOUND)
		return status;
	have_marker = STO_Parse(buf, check, arg, out, &notes);
	if (notes.period_refused)
		LOG_FileState(LOGS_WARN, path, "period_refused", 0, NULL,
			      "%s: ignoring period %" PRIu64 " %u (no counter period on this page); "
			      "no frequency change at the next disruption", path, notes.refused.frac,
			      notes.refused.shift);
	if (notes.unreadable)
		LOG_FileState(LOGS_WARN, path, "period_unreadable", 0, NULL,
			      "%s: unreadable dfreq or anchor record; the period chronyd's frequency "
			      "is right for is not known, no frequency change at the next "
			      "disruption", path);
	if (!have_marker) {
		LOG_FileState(LOGS_WARN, path, "no_marker", 0, NULL,
			      "%s has no marker; starting afresh", path);
		return STO_UNUSABLE;
	}
	return STO_FOUND;
}

/* ---- the module ------------------------------------------------------- */

int STO_Initialise(const char *dir)
{
	save_failing = (LOG_Repeat){ 0 };
	return STO_Reconfigure(dir);
}

void STO_Finalise(void)
{
	free(state_dir);
	state_dir = NULL;
}

int STO_Reconfigure(const char *dir)
{
	char *copy = strdup(dir);

	if (!copy) {
		LOG(LOGS_ERR, "state-dir %s not taken: out of memory", dir);
		return -ENOMEM;
	}
	free(state_dir);
	state_dir = copy;
	return 0;
}
