/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_storage.c - unit tests of the marker record (daemon/storage.c).
 *
 * The text: every combination of fields and extreme values formatted and
 * parsed back bit for bit; hostile text (huge and negative numbers, shifts
 * of 64 and more, zero periods, NaN and infinities, missing fields,
 * duplicated lines, blank lines, no trailing newline, texts and lines
 * longer than a file may be).  The files, in a fresh directory under /tmp:
 * a missing directory created by the first save; a directory not ours (group
 * or world writable, another owner); a symbolic link at the file's name and
 * at the temporary name (never followed, the target untouched); a FIFO at
 * either (no hang); a directory at the file's name; a file too large; a
 * save that fails (no room, the flush failing) leaves the old record whole
 * and no temporary file; the order that makes a save durable (the file
 * flushed, renamed, the directory flushed).  Failures of the disk come from
 * doubles of write, fsync and renameat (linked with -Wl,--wrap), armed only
 * for this test's files.  What is logged is counted by severity (stderr is
 * captured), never matched by wording.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "../daemon/log.h"
#include "../daemon/storage.h"
#include "checkrun.h"

/* ---- helpers ---------------------------------------------------------- */

/* The check vmclockd applies, as far as a record can tell: a period a page
 * could carry (ARG: a call counter, or NULL). */
static bool page_like(const STO_Period *p, void *arg)
{
	if (arg)
		(*(int *)arg)++;
	return p->frac != 0 && p->shift < 64;
}

static bool accept_all(const STO_Period *p, void *arg)
{
	return true;
}

