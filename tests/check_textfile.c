/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_textfile.c - the metrics file for node_exporter's textfile
 * collector (daemon/textfile.c).
 *
 * A page file and a state file built here stand for the device and the
 * published state; the test parses the metrics file's Prometheus text (each
 * sample after its family's TYPE, each value a number) and finds their
 * figures in it.  The file is replaced whole by a rename (a reader holding
 * the old one reads it complete), when due by metrics-interval-ms of
 * CLOCK_MONOTONIC (the test's own: the link wraps clock_gettime), and at
 * once on a disruption or the end of its handover.  Failures: the directory
 * missing, not writable, a write that fails (RLIMIT_FSIZE), a symbolic link
 * left at the temporary name or at the file's (replaced, never followed)
 * and one, symbolic or hard, planted at the temporary name between its
 * removal and its creation (the link wraps unlink to plant it there): each
 * said once while it lasts, its end said once, the old file left as it
 * was.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "../daemon/config.h"
#include "../daemon/disrupt.h"
#include "../daemon/log.h"
#include "../daemon/textfile.h"
#include "testpage.h"
#include "monoskip.h"
#include "testutil.h"
#include "vmclock-abi.h"
#include "vmclock.h"
#include "vmclockd-state.h"
#include "checkrun.h"

int __real_unlink(const char *path);
int __wrap_unlink(const char *path);

/* Where a link to plant_target (symbolic, or hard with plant_hard) is
 * planted right after unlink removed it. */
static const char *plant_at, *plant_target;
static bool plant_hard;

int __wrap_unlink(const char *path)
{
	int r = __real_unlink(path), saved = errno;

	if (plant_at && strcmp(path, plant_at) == 0)
		ck_assert_int_eq(plant_hard ? link(plant_target, path) : symlink(plant_target, path),
				 0);
	errno = saved;
	return r;
}

#define INTERVAL_MS 5000u
#define MARKER 0x1234567890abull
#define STATE_MARKER 0x1234567890aaull

static char *dir, *page_path, *state_path, *prom_path, *tmp_path, *victim_path;
static CNF_Settings cfg;
static DSR_Report report;
static struct vmclockd_state state; /* native-endian, written little-endian */
static TU_Capture err;

static void write_state(const char *path)
{
	struct vmclockd_state le = { 0 };
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	le.magic = vmclock_le32(VMCLOCKD_STATE_MAGIC);
	le.version = vmclock_le16(VMCLOCKD_STATE_VERSION);
	le.size = vmclock_le16(sizeof(le));
	le.sync_state = VMCLOCKD_SYNC_SYNCHRONIZED;
	le.heartbeat_timeout_ms = vmclock_le16(60000);
	le.heartbeat_realtime_ns = vmclock_le64((uint64_t)now.tv_sec * 1000000000u +
						(uint64_t)now.tv_nsec);
	le.disruption_marker = vmclock_le64(state.disruption_marker);
	le.vm_generation_counter = vmclock_le64(state.vm_generation_counter);
	le.error_bound_ns = vmclock_le64(VMCLOCKD_BOUND_UNKNOWN);
	le.drift_ppb = vmclock_le32(VMCLOCKD_DRIFT_UNKNOWN);
	le.disruptions = vmclock_le64(state.disruptions);
	le.samples_fed = vmclock_le64(state.samples_fed);
	for (int i = 0; i < VMCLOCKD_STATE_REASONS; i++)
		le.withheld[i] = vmclock_le64(state.withheld[i]);
	free(tp_write_bytes(dir, strrchr(path, '/') + 1, &le, sizeof(le)));
}

static void setup(void)
{
	struct testpage page;

	/* The test's CLOCK_MONOTONIC (monoskip.h): the real one's now, moved
	 * only by the test. */
	MSK_Freeze();
	dir = tp_tmpdir();
	tp_init(&page);
	tp_put64(&page, TP_MARKER, MARKER);
	tp_put64(&page, TP_GENERATION, 7);
	tp_put8(&page, TP_STATUS, VMCLOCK_STATUS_SYNCHRONIZED);
	page_path = tp_write_file(dir, "page", &page);
	state_path = tp_path(dir, "state");
	state = (struct vmclockd_state){ .disruption_marker = STATE_MARKER,
					 .vm_generation_counter = 6,
					 .disruptions = 3,
					 .samples_fed = 123456 };
	state.withheld[VMCLOCKD_REASON_ERROR_BOUND] = 42;
	write_state(state_path);
	prom_path = tp_path(dir, "vmclock.prom");
	tmp_path = tp_path(dir, "vmclock.prom.tmp");
	victim_path = tp_path(dir, "victim");
	cfg = (CNF_Settings){ .device = page_path,
			      .publish_file = state_path,
			      .metrics_file = prom_path,
			      .metrics_interval_ms = INTERVAL_MS };
	report = (DSR_Report){ 0 };
	LOG_Initialise(false, true);
	tu_capture_begin(&err, &stderr);
	TXF_Initialise(&cfg);
}

static void teardown(void)
{
	plant_at = NULL;
	TXF_Finalise();
	tu_capture_end(&err);
	tu_capture_free(&err);
	tp_rmdir(dir);
	free(dir);
	free(page_path);
	free(state_path);
	free(prom_path);
	free(tmp_path);
	free(victim_path);
}

/* Lines logged so far, and those of them errors. */
static unsigned logged(void)
{
	fflush(stderr);
	return tu_lines(err.text);
}

static unsigned errors_logged(void)
{
	fflush(stderr);
	return tu_count(err.text, "vmclockd: error: ");
}

/* Messages saying PATH is in FILE_STATE (the journal fields on stderr). */
static unsigned said_state(const char *path, const char *file_state)
{
	char needle[4200];

	fflush(stderr);
	snprintf(needle, sizeof(needle), " FILE=%s FILE_STATE=%s", path, file_state);
	return tu_count(err.text, needle);
}

static void advance_ms(uint64_t ms)
{
	MSK_Advance((int64_t)ms * 1000000);
}

/* The whole of a file, NULL if it cannot be read. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0;
	FILE *out;
	int c;

	if (!f)
		return NULL;
	out = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(out);
	while ((c = fgetc(f)) != EOF)
		fputc(c, out);
	fclose(out);
	fclose(f);
	return text;
}

/* Text exposition format: "# HELP name ...", "# TYPE name type", and
 * samples "name[{labels}] value" of a family whose TYPE came before, the
 * value a number; every line ends with a newline. */
static void assert_exposition(const char *text)
{
	char families[64][64];
	unsigned n_families = 0, samples = 0;

	ck_assert_ptr_nonnull(text);
	ck_assert(*text && text[strlen(text) - 1] == '\n');
	for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
		size_t len = (size_t)(strchr(line, '\n') - line);
		char name[64], type[32], value[64];
		const char *sp;
		bool known = false;
		char *end;

		ck_assert_uint_gt(len, 0);
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (sscanf(line, "# TYPE %63s %31s", name, type) == 2) {
			ck_assert(!strcmp(type, "gauge") || !strcmp(type, "counter"));
			ck_assert_uint_lt(n_families, 64);
			strcpy(families[n_families++], name);
			continue;
		}
		ck_assert_msg(line[0] != '#', "%.*s", (int)len, line);
		ck_assert_int_eq(sscanf(line, "%63[a-z_]", name), 1);
		for (unsigned i = 0; i < n_families; i++)
			known = known || !strcmp(families[i], name);
		ck_assert_msg(known, "sample before its TYPE: %.*s", (int)len, line);
		sp = memrchr(line, ' ', len);
		ck_assert_ptr_nonnull(sp);
		ck_assert_uint_lt((size_t)(line + len - sp), sizeof(value));
		snprintf(value, sizeof(value), "%.*s", (int)(line + len - sp - 1), sp + 1);
		strtod(value, &end);
		ck_assert_msg(*value && !*end, "not a number: %.*s", (int)len, line);
		samples++;
	}
	ck_assert_uint_gt(samples, 0);
}