static bool same_double(double a, double b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

static bool same_period(const STO_Period *a, const STO_Period *b)
{
	return a->valid == b->valid && (!a->valid || (a->frac == b->frac && a->shift == b->shift));
}

static void assert_same_record(const STO_Record *a, const STO_Record *b)
{
	ck_assert_uint_eq(a->marker, b->marker);
	ck_assert_uint_eq(a->generation, b->generation);
	ck_assert(same_period(&a->period, &b->period));
	ck_assert_int_eq(a->anchor.valid, b->anchor.valid);
	if (a->anchor.valid) {
		ck_assert(same_period(&a->anchor.period, &b->anchor.period));
		ck_assert(same_double(a->anchor.freq_ppm, b->anchor.freq_ppm));
	}
	ck_assert_int_eq(a->dfreq.valid, b->dfreq.valid);
	if (a->dfreq.valid) {
		ck_assert_uint_eq(a->dfreq.marker, b->dfreq.marker);
		ck_assert(same_period(&a->dfreq.from, &b->dfreq.from));
		ck_assert(same_period(&a->dfreq.to, &b->dfreq.to));
		ck_assert(same_double(a->dfreq.dfreq_ppm, b->dfreq.dfreq_ppm));
		ck_assert(same_double(a->dfreq.freq_before_ppm, b->dfreq.freq_before_ppm));
	}
}

static STO_Period period(uint64_t frac, uint8_t shift)
{
	return (STO_Period){ .valid = true, .frac = frac, .shift = shift };
}

/* A record with every line. */
static STO_Record full_record(uint64_t marker)
{
	return (STO_Record){
		.marker = marker,
		.generation = 4,
		.period = period(0x8000000000000000ull, 31),
		.anchor = { .valid = true, .period = period(0x8000000000000000ull, 31),
			    .freq_ppm = -30.0 },
		.dfreq = { .valid = true, .marker = marker + 1,
			   .from = period(0x8000000000000000ull, 31),
			   .to = period(0x8000100000000000ull, 31), .dfreq_ppm = -1.9073486328125,
			   .freq_before_ppm = -30.0 },
	};
}

/* stderr captured, counted by severity. */
static char *text;
static size_t text_len;
static FILE *saved_stderr;

static void capture_begin(void)
{
	free(text);
	text = NULL;
	saved_stderr = stderr;
	stderr = open_memstream(&text, &text_len);
	ck_assert_ptr_nonnull(stderr);
}

static void capture_end(void)
{
	fclose(stderr);
	stderr = saved_stderr;
}

static unsigned count(const char *needle)
{
	unsigned n = 0;

	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

#define WARNINGS() count("vmclockd: warning: ")
#define LINES() count("\n")

/* ---- the text --------------------------------------------------------- */

/* Every combination of present and absent lines, with the extremes of
 * each field: formatted, parsed back, the same record bit for bit (-0.0,
 * the smallest subnormal, the largest doubles), formatted again the same. */
START_TEST(round_trip_every_combination)
{
	const uint64_t markers[] = { 0, 1, UINT64_MAX };
	const STO_Period periods[] = { { .valid = false }, period(1, 0), period(UINT64_MAX, 63),
				       period(0, 255) };
	const STO_Anchor anchors[] = {
		{ .valid = false },
		{ .valid = true, .period = period(1, 0), .freq_ppm = 0.0 },
		{ .valid = true, .period = period(UINT64_MAX, 63), .freq_ppm = -DBL_MAX },
		{ .valid = true, .period = period(12345, 1), .freq_ppm = -0.0 },
	};
	const STO_Dfreq dfreqs[] = {
		{ .valid = false },
		{ .valid = true, .marker = UINT64_MAX, .from = period(1, 0),
		  .to = period(UINT64_MAX, 63), .dfreq_ppm = -30.000001,
		  .freq_before_ppm = 4.9406564584124654e-324 },
		{ .valid = true, .marker = 0, .from = period(UINT64_MAX, 63), .to = period(1, 0),
		  .dfreq_ppm = DBL_MAX, .freq_before_ppm = -0.0 },
	};
	unsigned n = 0;

	for (size_t m = 0; m < 3; m++)
		for (size_t g = 0; g < 3; g++)
			for (size_t p = 0; p < 4; p++)
				for (size_t a = 0; a < 4; a++)
					for (size_t d = 0; d < 3; d++) {
						STO_Record rec = { .marker = markers[m],
								   .generation = markers[g],
								   .period = periods[p],
								   .anchor = anchors[a],
								   .dfreq = dfreqs[d] }, back;
						STO_ParseNotes notes;
						char buf[STO_TEXT_MAX], again[STO_TEXT_MAX];
						size_t len = STO_Format(&rec, buf, sizeof(buf));

						ck_assert_uint_lt(len, sizeof(buf));
						ck_assert_uint_eq(strlen(buf), len);
						ck_assert(STO_Parse(buf, accept_all, NULL, &back, &notes));
						ck_assert(!notes.period_refused && !notes.unreadable);
						assert_same_record(&rec, &back);
						STO_Format(&back, again, sizeof(again));
						ck_assert_str_eq(buf, again);
						n++;
					}
	ck_assert_uint_eq(n, 432);
}
END_TEST

/* Fields of a line not written leave no trace: the text of a record whose
 * absent lines hold garbage is the text without them. */
START_TEST(format_ignores_invalid_lines)
{
	STO_Record rec = full_record(1), bare = { .marker = 1, .generation = 4 };
	char a[STO_TEXT_MAX], b[STO_TEXT_MAX];

	rec.period.valid = rec.anchor.valid = rec.dfreq.valid = false;
	rec.anchor.freq_ppm = NAN;
	STO_Format(&rec, a, sizeof(a));
	STO_Format(&bare, b, sizeof(b));
	ck_assert_str_eq(a, b);
	ck_assert_str_eq(a, "marker 1\ngeneration 4\n");
}
END_TEST

/* A buffer too small: the length needed, the text cut and terminated. */
START_TEST(format_into_a_small_buffer)
{
	STO_Record rec = full_record(UINT64_MAX - 1);
	char full[STO_TEXT_MAX], small[10];
	size_t len = STO_Format(&rec, full, sizeof(full));

	ck_assert_uint_eq(STO_Format(&rec, small, sizeof(small)), len);
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	ck_assert(!strncmp(small, full, sizeof(small) - 1));
	ck_assert_uint_eq(STO_Format(&rec, NULL, 0), len);
}
END_TEST

#define DFREQ_OK "dfreq 9 5 3 6 3 0x1p+0 -0x1.ep+4"
#define ANCHOR_OK "anchor 5 3 -0x1.ep+4"

/* What a text parses to: flags (M: it has a marker, R: a period line was
 * refused, U: an anchor or dfreq line unreadable) and the record, as
 * STO_Format writes it (the round trip above vouches for that). */
#define M 1
#define R 2
#define U 4
typedef struct {
	const char *text;
	int flags;
	const char *want;
} Case;

#define REC(rest) "marker 1\ngeneration 0\n" rest
static const Case cases[] = {
	{ "", 0, "marker 0\ngeneration 0\n" },
	{ "\n\n\n", 0, "marker 0\ngeneration 0\n" },
	{ "marker 5", M, "marker 5\ngeneration 0\n" },
	{ "\n\nmarker 5\n\n\ngeneration 6\n\n", M, "marker 5\ngeneration 6\n" },
	{ "marker 5\r\ngeneration 6\r\n", M, "marker 5\ngeneration 6\n" },
	{ "marker 18446744073709551615\n", M, "marker 18446744073709551615\ngeneration 0\n" },
	/* Beyond 64 bits: saturated (glibc's strtoull), never wrapped. */
	{ "marker 99999999999999999999999999\n", M,
	  "marker 18446744073709551615\ngeneration 0\n" },
	/* strtoull's negation. */
	{ "marker -1\n", M, "marker 18446744073709551615\ngeneration 0\n" },
	{ "marker\n", 0, "marker 0\ngeneration 0\n" },
	{ "marker x\n", 0, "marker 0\ngeneration 0\n" },
	{ "marker 1 2 3\n", M, REC("") },
	{ "markerX 1\n", 0, "marker 0\ngeneration 0\n" },
	{ "marker 2\nmarker 1\n", M, REC("") },
	{ "generation 3\n", 0, "marker 0\ngeneration 3\n" },
	{ "marker 1\ngeneration 3\ngeneration 4\n", M, "marker 1\ngeneration 4\n" },
	{ "marker 1\nperiod 5 3\n", M, REC("period 5 3\n") },
	{ "marker 1\nperiod 5\n", M, REC("") },
	{ "marker 1\nperiod 5 3 7\n", M, REC("period 5 3\n") },
	{ "marker 1\nperiod 0 3\n", M | R, REC("") },
	{ "marker 1\nperiod 5 64\n", M | R, REC("") },
	{ "marker 1\nperiod 5 300\n", M | R, REC("") },
	{ "marker 1\nperiod 5 3\nperiod 0 3\n", M | R, REC("") },
	{ "marker 1\nperiod 0 3\nperiod 5 3\n", M | R, REC("period 5 3\n") },
	{ "marker 1\n" ANCHOR_OK "\n", M, REC(ANCHOR_OK "\n") },
	{ "marker 1\n" DFREQ_OK "\n", M, REC(DFREQ_OK "\n") },
	{ "marker 1\n" DFREQ_OK, M, REC(DFREQ_OK "\n") },
	{ DFREQ_OK "\n" ANCHOR_OK "\nperiod 5 3\nmarker 1\n", M,
	  REC("period 5 3\n" ANCHOR_OK "\n" DFREQ_OK "\n") },
	/* A blank line after a dfreq line is no dfreq line. */
	{ "marker 1\n" DFREQ_OK "\n   \n\t\n", M, REC(DFREQ_OK "\n") },
	{ "marker 1\ndfreqX 9 5 3 6 3 0x1p+0 0x1p+0\n", M, REC("") },
	/* Each field of an anchor or a dfreq broken in turn: nothing of the
	 * record is kept but the marker and generation. */
	{ "marker 1\ngeneration 2\nperiod 5 3\nanchor 5 64 0x1p+0\n", M | U,
	  "marker 1\ngeneration 2\n" },
	{ REC("period 5 3\nanchor 0 3 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\nanchor 5 3 nan\n"), M | U, REC("") },
	{ REC("period 5 3\nanchor 5 3 inf\n"), M | U, REC("") },
	{ REC("period 5 3\nanchor 5 3 -infinity\n"), M | U, REC("") },
	{ REC("period 5 3\nanchor 5 3\n"), M | U, REC("") },
	{ REC("period 5 3\nanchor\n"), M | U, REC("") },
	{ REC("period 5 3\nanchor 5 300 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\nanchor 5 -1 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\ndfreq 9 5 64 6 3 0x1p+0 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\ndfreq 9 5 3 6 64 0x1p+0 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\ndfreq 9 0 3 6 3 0x1p+0 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\ndfreq 9 5 3 0 3 0x1p+0 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\ndfreq 9 5 3 6 3 nan 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\ndfreq 9 5 3 6 3 0x1p+0 -inf\n"), M | U, REC("") },
	{ REC("period 5 3\ndfreq 9 5 3 6 3 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\ndfreq x 5 3 6 3 0x1p+0 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\ndfreq\n"), M | U, REC("") },
	/* A good line does not undo a bad one, before or after it. */
	{ REC("period 5 3\n" ANCHOR_OK "\n" DFREQ_OK "\ndfreq 9 5 3 6 3 0x1p+0\n"), M | U, REC("") },
	{ REC("period 5 3\nanchor 5 3 nan\n" ANCHOR_OK "\n" DFREQ_OK "\n"), M | U, REC("") },
	/* An unreadable line without a marker: no record. */
	{ "generation 2\nanchor 5 3 nan\n", U, "marker 0\ngeneration 2\n" },
};

START_TEST(parse_hostile_text)
{
	const Case *c = &cases[_i];
	STO_Record rec;
	STO_ParseNotes notes;
	char got[STO_TEXT_MAX];
	bool have_marker = STO_Parse(c->text, page_like, NULL, &rec, &notes);

	STO_Format(&rec, got, sizeof(got));
	ck_assert_msg(have_marker == !!(c->flags & M), "case %d: marker", _i);
	ck_assert_msg(notes.period_refused == !!(c->flags & R), "case %d: refused", _i);
	ck_assert_msg(notes.unreadable == !!(c->flags & U), "case %d: unreadable", _i);
	ck_assert_str_eq(got, c->want);
}
END_TEST

/* A refused period's values, said by STO_Load: the last one refused (a
 * shift beyond a byte kept as 255, which no page carries). */
START_TEST(parse_refused_period)
{
	STO_Record rec;
	STO_ParseNotes notes;

	STO_Parse("marker 1\nperiod 0 3\nperiod 5 300\n", page_like, NULL, &rec, &notes);
	ck_assert(notes.period_refused);
	ck_assert(same_period(&notes.refused, &(STO_Period){ true, 5, 255 }));
	STO_Parse("marker 1\nperiod 0 3\nperiod 5 3\n", page_like, NULL, &rec, &notes);
	ck_assert(notes.period_refused);
	ck_assert(same_period(&notes.refused, &(STO_Period){ true, 0, 3 }));
	ck_assert(same_period(&rec.period, &(STO_Period){ true, 5, 3 }));
}
END_TEST

/* The valid lines' values, exactly. */
START_TEST(parse_values)
{
	STO_Record rec;
	STO_ParseNotes notes;

	ck_assert(STO_Parse("marker 1\n" ANCHOR_OK "\n" DFREQ_OK "\n", page_like, NULL, &rec, &notes));
	ck_assert(same_period(&rec.anchor.period, &(STO_Period){ true, 5, 3 }));
	ck_assert(same_double(rec.anchor.freq_ppm, -30.0));
	ck_assert_uint_eq(rec.dfreq.marker, 9);
	ck_assert(same_period(&rec.dfreq.from, &(STO_Period){ true, 5, 3 }));
	ck_assert(same_period(&rec.dfreq.to, &(STO_Period){ true, 6, 3 }));
	ck_assert(same_double(rec.dfreq.dfreq_ppm, 1.0));
	ck_assert(same_double(rec.dfreq.freq_before_ppm, -30.0));
}
END_TEST

/* The check sees every period line, with its argument; the periods of
 * anchor and dfreq lines are the parser's own. */
START_TEST(parse_checks_each_period_line)
{
	STO_Record rec;
	STO_ParseNotes notes;
	int calls = 0;

	STO_Parse("marker 1\nperiod 5 3\nperiod 6 3\n" ANCHOR_OK "\n" DFREQ_OK "\n", page_like,
		  &calls, &rec, &notes);
	ck_assert_int_eq(calls, 2);
	ck_assert_uint_eq(rec.period.frac, 6);
}
END_TEST

/* Texts longer than a file may be are parsed whole; a line longer than a
 * file may be is not a line of a record. */
START_TEST(parse_long_texts)
{
	size_t big = 100000;
	char *s = malloc(big + 64);
	STO_Record rec;
	STO_ParseNotes notes;
	size_t n = 0;

	ck_assert_ptr_nonnull(s);
	while (n + 13 < big)
		n += (size_t)sprintf(s + n, "generation 1\n");
	sprintf(s + n, "marker 77\n");
	ck_assert(STO_Parse(s, page_like, NULL, &rec, &notes));
	ck_assert_uint_eq(rec.marker, 77);
	ck_assert_uint_eq(rec.generation, 1);

	/* "marker 000…01", STO_MAX_BYTES long: a line. */
	memset(s, '0', STO_MAX_BYTES);
	memcpy(s, "marker ", 7);
	s[STO_MAX_BYTES - 1] = '1';
	s[STO_MAX_BYTES] = '\0';
	ck_assert(STO_Parse(s, page_like, NULL, &rec, &notes));
	ck_assert_uint_eq(rec.marker, 1);
	/* One byte longer: ignored. */
	memset(s + 7, '0', STO_MAX_BYTES);
	s[STO_MAX_BYTES] = '1';
	s[STO_MAX_BYTES + 1] = '\0';
	ck_assert(!STO_Parse(s, page_like, NULL, &rec, &notes));
	free(s);
}
END_TEST

/* ---- doubles of the disk ---------------------------------------------- */

/* Linked with -Wl,--wrap=write,--wrap=fsync,--wrap=renameat.  Armed for the
 * record's files only (the test's directory), so that Check's own files go
 * through. */
ssize_t __real_write(int fd, const void *buf, size_t len);
ssize_t __wrap_write(int fd, const void *buf, size_t len);
int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __real_renameat(int olddir, const char *old, int newdir, const char *new);
int __wrap_renameat(int olddir, const char *old, int newdir, const char *new);

static char dir[64];      /* this test's directory */
static char sdir[96];     /* the state directory in it */
static int write_fails;   /* errno the writes of the temporary file fail with */
static int fsync_file_fails, fsync_dir_fails;
/* The sequence of flushes and renames: 'f' the file, 'r' the rename, 'd'
 * the directory. */
static char ops[16];

/* Whether fd is the state directory or a file in it. */
static bool ours(int fd, bool *is_dir)
{
	char link[64], target[256];
	ssize_t n;
	size_t len = strlen(sdir);

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0 || !*sdir)
		return false;
	target[n] = '\0';
	if (strncmp(target, sdir, len) || (target[len] && target[len] != '/'))
		return false;
	*is_dir = !target[len];
	return true;
}

static void note(char op)
{
	size_t n = strlen(ops);

	if (n + 1 < sizeof(ops))
		ops[n] = op;
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
	bool is_dir;

	if (write_fails && ours(fd, &is_dir)) {
		errno = write_fails;
		return -1;
	}
	return __real_write(fd, buf, len);
}

int __wrap_fsync(int fd)
{
	bool is_dir;

	if (!ours(fd, &is_dir))
		return __real_fsync(fd);
	note(is_dir ? 'd' : 'f');
	if (is_dir ? fsync_dir_fails : fsync_file_fails) {
		errno = is_dir ? fsync_dir_fails : fsync_file_fails;
		return -1;
	}
	return __real_fsync(fd);
}

int __wrap_renameat(int olddir, const char *old, int newdir, const char *new)
{
	bool is_dir;

	if (ours(olddir, &is_dir))
		note('r');
	return __real_renameat(olddir, old, newdir, new);
}

/* ---- the files -------------------------------------------------------- */

static char file[128], tmp[128], victim[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_storage.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sdir, sizeof(sdir), "%s/state", dir);
	snprintf(file, sizeof(file), "%s/" STO_FILE, sdir);
	snprintf(tmp, sizeof(tmp), "%s/" STO_TMP_FILE, sdir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	write_fails = fsync_file_fails = fsync_dir_fails = 0;
	memset(ops, 0, sizeof(ops));
	umask(022);
	LOG_Initialise(false, true);
	ck_assert_int_eq(STO_Initialise(sdir), 0);
}

static void teardown(void)
{
	char cmd[128];

	STO_Finalise();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	*sdir = '\0';
}

static void put(const char *path, const char *s, size_t len)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(s, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* The file's content, NUL-terminated (static). */
static const char *content(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static bool is_regular(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static const char *formatted(const STO_Record *rec)
{
	static char buf[STO_TEXT_MAX];

	STO_Format(rec, buf, sizeof(buf));
	return buf;
}

/* A missing directory: nothing saved yet, said by nobody; the first save
 * creates it (ours, 0755) and what it saved loads back. */
START_TEST(save_creates_the_directory)
{
	STO_Record rec = full_record(7), back;
	struct stat st;

	capture_begin();
	ck_assert_int_eq(STO_Load(&back, page_like, NULL), STO_NOT_FOUND);
	capture_end();
	ck_assert_uint_eq(LINES(), 0);
	ck_assert_int_eq(STO_Save(&rec), 0);
	ck_assert_int_eq(stat(sdir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0755);
	ck_assert_str_eq(content(file), formatted(&rec));
	ck_assert(!exists(tmp));
	capture_begin();
	ck_assert_int_eq(STO_Load(&back, page_like, NULL), STO_FOUND);
	capture_end();
	ck_assert_uint_eq(LINES(), 0);
	assert_same_record(&rec, &back);
}
END_TEST

START_TEST(load_without_a_file)
{
	STO_Record rec;

	ck_assert_int_eq(mkdir(sdir, 0755), 0);
	capture_begin();
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_NOT_FOUND);
	capture_end();
	ck_assert_uint_eq(LINES(), 0);
}
END_TEST

/* A directory others may write: nothing read from it or written to it,
 * said once however often it is tried; the recovery said once. */
START_TEST(directory_others_may_write)
{
	const mode_t modes[] = { 0777, 0775, 0757 };
	STO_Record rec = full_record(1);

	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(mkdir(sdir, 0755), 0);
		ck_assert_int_eq(chmod(sdir, modes[i]), 0);
		put(file, "marker 9\n", 9);
		capture_begin();
		ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_UNUSABLE);
		ck_assert_int_eq(STO_Save(&rec), -EACCES);
		ck_assert_int_eq(STO_Save(&rec), -EACCES);
		capture_end();
		ck_assert_uint_eq(WARNINGS(), i == 0 ? 2 : 1); /* the load, and the first save */
		ck_assert_str_eq(content(file), "marker 9\n");
		ck_assert(!exists(tmp));
		ck_assert_int_eq(unlink(file), 0);
		ck_assert_int_eq(rmdir(sdir), 0);
	}
	ck_assert_int_eq(mkdir(sdir, 0755), 0);
	capture_begin();
	ck_assert_int_eq(STO_Save(&rec), 0);
	ck_assert_int_eq(STO_Save(&rec), 0);
	capture_end();
	ck_assert_uint_eq(LINES(), 1);
	ck_assert_uint_eq(WARNINGS(), 0);
	ck_assert_str_eq(content(file), formatted(&rec));
}
END_TEST

/* Another owner's directory: as root, one chowned to nobody; otherwise
 * one of root's. */
START_TEST(directory_of_another_owner)
{
	STO_Record rec = full_record(1);

	if (geteuid() == 0) {
		ck_assert_int_eq(mkdir(sdir, 0755), 0);
		put(file, "marker 9\n", 9);
		ck_assert_int_eq(chown(sdir, 65534, 65534), 0);
	} else {
		ck_assert_int_eq(STO_Reconfigure("/"), 0);
	}
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_UNUSABLE);
	ck_assert_int_eq(STO_Save(&rec), -EACCES);
	if (geteuid() == 0) {
		ck_assert_str_eq(content(file), "marker 9\n");
		ck_assert(!exists(tmp));
	}
}
END_TEST

/* A state directory that is a file. */
START_TEST(directory_is_a_file)
{
	STO_Record rec = full_record(1);

	put(sdir, "x", 1);
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_UNUSABLE);
	ck_assert_int_eq(STO_Save(&rec), -ENOTDIR);
	ck_assert_str_eq(content(sdir), "x");
}
END_TEST

/* A symbolic link at the file's name: not read through, and the save
 * replaces the link, not what it points to. */
START_TEST(symlink_at_the_file)
{
	STO_Record rec = full_record(1), back;

	ck_assert_int_eq(mkdir(sdir, 0755), 0);
	put(victim, "marker 7\ngeneration 1\n", 22);
	ck_assert_int_eq(symlink(victim, file), 0);
	ck_assert_int_eq(STO_Load(&back, page_like, NULL), STO_UNUSABLE);
	ck_assert_int_eq(STO_Save(&rec), 0);
	ck_assert(is_regular(file));
	ck_assert_str_eq(content(victim), "marker 7\ngeneration 1\n");
	ck_assert_int_eq(STO_Load(&back, page_like, NULL), STO_FOUND);
	assert_same_record(&rec, &back);
}
END_TEST

/* A symbolic link at the temporary name: removed, never written through. */
START_TEST(symlink_at_the_temporary_file)
{
	STO_Record rec = full_record(1);

	ck_assert_int_eq(mkdir(sdir, 0755), 0);
	put(victim, "precious", 8);
	ck_assert_int_eq(symlink(victim, tmp), 0);
	ck_assert_int_eq(STO_Save(&rec), 0);
	ck_assert_str_eq(content(victim), "precious");
	ck_assert(is_regular(file));
	ck_assert(!exists(tmp));
	ck_assert_str_eq(content(file), formatted(&rec));
}
END_TEST