/* The value of one sample (its name and labels as written), which must be
 * there once. */
static unsigned long long sample(const char *text, const char *series)
{
	size_t len = strlen(series);
	const char *found = NULL;
	char *end;
	unsigned long long v;

	for (const char *line = text; *line; line = strchr(line, '\n') + 1)
		if (strncmp(line, series, len) == 0 && line[len] == ' ') {
			ck_assert_msg(!found, "%s twice", series);
			found = line + len + 1;
		}
	ck_assert_msg(found, "no sample %s", series);
	v = strtoull(found, &end, 10);
	ck_assert_msg(*end == '\n', "%s is not an integer", series);
	return v;
}

/* The metrics file holds the device's and the state's figures. */
static void assert_metrics(const char *path, uint64_t samples_fed)
{
	char *text = slurp(path), series[128];

	ck_assert_msg(text, "%s not written", path);
	assert_exposition(text);
	ck_assert_uint_eq(sample(text, "vmclock_daemon_up"), 1);
	ck_assert_uint_eq(sample(text, "vmclock_device_up"), 1);
	ck_assert_uint_eq(sample(text, "vmclock_disruption_marker{source=\"device\"}"), MARKER);
	ck_assert_uint_eq(sample(text, "vmclock_disruption_marker{source=\"vmclockd\"}"),
			  STATE_MARKER);
	ck_assert_uint_eq(sample(text, "vmclock_vm_generation{source=\"device\"}"), 7);
	ck_assert_uint_eq(sample(text, "vmclock_vm_generation{source=\"vmclockd\"}"), 6);
	ck_assert_uint_eq(sample(text, "vmclock_disruptions_total"), 3);
	ck_assert_uint_eq(sample(text, "vmclock_samples_fed_total"), samples_fed);
	snprintf(series, sizeof(series), "vmclock_samples_withheld_total{reason=\"%s\"}",
		 vmclockd_reason_name(VMCLOCKD_REASON_ERROR_BOUND));
	ck_assert_uint_eq(sample(text, series), 42);
	snprintf(series, sizeof(series), "vmclock_clock_status{status=\"%s\"}",
		 vmclock_status_name(VMCLOCK_STATUS_SYNCHRONIZED));
	ck_assert_uint_eq(sample(text, series), 1);
	free(text);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void write_victim(void)
{
	free(tp_write_bytes(dir, "victim", "victim\n", 7));
}

static void assert_victim_untouched(void)
{
	char *text = slurp(victim_path);

	ck_assert_str_eq(text, "victim\n");
	free(text);
}

/* The first tick writes the file: a regular file, 0644, the metrics of the
 * device and the state, nothing left at the temporary name. */
START_TEST(first_tick_writes)
{
	struct stat st;

	TXF_Tick(&report);
	assert_metrics(prom_path, 123456);
	ck_assert_int_eq(lstat(prom_path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	ck_assert(!exists(tmp_path));
	ck_assert_uint_eq(logged(), 0);
}
END_TEST

/* Rewritten when metrics-interval-ms has passed, not before; at once when
 * a disruption is seen or its handover starts or ends. */
START_TEST(rewritten_when_due)
{
	TXF_Tick(&report);
	ck_assert(exists(prom_path));
	ck_assert_int_eq(unlink(prom_path), 0);
	advance_ms(INTERVAL_MS - 1);
	MSK_Advance(999999);
	TXF_Tick(&report);
	ck_assert(!exists(prom_path));
	MSK_Advance(1);
	TXF_Tick(&report);
	ck_assert(exists(prom_path));

	ck_assert_int_eq(unlink(prom_path), 0);
	advance_ms(1);
	report.disruptions++;
	report.handling = true;
	TXF_Tick(&report);
	ck_assert(exists(prom_path));
	ck_assert_int_eq(unlink(prom_path), 0);
	advance_ms(1);
	TXF_Tick(&report);
	ck_assert(!exists(prom_path));
	report.handling = false;
	TXF_Tick(&report);
	ck_assert(exists(prom_path));
	ck_assert_int_eq(unlink(prom_path), 0);
	report.disruptions++;
	TXF_Tick(&report);
	ck_assert(exists(prom_path));
	/* The interval counts from the last write. */
	ck_assert_int_eq(unlink(prom_path), 0);
	advance_ms(INTERVAL_MS - 1);
	TXF_Tick(&report);
	ck_assert(!exists(prom_path));
	advance_ms(1);
	TXF_Tick(&report);
	ck_assert(exists(prom_path));
	ck_assert_uint_eq(logged(), 0);
}
END_TEST

/* Replaced by a rename: another file, the old one complete for whoever
 * holds it open. */
START_TEST(replaced_by_rename)
{
	struct stat before, after;
	char *old_text, *held_text;
	FILE *held;
	size_t len;
	int fd;

	TXF_Tick(&report);
	old_text = slurp(prom_path);
	ck_assert_ptr_nonnull(old_text);
	fd = open(prom_path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &before), 0);

	state.samples_fed = 654321;
	write_state(state_path);
	advance_ms(INTERVAL_MS);
	TXF_Tick(&report);
	assert_metrics(prom_path, 654321);
	ck_assert_int_eq(stat(prom_path, &after), 0);
	ck_assert(after.st_ino != before.st_ino);

	held = fdopen(fd, "r");
	ck_assert_ptr_nonnull(held);
	len = strlen(old_text);
	held_text = calloc(1, len + 2);
	ck_assert_ptr_nonnull(held_text);
	ck_assert_uint_eq(fread(held_text, 1, len + 1, held), len);
	ck_assert_str_eq(held_text, old_text);
	ck_assert_uint_eq(sample(held_text, "vmclock_samples_fed_total"), 123456);
	fclose(held);
	free(held_text);
	free(old_text);
	ck_assert(!exists(tmp_path));
}
END_TEST

/* No metrics-file: nothing written, nothing said. */
START_TEST(no_metrics_file)
{
	cfg.metrics_file = "";
	TXF_Tick(&report);
	report.disruptions++;
	TXF_Tick(&report);
	ck_assert(!exists(prom_path));
	ck_assert(!exists(tmp_path));
	ck_assert_uint_eq(logged(), 0);
}
END_TEST

/* A link left at the temporary name (a daemon that died there, or someone
 * else) is removed, never followed. */
START_TEST(link_left_at_the_temporary_name)
{
	write_victim();
	ck_assert_int_eq(symlink(victim_path, tmp_path), 0);
	TXF_Tick(&report);
	assert_metrics(prom_path, 123456);
	assert_victim_untouched();
	ck_assert(!exists(tmp_path));
	ck_assert_uint_eq(logged(), 0);
}
END_TEST

/* A link at the file's own name is replaced by the file, its target left
 * alone. */
START_TEST(link_at_the_file_name)
{
	struct stat st;

	write_victim();
	ck_assert_int_eq(symlink(victim_path, prom_path), 0);
	TXF_Tick(&report);
	ck_assert_int_eq(lstat(prom_path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	assert_metrics(prom_path, 123456);
	assert_victim_untouched();
}
END_TEST

/* A link planted at the temporary name after it was cleared and before the
 * file is created there: the creation fails (never follows it), said once;
 * the old file stays; the next write, due an interval later, goes through
 * and says so. */
START_TEST(link_planted_in_the_race)
{
	char *before, *text;

	TXF_Tick(&report);
	before = slurp(prom_path);
	write_victim();
	plant_at = tmp_path;
	plant_target = victim_path;
	state.samples_fed = 1;
	write_state(state_path);
	advance_ms(INTERVAL_MS);
	TXF_Tick(&report);
	assert_victim_untouched();
	text = slurp(prom_path);
	ck_assert_str_eq(text, before);
	free(text);
	ck_assert_uint_eq(errors_logged(), 1);
	ck_assert_uint_eq(said_state(prom_path, "unwritable"), 1);
	/* Still there at the next interval: not said again. */
	advance_ms(INTERVAL_MS);
	TXF_Tick(&report);
	assert_victim_untouched();
	ck_assert_uint_eq(logged(), 1);
	plant_at = NULL;
	advance_ms(INTERVAL_MS);
	TXF_Tick(&report);
	assert_metrics(prom_path, 1);
	assert_victim_untouched();
	ck_assert(!exists(tmp_path));
	ck_assert_uint_eq(logged(), 2);
	ck_assert_uint_eq(errors_logged(), 1);
	free(before);
}
END_TEST

/* A hard link to another file planted there: not written through either
 * (the file is created, never opened). */
START_TEST(hard_link_planted_in_the_race)
{
	write_victim();
	plant_at = tmp_path;
	plant_target = victim_path;
	plant_hard = true;
	TXF_Tick(&report);
	assert_victim_untouched();
	ck_assert(!exists(prom_path));
	ck_assert_uint_eq(errors_logged(), 1);
	plant_at = NULL;
	advance_ms(INTERVAL_MS);
	TXF_Tick(&report);
	assert_metrics(prom_path, 123456);
	assert_victim_untouched();
}
END_TEST

/* The directory missing, then not writable (another cause: said again),
 * then there: each said once, the recovery once; tried again only when
 * due. */
START_TEST(directory_missing_then_unwritable)
{
	char *sub = tp_path(dir, "textfile");
	char *file;

	file = tp_path(sub, "vmclock.prom");
	cfg.metrics_file = file;
	TXF_Tick(&report);
	ck_assert_uint_eq(errors_logged(), 1);
	ck_assert_uint_eq(said_state(file, "unwritable"), 1);
	advance_ms(INTERVAL_MS);
	TXF_Tick(&report);
	ck_assert_uint_eq(logged(), 1);

	ck_assert_int_eq(mkdir(sub, 0555), 0);
	tu_obey_permissions();
	advance_ms(INTERVAL_MS);
	TXF_Tick(&report);
	ck_assert_uint_eq(errors_logged(), 2);
	ck_assert(!exists(file));

	ck_assert_int_eq(chmod(sub, 0755), 0);
	advance_ms(INTERVAL_MS - 1);
	TXF_Tick(&report);
	ck_assert(!exists(file));
	advance_ms(1);
	TXF_Tick(&report);
	assert_metrics(file, 123456);
	ck_assert_uint_eq(logged(), 3);
	advance_ms(INTERVAL_MS);
	TXF_Tick(&report);
	ck_assert_uint_eq(logged(), 3);
	tp_rmdir(sub);
	free(sub);
	free(file);
}
END_TEST

/* A write that fails (the file size limit, as a full disk would): the old
 * file stays whole, no temporary file is left. */
START_TEST(write_fails)
{
	struct rlimit saved, small;
	char *before, *text;

	TXF_Tick(&report);
	before = slurp(prom_path);
	state.samples_fed = 1;
	write_state(state_path);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
	small = saved;
	small.rlim_cur = 100;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	advance_ms(INTERVAL_MS);
	TXF_Tick(&report);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
	text = slurp(prom_path);
	ck_assert_str_eq(text, before);
	ck_assert(!exists(tmp_path));
	ck_assert_uint_eq(errors_logged(), 1);
	free(text);
	free(before);
}
END_TEST

/* A directory where the file should be: the rename fails, the temporary
 * file is removed. */
START_TEST(rename_fails)
{
	ck_assert_int_eq(mkdir(prom_path, 0755), 0);
	TXF_Tick(&report);
	ck_assert_uint_eq(errors_logged(), 1);
	ck_assert(!exists(tmp_path));
}
END_TEST

/* A reload: written at the next tick, from the paths the new settings
 * name (the device and the state opened afresh). */
START_TEST(reconfigured)
{
	char *other_state = tp_path(dir, "state2"), *other_prom = tp_path(dir, "other.prom");
	CNF_Settings fresh;

	TXF_Tick(&report);
	state.samples_fed = 777;
	write_state(other_state);
	fresh = cfg;
	fresh.publish_file = other_state;
	fresh.metrics_file = other_prom;
	TXF_Reconfigure(&fresh);
	cfg = fresh;
	advance_ms(1);
	TXF_Tick(&report);
	assert_metrics(other_prom, 777);
	/* The same paths: written again at once all the same. */
	TXF_Reconfigure(&cfg);
	ck_assert_int_eq(unlink(other_prom), 0);
	TXF_Tick(&report);
	assert_metrics(other_prom, 777);
	free(other_state);
	free(other_prom);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("textfile");
	TCase *tc = tcase_create("textfile");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, first_tick_writes);
	tcase_add_test(tc, rewritten_when_due);
	tcase_add_test(tc, replaced_by_rename);
	tcase_add_test(tc, no_metrics_file);
	tcase_add_test(tc, link_left_at_the_temporary_name);
	tcase_add_test(tc, link_at_the_file_name);
	tcase_add_test(tc, link_planted_in_the_race);
	tcase_add_test(tc, hard_link_planted_in_the_race);
	tcase_add_test(tc, directory_missing_then_unwritable);
	tcase_add_test(tc, write_fails);
	tcase_add_test(tc, rename_fails);
	tcase_add_test(tc, reconfigured);
	suite_add_tcase(s, tc);
	return CR_Run(s, CK_FORK_GETENV);
}