/* A FIFO at either name: no hang (the test's timeout), refused, replaced. */
START_TEST(fifo_at_the_file)
{
	STO_Record rec = full_record(1);

	ck_assert_int_eq(mkdir(sdir, 0755), 0);
	ck_assert_int_eq(mkfifo(file, 0644), 0);
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_UNUSABLE);
	ck_assert_int_eq(STO_Save(&rec), 0);
	ck_assert(is_regular(file));
}
END_TEST

START_TEST(fifo_at_the_temporary_file)
{
	STO_Record rec = full_record(1);

	ck_assert_int_eq(mkdir(sdir, 0755), 0);
	ck_assert_int_eq(mkfifo(tmp, 0644), 0);
	ck_assert_int_eq(STO_Save(&rec), 0);
	ck_assert(is_regular(file));
	ck_assert(!exists(tmp));
}
END_TEST

/* A directory at the file's name: not read, and the rename over it fails
 * (said), leaving no temporary file. */
START_TEST(directory_at_the_file)
{
	STO_Record rec = full_record(1);

	ck_assert_int_eq(mkdir(sdir, 0755), 0);
	ck_assert_int_eq(mkdir(file, 0755), 0);
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_UNUSABLE);
	capture_begin();
	ck_assert_int_lt(STO_Save(&rec), 0);
	capture_end();
	ck_assert_uint_eq(WARNINGS(), 1);
	ck_assert(!exists(tmp));
}
END_TEST

/* STO_MAX_BYTES is the limit, the bytes counted, not the text. */
START_TEST(file_size_limit)
{
	char *s = malloc(STO_MAX_BYTES + 1);
	STO_Record rec;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(mkdir(sdir, 0755), 0);
	memset(s, '\n', STO_MAX_BYTES + 1);
	memcpy(s, "marker 3\n", 9);
	put(file, s, STO_MAX_BYTES);
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_FOUND);
	ck_assert_uint_eq(rec.marker, 3);
	put(file, s, STO_MAX_BYTES + 1);
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_UNUSABLE);
	/* A NUL ends the text, not the file. */
	memset(s, '\0', STO_MAX_BYTES + 1);
	memcpy(s, "marker 3\n", 9);
	memcpy(s + 10, "marker 4\n", 9);
	put(file, s, 19);
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_FOUND);
	ck_assert_uint_eq(rec.marker, 3);
	put(file, s, STO_MAX_BYTES + 1);
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_UNUSABLE);
	free(s);
}
END_TEST

/* What the parser notes is said, once each; a text without a marker is no
 * record. */
START_TEST(load_says_the_notes)
{
	STO_Record rec;

	ck_assert_int_eq(mkdir(sdir, 0755), 0);
	put(file, "marker 1\nperiod 0 3\nanchor 5 3 nan\n", 35);
	capture_begin();
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_FOUND);
	capture_end();
	ck_assert_uint_eq(WARNINGS(), 2);
	ck_assert_uint_eq(LINES(), 2);
	ck_assert(!rec.period.valid && !rec.anchor.valid && !rec.dfreq.valid);
	put(file, "generation 1\n", 13);
	capture_begin();
	ck_assert_int_eq(STO_Load(&rec, page_like, NULL), STO_UNUSABLE);
	capture_end();
	ck_assert_uint_eq(WARNINGS(), 1);
}
END_TEST

/* A save is durable in this order: the temporary file flushed, renamed
 * over the file, the directory flushed. */
START_TEST(save_order_is_durable)
{
	STO_Record rec = full_record(1);

	ck_assert_int_eq(STO_Save(&rec), 0);
	ck_assert_str_eq(ops, "frd");
}
END_TEST

/* No room, or the flush of the file failing: the old record stays whole,
 * no temporary file is left, the errno is returned; each cause said once,
 * the recovery once. */
START_TEST(failed_save_keeps_the_old_record)
{
	STO_Record old = full_record(1), rec = full_record(2), back;

	ck_assert_int_eq(STO_Save(&old), 0);
	write_fails = ENOSPC;
	capture_begin();
	ck_assert_int_eq(STO_Save(&rec), -ENOSPC);
	ck_assert_int_eq(STO_Save(&rec), -ENOSPC);
	capture_end();
	ck_assert_uint_eq(WARNINGS(), 1);
	ck_assert_str_eq(content(file), formatted(&old));
	ck_assert(!exists(tmp));
	write_fails = 0;
	fsync_file_fails = EIO;
	memset(ops, 0, sizeof(ops));
	capture_begin();
	ck_assert_int_eq(STO_Save(&rec), -EIO);
	ck_assert_int_eq(STO_Save(&rec), -EIO);
	capture_end();
	ck_assert_str_eq(ops, "ff"); /* never renamed */
	ck_assert_uint_eq(WARNINGS(), 1);
	ck_assert_int_eq(STO_Load(&back, page_like, NULL), STO_FOUND);
	assert_same_record(&old, &back);
	ck_assert(!exists(tmp));
	fsync_file_fails = 0;
	capture_begin();
	ck_assert_int_eq(STO_Save(&rec), 0);
	capture_end();
	ck_assert_uint_eq(LINES(), 1);
	ck_assert_uint_eq(WARNINGS(), 0);
	ck_assert_int_eq(STO_Load(&back, page_like, NULL), STO_FOUND);
	assert_same_record(&rec, &back);
}
END_TEST

/* The directory's flush failing: the save is not durable (an error), the
 * new record is in place all the same. */
START_TEST(failed_directory_flush)
{
	STO_Record rec = full_record(2), back;

	fsync_dir_fails = EIO;
	ck_assert_int_eq(STO_Save(&rec), -EIO);
	ck_assert_int_eq(STO_Load(&back, page_like, NULL), STO_FOUND);
	assert_same_record(&rec, &back);
}
END_TEST

/* A reload's new directory: saves go there. */
START_TEST(reconfigure_moves_the_record)
{
	STO_Record rec = full_record(5), back;
	char other[128], moved[160];

	snprintf(other, sizeof(other), "%s/other", dir);
	snprintf(moved, sizeof(moved), "%s/" STO_FILE, other);
	ck_assert_int_eq(STO_Reconfigure(other), 0);
	ck_assert_int_eq(STO_Save(&rec), 0);
	ck_assert(is_regular(moved));
	ck_assert(!exists(sdir));
	ck_assert_int_eq(STO_Load(&back, page_like, NULL), STO_FOUND);
	assert_same_record(&rec, &back);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("storage");
	TCase *text_tc = tcase_create("text"), *files = tcase_create("files");

	tcase_add_test(text_tc, round_trip_every_combination);
	tcase_add_test(text_tc, format_ignores_invalid_lines);
	tcase_add_test(text_tc, format_into_a_small_buffer);
	tcase_add_loop_test(text_tc, parse_hostile_text, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(text_tc, parse_refused_period);
	tcase_add_test(text_tc, parse_values);
	tcase_add_test(text_tc, parse_checks_each_period_line);
	tcase_add_test(text_tc, parse_long_texts);
	suite_add_tcase(s, text_tc);

	tcase_add_checked_fixture(files, setup, teardown);
	tcase_add_test(files, save_creates_the_directory);
	tcase_add_test(files, load_without_a_file);
	tcase_add_test(files, directory_others_may_write);
	tcase_add_test(files, directory_of_another_owner);
	tcase_add_test(files, directory_is_a_file);
	tcase_add_test(files, symlink_at_the_file);
	tcase_add_test(files, symlink_at_the_temporary_file);
	tcase_add_test(files, fifo_at_the_file);
	tcase_add_test(files, fifo_at_the_temporary_file);
	tcase_add_test(files, directory_at_the_file);
	tcase_add_test(files, file_size_limit);
	tcase_add_test(files, load_says_the_notes);
	tcase_add_test(files, save_order_is_durable);
	tcase_add_test(files, failed_save_keeps_the_old_record);
	tcase_add_test(files, failed_directory_flush);
	tcase_add_test(files, reconfigure_moves_the_record);
	suite_add_tcase(s, files);

	return CR_Run(s, CK_FORK_GETENV);
}
