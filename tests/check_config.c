/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_config.c - the configuration parser (daemon/config.c) through its
 * interface: CNF_Load, CNF_Reload, CNF_PrintUsage.
 *
 * The ranges of the numeric settings come from --help (CNF_PrintUsage
 * prints the module's one table; tests/test-config-ranges.sh holds the man
 * pages to it): every one is probed at both ends and one past each, from
 * the file and from the command line, and 0 is accepted exactly where the
 * range says "0 or".  Which field each directive sets is this test's own
 * list, which must name every option --help lists.  Then the file's syntax
 * (comments, white space, long lines, NUL bytes, the line an error names),
 * the command line over the file, CNF_Load's return codes, CNF_Reload, and
 * paths that are no configuration file: a directory, a FIFO, a socket, a
 * device, symbolic links, a file too large (by its size, or by its content
 * where its size says 0), a read error, an unreadable file.  An error is
 * one line on stderr naming where (file:line or --option); success prints
 * nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "../daemon/config.h"
#include "testpage.h"
#include "testutil.h"
#include "vmclockd-state.h"
#include "checkrun.h"

typedef enum { K_FLAG, K_BOOL, K_STRING, K_UINT, K_U64, K_INT, K_MODE } Kind;

#define OFF(field) offsetof(CNF_Settings, field)

/* Every option, the field it sets, and whether the file may set it. */
static const struct directive {
	const char *name;
	Kind kind;
	size_t offset;
	bool file_ok;
} directives[] = {
	{ "config", K_STRING, OFF(config_file), false },
	{ "foreground", K_FLAG, OFF(foreground), false },
	{ "debug", K_FLAG, OFF(debug), true },
	{ "check-config", K_FLAG, OFF(check_config), false },
	{ "device", K_STRING, OFF(device), true },
	{ "chrony-sock", K_STRING, OFF(chrony_sock), true },
	{ "chrony-cmd", K_STRING, OFF(chrony_cmd), true },
	{ "ntp-shm", K_INT, OFF(ntp_shm), true },
	{ "ntp-shm-mode", K_MODE, OFF(ntp_shm_mode), true },
	{ "interval-ms", K_UINT, OFF(interval_ms), true },
	{ "notified-interval-ms", K_UINT, OFF(notified_interval_ms), true },
	{ "burst-interval-ms", K_UINT, OFF(burst_interval_ms), true },
	{ "burst-ms", K_UINT, OFF(burst_ms), true },
	{ "max-error-ns", K_U64, OFF(max_error_ns), true },
	{ "allow-freerunning", K_BOOL, OFF(allow_freerunning), true },
	{ "state-dir", K_STRING, OFF(state_dir), true },
	{ "publish-file", K_STRING, OFF(publish_file), true },
	{ "state-file", K_STRING, OFF(publish_file), true },
	{ "clockbound-shm", K_STRING, OFF(clockbound_shm), true },
	{ "chrony-poll-ms", K_UINT, OFF(chrony_poll_ms), true },
	{ "metrics-file", K_STRING, OFF(metrics_file), true },
	{ "metrics-interval-ms", K_UINT, OFF(metrics_interval_ms), true },
	{ "handover-step", K_BOOL, OFF(handover_step), true },
	{ "cross-timestamps", K_BOOL, OFF(cross_timestamps), true },
};
#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

static bool numeric(const struct directive *d)
{
	return d->kind == K_UINT || d->kind == K_U64 || d->kind == K_INT || d->kind == K_MODE;
}

/* A numeric setting's range as --help gives it: "[0 or 10-60000]". */
struct range {
	bool found;
	bool zero_too;
	unsigned long long min, max;
};

static char *dir, *conf_path;
static TU_Capture err, out;
static char *argv_kept[16]; /* CNF_Reload reads them again */

static void setup(void)
{
	dir = tp_tmpdir();
	conf_path = tp_path(dir, "vmclockd.conf");
}

static void teardown(void)
{
	tp_rmdir(dir);
	free(dir);
	free(conf_path);
	tu_capture_free(&err);
	tu_capture_free(&out);
}

/* CNF_Load with the arguments after argv[0] (NULL-terminated), stderr
 * captured in err. */
static int load(CNF_Settings *s, ...)
{
	va_list ap;
	int argc = 0, r;
	char *arg;

	argv_kept[argc++] = "vmclockd";
	va_start(ap, s);
	while ((arg = va_arg(ap, char *)) != NULL) {
		ck_assert_int_lt(argc, 15);
		argv_kept[argc++] = arg;
	}
	va_end(ap);
	argv_kept[argc] = NULL;
	tu_capture_begin(&err, &stderr);
	r = CNF_Load(argc, argv_kept, s);
	tu_capture_end(&err);
	return r;
}

static int reload(CNF_Settings *s)
{
	int r;

	tu_capture_begin(&err, &stderr);
	r = CNF_Reload(s);
	tu_capture_end(&err);
	return r;
}

static void write_conf_bytes(const char *text, size_t len)
{
	free(tp_write_bytes(dir, "vmclockd.conf", text, len));
}

static void write_conf(const char *text)
{
	write_conf_bytes(text, strlen(text));
}

/* CNF_Load of a file holding text. */
static int load_text(CNF_Settings *s, const char *text)
{
	write_conf(text);
	return load(s, "--config", conf_path, NULL);
}

/* Loaded, and nothing said. */
static void assert_ok(int r)
{
	ck_assert_msg(r == 0, "refused (%d): %s", r, err.text);
	ck_assert_uint_eq(err.len, 0);
}

/* Refused with r == want (CNF_USAGE, or a negative errno value: REFUSED
 * for a bad setting), in one line that names where. */
#define REFUSED (-EINVAL)
static void assert_refused(int r, int want, const char *where)
{
	ck_assert_msg(r == want, "refused with %d, not %d: %s", r, want, err.text);
	ck_assert_msg(tu_lines(err.text) == 1, "not one line: %s", err.text);
	ck_assert_msg(strstr(err.text, where), "'%s' not named in: %s", where, err.text);
}

/* file:line, as an error in the test's file names it. */
static const char *at_line(unsigned line)
{
	static char where[512];

	snprintf(where, sizeof(where), "%s:%u: ", conf_path, line);
	return where;
}

static bool *flag_of(CNF_Settings *s, const struct directive *d)
{
	return (bool *)((char *)s + d->offset);
}

static char *string_of(CNF_Settings *s, const struct directive *d)
{
	return *(char **)((char *)s + d->offset);
}

static long long number_of(const CNF_Settings *s, const struct directive *d)
{
	const char *p = (const char *)s + d->offset;

	switch (d->kind) {
	case K_UINT:
	case K_MODE:
		return *(const unsigned *)(const void *)p;
	case K_INT:
		return *(const int *)(const void *)p;
	case K_U64:
		return (long long)*(const uint64_t *)(const void *)p;
	default:
		ck_abort_msg("%s is not a number", d->name);
		return 0;
	}
}

static const struct directive *directive(const char *name)
{
	for (size_t i = 0; i < N_DIRECTIVES; i++)
		if (strcmp(directives[i].name, name) == 0)
			return &directives[i];
	ck_abort_msg("no directive %s", name);
	return NULL;
}

/* --help's range for name (found false if it gives none). */
static struct range usage_range(const char *name)
{
	struct range r = { 0 };
	char want[64];
	const char *line, *end, *p;
	char *stop;

	tu_capture_begin(&out, &stdout);
	CNF_PrintUsage("vmclockd");
	tu_capture_end(&out);
	snprintf(want, sizeof(want), "\n  --%s ", name);
	line = strstr(out.text, want);
	ck_assert_msg(line, "--help does not list --%s", name);
	line += strlen(want);
	end = strchr(line, '\n');
	ck_assert_ptr_nonnull(end);
	if (end[-1] != ']')
		return r;
	for (p = end; p > line && p[-1] != '[';)
		p--;
	if (strncmp(p, "0 or ", 5) == 0) {
		r.zero_too = true;
		p += 5;
	}
	/* Base 0: the mode's range is octal ("0-0777"). */
	r.min = strtoull(p, &stop, 0);
	ck_assert_msg(*stop == '-', "--%s: range '%.*s'", name, (int)(end - p), p);
	r.max = strtoull(stop + 1, &stop, 0);
	ck_assert_msg(*stop == ']', "--%s: range '%.*s'", name, (int)(end - p), p);
	r.found = true;
	return r;
}

/* Every option --help lists is one this test knows, and the other way
 * round; every number, and only a number, has a range. */
START_TEST(usage_lists_every_directive)
{
	unsigned listed = 0;

	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		struct range r = usage_range(directives[i].name);

		ck_assert_msg(r.found == numeric(&directives[i]), "--%s: range %s",
			      directives[i].name, r.found ? "given" : "missing");
		if (r.found)
			ck_assert_msg(r.min <= r.max, "--%s: empty range", directives[i].name);
	}
	for (const char *p = out.text; (p = strstr(p, "\n  --")) != NULL; p++) {
		char name[64];

		ck_assert_int_eq(sscanf(p + 5, "%63[a-z-]", name), 1);
		if (strcmp(name, "help") && strcmp(name, "version"))
			directive(name);
		listed++;
	}
	ck_assert_uint_eq(listed, N_DIRECTIVES + 2);
	ck_assert_ptr_nonnull(strstr(out.text, "Usage: vmclockd "));
}
END_TEST

/* vmclockd.conf(5)'s defaults, with no file. */
START_TEST(defaults)
{
	CNF_Settings s;
	const char *suffix = "/lib/vmclockd";

	assert_ok(load(&s, "--config", "/dev/null", NULL));
	ck_assert_str_eq(s.config_file, "/dev/null");
	ck_assert(!s.foreground && !s.debug && !s.check_config);
	ck_assert_str_eq(s.device, "/dev/vmclock0");
	ck_assert_str_eq(s.chrony_sock, "/run/vmclockd.sock");
	ck_assert_str_eq(s.chrony_cmd, "/run/chrony/chronyd.sock");
	ck_assert_int_eq(s.ntp_shm, -1);
	ck_assert_uint_eq(s.ntp_shm_mode, 0600);
	ck_assert_uint_eq(s.interval_ms, 62);
	ck_assert_uint_eq(s.notified_interval_ms, 0);
	ck_assert_uint_eq(s.burst_interval_ms, 31);
	ck_assert_uint_eq(s.burst_ms, 4000);
	ck_assert_uint_eq(s.max_error_ns, 100000);
	ck_assert(!s.allow_freerunning);
	ck_assert_uint_ge(strlen(s.state_dir), strlen(suffix));
	ck_assert_str_eq(s.state_dir + strlen(s.state_dir) - strlen(suffix), suffix);
	ck_assert_str_eq(s.publish_file, VMCLOCKD_STATE_DEFAULT_PATH);
	ck_assert_uint_eq(s.chrony_poll_ms, 1000);
	ck_assert_str_eq(s.metrics_file, "");
	ck_assert_uint_eq(s.metrics_interval_ms, 5000);
	ck_assert_str_eq(s.clockbound_shm, "");
	ck_assert(s.handover_step);
	ck_assert(s.cross_timestamps);
	CNF_Free(&s);
	ck_assert_ptr_null(s.device);
	ck_assert_ptr_null(s.config_file);
}
END_TEST

/* d set to n (written octal for a mode), from the file or the command
 * line; returns CNF_Load's result, s freed. */
static int load_number(const struct directive *d, bool from_file, unsigned long long n,
		       long long *got)
{
	char value[32], text[128], option[128];
	CNF_Settings s;
	int r;

	snprintf(value, sizeof(value), d->kind == K_MODE ? "0%llo" : "%llu", n);
	if (from_file) {
		snprintf(text, sizeof(text), "%s %s\n", d->name, value);
		r = load_text(&s, text);
	} else {
		snprintf(option, sizeof(option), "--%s=%s", d->name, value);
		r = load(&s, "--config", "/dev/null", option, NULL);
	}
	*got = r == 0 ? number_of(&s, d) : -1;
	CNF_Free(&s);
	return r;
}

static void accepts(const struct directive *d, bool from_file, unsigned long long n)
{
	long long got;
	int r = load_number(d, from_file, n, &got);

	ck_assert_msg(r == 0 && err.len == 0, "%s %llu (%s) refused: %s", d->name, n,
		      from_file ? "file" : "option", err.text);
	ck_assert_msg(got == (long long)n, "%s %llu (%s) gave %lld", d->name, n,
		      from_file ? "file" : "option", got);
}

static void refuses(const struct directive *d, bool from_file, unsigned long long n)
{
	char option[64];
	long long got;
	int r = load_number(d, from_file, n, &got);

	snprintf(option, sizeof(option), "--%s ", d->name);
	ck_assert_msg(r < 0, "%s %llu (%s) accepted", d->name, n, from_file ? "file" : "option");
	assert_refused(r, REFUSED, from_file ? at_line(1) : option);
}

/* Each end of each range, one past it, and 0: from the file and from the
 * command line alike. */
START_TEST(numbers_at_both_ends)
{
	unsigned probed = 0;

	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		const struct directive *d = &directives[i];
		struct range r;

		if (!numeric(d))
			continue;
		r = usage_range(d->name);
		for (int from_file = 0; from_file < 2; from_file++) {
			accepts(d, from_file, r.min);
			accepts(d, from_file, r.max);
			accepts(d, from_file, r.min + (r.max - r.min) / 2);
			refuses(d, from_file, r.max + 1);
			if (r.min > 0 && !(r.min == 1 && r.zero_too))
				refuses(d, from_file, r.min - 1);
			if (r.zero_too || r.min == 0)
				accepts(d, from_file, 0);
			else
				refuses(d, from_file, 0);
			probed++;
		}
	}
	ck_assert_uint_eq(probed, 2 * 9);
}
END_TEST

/* The hole of a range with "0 or": 0 is in, 1 to min - 1 are not. */
START_TEST(range_with_a_hole)
{
	const struct directive *d = directive("notified-interval-ms");
	struct range r = usage_range(d->name);

	ck_assert(r.zero_too);
	ck_assert_uint_gt(r.min, 2);
	for (int from_file = 0; from_file < 2; from_file++) {
		accepts(d, from_file, 0);
		refuses(d, from_file, 1);
		refuses(d, from_file, r.min - 1);
		accepts(d, from_file, r.min);
	}
}
END_TEST

/* What is not a non-negative decimal number (octal for the mode) in range:
 * signs, blanks, other bases, trailing junk, overflow, nothing. */
START_TEST(numbers_malformed)
{
	static const char *const bad[] = { "-1", "+1", "", " 5", "5 ", "1x", "0x10", "1e3", "1.5",
					   "18446744073709551616", "99999999999999999999999" };

	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		const struct directive *d = &directives[i];
		char option[128], text[128], where[64];
		CNF_Settings s;

		if (!numeric(d))
			continue;
		snprintf(where, sizeof(where), "--%s ", d->name);
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			snprintf(option, sizeof(option), "--%s=%s", d->name, bad[j]);
			assert_refused(load(&s, "--config", "/dev/null", option, NULL), REFUSED, where);
			CNF_Free(&s);
		}
		/* A directive without its value. */
		snprintf(text, sizeof(text), "# numbers\n%s\n", d->name);
		assert_refused(load_text(&s, text), REFUSED, at_line(2));
		CNF_Free(&s);
	}
}
END_TEST

/* The SHM unit: "none" and "off" turn it off, from either place. */
START_TEST(ntp_shm_none)
{
	CNF_Settings s;

	assert_ok(load_text(&s, "ntp-shm 3\n"));
	ck_assert_int_eq(s.ntp_shm, 3);
	CNF_Free(&s);
	assert_ok(load(&s, "--config", conf_path, "--ntp-shm", "none", NULL));
	ck_assert_int_eq(s.ntp_shm, -1);
	CNF_Free(&s);
	assert_ok(load_text(&s, "ntp-shm 3\nntp-shm off\n"));
	ck_assert_int_eq(s.ntp_shm, -1);
	CNF_Free(&s);
	assert_refused(load_text(&s, "ntp-shm nothing\n"), REFUSED, at_line(1));
	CNF_Free(&s);
}
END_TEST

/* The mode is octal, with or without its leading 0. */
START_TEST(mode_is_octal)
{
	CNF_Settings s;

	assert_ok(load_text(&s, "ntp-shm-mode 0640\n"));
	ck_assert_uint_eq(s.ntp_shm_mode, 0640);
	CNF_Free(&s);
	assert_ok(load_text(&s, "ntp-shm-mode 644\n"));
	ck_assert_uint_eq(s.ntp_shm_mode, 0644);
	CNF_Free(&s);
	assert_refused(load_text(&s, "ntp-shm-mode 0680\n"), REFUSED, at_line(1));
	CNF_Free(&s);
	assert_refused(load(&s, "--config", "/dev/null", "--ntp-shm-mode=9", NULL), REFUSED,
		       "--ntp-shm-mode ");
	CNF_Free(&s);
}
END_TEST

/* yes/on/1 and no/off/0 for every yes-or-no setting, debug (a flag on the
 * command line) included; anything else, or nothing, is refused. */
START_TEST(booleans)
{
	static const char *const yes[] = { "yes", "on", "1" }, *const no[] = { "no", "off", "0" };
	static const char *const bad[] = { "maybe", "YES", "true", "2", "y" };

	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		const struct directive *d = &directives[i];
		char text[128], option[128];
		CNF_Settings s;

		if (d->kind != K_BOOL && !(d->kind == K_FLAG && d->file_ok))
			continue;
		for (size_t j = 0; j < 3; j++) {
			snprintf(text, sizeof(text), "%s %s\n", d->name, yes[j]);
			assert_ok(load_text(&s, text));
			ck_assert_msg(*flag_of(&s, d), "%s", text);
			CNF_Free(&s);
			/* no, after yes: the last line wins. */
			snprintf(text, sizeof(text), "%s yes\n%s %s\n", d->name, d->name, no[j]);
			assert_ok(load_text(&s, text));
			ck_assert_msg(!*flag_of(&s, d), "%s", text);
			CNF_Free(&s);
		}
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			snprintf(text, sizeof(text), "%s %s\n", d->name, bad[j]);
			assert_refused(load_text(&s, text), REFUSED, at_line(1));
			CNF_Free(&s);
		}
		snprintf(text, sizeof(text), "%s\n", d->name);
		if (d->kind == K_FLAG) {
			/* A flag alone in the file is "yes", as on the command line. */
			assert_ok(load_text(&s, text));
			ck_assert(*flag_of(&s, d));
			CNF_Free(&s);
			snprintf(option, sizeof(option), "--%s", d->name);
		} else {
			assert_refused(load_text(&s, text), REFUSED, at_line(1));
			CNF_Free(&s);
			snprintf(option, sizeof(option), "--%s=no", d->name);
		}
		assert_ok(load(&s, "--config", "/dev/null", option, NULL));
		ck_assert(*flag_of(&s, d) == (d->kind == K_FLAG));
		CNF_Free(&s);
	}
}
END_TEST

/* The command line's own flags. */
START_TEST(command_line_flags)
{
	CNF_Settings s;

	assert_ok(load(&s, "--foreground", "--check-config", "--config", "/dev/null", NULL));
	ck_assert(s.foreground && s.check_config && !s.debug);
	CNF_Free(&s);
}
END_TEST

/* Paths: one word, "" for none, a comment ends them; without a value, or
 * with a second word, they are refused. */
START_TEST(strings)
{
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		const struct directive *d = &directives[i];
		char text[256], option[128];
		CNF_Settings s;

		if (d->kind != K_STRING || !d->file_ok)
			continue;
		snprintf(text, sizeof(text), "%s /some/where\n", d->name);
		assert_ok(load_text(&s, text));
		ck_assert_str_eq(string_of(&s, d), "/some/where");
		CNF_Free(&s);
		snprintf(text, sizeof(text), "%s /a\n%s \"\"\n", d->name, d->name);
		assert_ok(load_text(&s, text));
		ck_assert_str_eq(string_of(&s, d), "");
		CNF_Free(&s);
		snprintf(text, sizeof(text), "\t%s\t/x/y#/z\n", d->name);
		assert_ok(load_text(&s, text));
		ck_assert_str_eq(string_of(&s, d), "/x/y");
		CNF_Free(&s);
		snprintf(text, sizeof(text), "%s\n", d->name);
		assert_refused(load_text(&s, text), REFUSED, at_line(1));
		CNF_Free(&s);
		snprintf(text, sizeof(text), "\n\n%s /a /b\n", d->name);
		assert_refused(load_text(&s, text), REFUSED, at_line(3));
		CNF_Free(&s);
		snprintf(option, sizeof(option), "--%s=", d->name);
		assert_ok(load(&s, "--config", "/dev/null", option, NULL));
		ck_assert_str_eq(string_of(&s, d), "");
		CNF_Free(&s);
	}
}
END_TEST

/* state-file is publish-file's former name: the same setting. */
START_TEST(state_file_is_publish_file)
{
	CNF_Settings s;

	assert_ok(load_text(&s, "state-file /a\n"));
	ck_assert_str_eq(s.publish_file, "/a");
	CNF_Free(&s);
	assert_ok(load_text(&s, "state-file /a\npublish-file /b\n"));
	ck_assert_str_eq(s.publish_file, "/b");
	CNF_Free(&s);
}
END_TEST

/* Comments, blank lines, tabs, CRLF, no final newline; the last of a
 * directive wins. */
START_TEST(file_syntax)
{
	CNF_Settings s;

	assert_ok(load_text(&s, "# vmclockd.conf\n"
				"\n"
				"   \t \n"
				"interval-ms 100   # sampling\n"
				"\tburst-ms\t5000\t\n"
				"#interval-ms 7\n"
				"max-error-ns 5000\r\n"
				"interval-ms 200\n"
				"device /dev/vmclock1"));
	ck_assert_uint_eq(s.interval_ms, 200);
	ck_assert_uint_eq(s.burst_ms, 5000);
	ck_assert_uint_eq(s.max_error_ns, 5000);
	ck_assert_str_eq(s.device, "/dev/vmclock1");
	CNF_Free(&s);
	/* An empty file, a file of comments: the defaults. */
	assert_ok(load_text(&s, ""));
	ck_assert_uint_eq(s.interval_ms, 62);
	CNF_Free(&s);
	assert_ok(load_text(&s, "# interval-ms 100\n#\n"));
	ck_assert_uint_eq(s.interval_ms, 62);
	CNF_Free(&s);
}
END_TEST

/* An unknown directive, and the command line's own options (which the file
 * may not set), are refused at their line. */
START_TEST(unknown_directives)
{
	static const char *const bad[] = { "interval 100", "Interval-ms 100", "help", "version",
					   "--interval-ms 100", "interval-ms=100" };
	CNF_Settings s;
	char text[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "interval-ms 100\n\n# ok\n%s\n", bad[i]);
		assert_refused(load_text(&s, text), REFUSED, at_line(4));
		CNF_Free(&s);
	}
	for (size_t i = 0; i < N_DIRECTIVES; i++) {
		if (directives[i].file_ok)
			continue;
		snprintf(text, sizeof(text), "%s %s\n", directives[i].name,
			 directives[i].kind == K_FLAG ? "yes" : "/etc/other.conf");
		assert_refused(load_text(&s, text), REFUSED, at_line(1));
		CNF_Free(&s);
	}
}
END_TEST

/* Lines up to 1022 characters (the newline not counted) are read, longer
 * ones refused at their line: a reader that split them could take the tail
 * of a comment for a directive. */
START_TEST(long_lines)
{
	char text[3000], *p;
	CNF_Settings s;

	/* A comment of 1022 characters, then a path of 1015. */
	memset(text, 0, sizeof(text));
	text[0] = '#';
	memset(text + 1, 'x', 1021);
	p = text + 1022;
	p += sprintf(p, "\ndevice /");
	memset(p, 'd', 1014);
	strcpy(p + 1014, "\n");
	assert_ok(load_text(&s, text));
	ck_assert_uint_eq(strlen(s.device), 1015);
	CNF_Free(&s);
	/* One more on the second line; its tail would be a directive. */
	strcpy(p + 1014, "x\n");
	assert_refused(load_text(&s, text), REFUSED, at_line(2));
	CNF_Free(&s);
	memset(text, 0, sizeof(text));
	text[0] = '#';
	memset(text + 1, ' ', 1010);
	strcpy(text + 1011, "interval-ms 100000000\n");
	assert_refused(load_text(&s, text), REFUSED, at_line(1));
	CNF_Free(&s);
}
END_TEST

/* A NUL byte in a line is refused, not taken for its end; in a comment it
 * is part of the comment. */
START_TEST(nul_bytes)
{
	static const char bad[] = "interval-ms 100\ninterval-ms 200\0junk\n";
	static const char in_comment[] = "interval-ms 100 #\0 x\n# \0\n";
	CNF_Settings s;

	write_conf_bytes(bad, sizeof(bad) - 1);
	assert_refused(load(&s, "--config", conf_path, NULL), REFUSED, at_line(2));
	CNF_Free(&s);
	write_conf_bytes(in_comment, sizeof(in_comment) - 1);
	assert_ok(load(&s, "--config", conf_path, NULL));
	ck_assert_uint_eq(s.interval_ms, 100);
	CNF_Free(&s);
}
END_TEST

/* The command line wins over the file, --config in either form; CNF_Load's
 * return codes: a negative errno value for a bad value, CNF_USAGE for a usage error, CNF_HELP and
 * CNF_VERSION before any file is read. */
START_TEST(command_line)
{
	char option[256];
	CNF_Settings s;

	write_conf("interval-ms 100\nburst-ms 7000\n");
	assert_ok(load(&s, "--interval-ms", "300", "--config", conf_path, NULL));
	ck_assert_uint_eq(s.interval_ms, 300);
	ck_assert_uint_eq(s.burst_ms, 7000);
	ck_assert_str_eq(s.config_file, conf_path);
	CNF_Free(&s);
	snprintf(option, sizeof(option), "--config=%s", conf_path);
	assert_ok(load(&s, option, NULL));
	ck_assert_uint_eq(s.interval_ms, 100);
	CNF_Free(&s);

	assert_refused(load(&s, "--config", conf_path, "--interval-ms", "9", NULL), REFUSED,
		       "--interval-ms ");
	CNF_Free(&s);
	assert_refused(load(&s, "--config", conf_path, "--no-such-option", NULL), CNF_USAGE,
		       "no-such-option");
	CNF_Free(&s);
	assert_refused(load(&s, "--config", conf_path, "stray", NULL), CNF_USAGE, "'stray'");
	CNF_Free(&s);
	assert_refused(load(&s, "--config", conf_path, "--interval-ms", NULL), CNF_USAGE, "interval-ms");
	CNF_Free(&s);

	/* --help and --version work whatever the file and the other options. */
	write_conf("no such directive\n");
	ck_assert_int_eq(load(&s, "--config", conf_path, "--interval-ms=1", "--help", NULL),
			 CNF_HELP);
	ck_assert_uint_eq(err.len, 0);
	CNF_Free(&s);
	ck_assert_int_eq(load(&s, "--version", "--config", "/nonexistent/vmclockd.conf", NULL),
			 CNF_VERSION);
	ck_assert_uint_eq(err.len, 0);
	CNF_Free(&s);
}
END_TEST

/* The metrics are read back from the published state: metrics-file without
 * publish-file is refused, wherever each was set. */
START_TEST(metrics_need_publish_file)
{
	CNF_Settings s;

	assert_ok(load_text(&s, "metrics-file /m.prom\n"));
	CNF_Free(&s);
	assert_refused(load_text(&s, "metrics-file /m.prom\npublish-file \"\"\n"), REFUSED,
		       "metrics-file");
	CNF_Free(&s);
	write_conf("metrics-file /m.prom\n");
	assert_refused(load(&s, "--config", conf_path, "--publish-file=", NULL), REFUSED, "metrics-file");
	CNF_Free(&s);
	assert_ok(load(&s, "--config", conf_path, "--publish-file=", "--metrics-file=", NULL));
	CNF_Free(&s);
}
END_TEST

/* CNF_Reload reads the file again and applies the same command line on
 * top; a broken file is refused as at start. */
START_TEST(reload_rereads)
{
	CNF_Settings s, fresh;

	write_conf("interval-ms 100\nburst-ms 7000\n");
	assert_ok(load(&s, "--config", conf_path, "--burst-ms", "5000", "--debug", NULL));
	ck_assert_uint_eq(s.interval_ms, 100);
	ck_assert_uint_eq(s.burst_ms, 5000);

	write_conf("interval-ms 200\nburst-ms 9000\ndevice /dev/vmclock1\n");
	assert_ok(reload(&fresh));
	ck_assert_uint_eq(fresh.interval_ms, 200);
	ck_assert_uint_eq(fresh.burst_ms, 5000);
	ck_assert(fresh.debug);
	ck_assert_str_eq(fresh.device, "/dev/vmclock1");
	ck_assert_str_eq(fresh.config_file, conf_path);
	CNF_Free(&fresh);

	write_conf("interval-ms 200\ninterval-ms 5\n");
	assert_refused(reload(&fresh), REFUSED, at_line(2));
	CNF_Free(&fresh);
	ck_assert_int_eq(unlink(conf_path), 0);
	assert_refused(reload(&fresh), -ENOENT, conf_path);
	ck_assert_ptr_null(strstr(err.text, at_line(1)));
	CNF_Free(&fresh);

	/* What is running is untouched by either. */
	ck_assert_uint_eq(s.interval_ms, 100);
	CNF_Free(&s);
}
END_TEST

/* Refused as a whole with -ERRNO_VALUE, in one line naming the path (not a
 * line of it: "path: ", not "path:N: "). */
static void assert_path_refused(const char *path, int errno_value)
{
	char where[512];
	CNF_Settings s;

	snprintf(where, sizeof(where), "%s: ", path);
	assert_refused(load(&s, "--config", path, NULL), -errno_value, where);
	CNF_Free(&s);
}

/* The default file may be absent; a file named on the command line may
 * not. */
START_TEST(absent_files)
{
	char *missing = tp_path(dir, "missing.conf");
	CNF_Settings s;

	assert_path_refused(missing, ENOENT);
	free(missing);
	if (access(CNF_DEFAULT_FILE, F_OK) < 0 && errno == ENOENT) {
		assert_ok(load(&s, NULL));
		ck_assert_str_eq(s.config_file, CNF_DEFAULT_FILE);
		ck_assert_uint_eq(s.interval_ms, 62);
		/* Named on the command line, the default may be absent too. */
		CNF_Free(&s);
		assert_ok(load(&s, "--config", CNF_DEFAULT_FILE, NULL));
		CNF_Free(&s);
	} else {
		fprintf(stderr, "check_config: %s exists here: its absence not tested\n",
			CNF_DEFAULT_FILE);
	}
}
END_TEST

/* Paths that are no configuration file: refused without being read (a
 * FIFO without a writer would block, /dev/zero never ends). */
START_TEST(not_regular_files)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *fifo = tp_path(dir, "fifo"), *sock = tp_path(dir, "sock");
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	ck_assert_int_eq(mkfifo(fifo, 0644), 0);
	assert_path_refused(fifo, EINVAL);
	assert_path_refused(dir, EISDIR);
	assert_path_refused("/dev/zero", EINVAL);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(sock), sizeof(sa.sun_path));
	strcpy(sa.sun_path, sock);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_path_refused(sock, ENXIO); /* open(2) of a socket */
	close(fd);
	free(fifo);
	free(sock);
}
END_TEST

/* /dev/null, the usual "no file", is an empty one. */
START_TEST(dev_null_is_empty)
{
	CNF_Settings s;

	assert_ok(load(&s, "--config", "/dev/null", "--interval-ms", "500", NULL));
	ck_assert_uint_eq(s.interval_ms, 500);
	CNF_Free(&s);
}
END_TEST

/* A symbolic link is followed (configuration tools link files into /etc):
 * to what it names, which must be a file like any other. */
START_TEST(symbolic_links)
{
	char *link = tp_path(dir, "link.conf"), *fifo = tp_path(dir, "fifo"),
	     *to_fifo = tp_path(dir, "fifo.conf"), *dangling = tp_path(dir, "dangling.conf"),
	     *loop = tp_path(dir, "loop.conf");
	CNF_Settings s;

	write_conf("interval-ms 250\n");
	ck_assert_int_eq(symlink(conf_path, link), 0);
	assert_ok(load(&s, "--config", link, NULL));
	ck_assert_uint_eq(s.interval_ms, 250);
	CNF_Free(&s);

	ck_assert_int_eq(mkfifo(fifo, 0644), 0);
	ck_assert_int_eq(symlink(fifo, to_fifo), 0);
	assert_path_refused(to_fifo, EINVAL);
	ck_assert_int_eq(symlink("/nonexistent/vmclockd.conf", dangling), 0);
	assert_path_refused(dangling, ENOENT);
	ck_assert_int_eq(symlink(loop, loop), 0);
	assert_path_refused(loop, ELOOP);
	free(link);
	free(fifo);
	free(to_fifo);
	free(dangling);
	free(loop);
}
END_TEST

#define MAX_FILE 65536

/* Up to 64 KiB is read (comments fill it here); a byte more is refused. */
START_TEST(too_large)
{
	char *text = malloc(MAX_FILE + 2);
	CNF_Settings s;

	ck_assert_ptr_nonnull(text);
	/* 1024 lines of 64 bytes, the last setting something. */
	for (size_t i = 0; i < MAX_FILE; i += 64) {
		memset(text + i, ' ', 63);
		text[i] = '#';
		text[i + 63] = '\n';
	}
	memcpy(text + MAX_FILE - 64, "interval-ms 123", 15);
	write_conf_bytes(text, MAX_FILE);
	assert_ok(load(&s, "--config", conf_path, NULL));
	ck_assert_uint_eq(s.interval_ms, 123);
	CNF_Free(&s);
	text[MAX_FILE] = '\n';
	write_conf_bytes(text, MAX_FILE + 1);
	assert_path_refused(conf_path, EFBIG);
	free(text);
}
END_TEST

/* A file whose size says 0 (as files in /proc do) is read up to the limit
 * and no further: /proc/self/maps, made large by mappings that cannot
 * merge.  (Under qemu-user it is a file of qemu's with its true size.) */
START_TEST(too_large_behind_a_zero_size)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t n = 2000, len = 0;
	char *area, buf[4096];
	struct stat st;
	ssize_t r;
	int fd;

	area = mmap(NULL, n * (size_t)page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(area, MAP_FAILED);
	for (size_t i = 0; i < n; i += 2)
		ck_assert_int_eq(mprotect(area + i * (size_t)page, (size_t)page,
					  PROT_READ | PROT_WRITE),
				 0);
	fd = open("/proc/self/maps", O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		len += (size_t)r;
	close(fd);
	ck_assert_uint_gt(len, MAX_FILE);
	assert_path_refused("/proc/self/maps", EFBIG);
	munmap(area, n * (size_t)page);
}
END_TEST

/* A read error is an error, never the end of the file: /proc/self/mem at
 * offset 0 (nothing mapped there) is a regular file whose read fails. */
START_TEST(read_error)
{
	assert_path_refused("/proc/self/mem", EIO);
}
END_TEST

START_TEST(unreadable)
{
	write_conf("interval-ms 100\n");
	ck_assert_int_eq(chmod(conf_path, 0), 0);
	tu_obey_permissions();
	assert_path_refused(conf_path, EACCES);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parser");
	TCase *files = tcase_create("files");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, usage_lists_every_directive);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, numbers_at_both_ends);
	tcase_add_test(tc, range_with_a_hole);
	tcase_add_test(tc, numbers_malformed);
	tcase_add_test(tc, ntp_shm_none);
	tcase_add_test(tc, mode_is_octal);
	tcase_add_test(tc, booleans);
	tcase_add_test(tc, command_line_flags);
	tcase_add_test(tc, strings);
	tcase_add_test(tc, state_file_is_publish_file);
	tcase_add_test(tc, file_syntax);
	tcase_add_test(tc, unknown_directives);
	tcase_add_test(tc, long_lines);
	tcase_add_test(tc, nul_bytes);
	tcase_add_test(tc, command_line);
	tcase_add_test(tc, metrics_need_publish_file);
	tcase_add_test(tc, reload_rereads);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(files, setup, teardown);
	tcase_add_test(files, absent_files);
	tcase_add_test(files, not_regular_files);
	tcase_add_test(files, dev_null_is_empty);
	tcase_add_test(files, symbolic_links);
	tcase_add_test(files, too_large);
	tcase_add_test(files, too_large_behind_a_zero_size);
	tcase_add_test(files, read_error);
	tcase_add_test(files, unreadable);
	suite_add_tcase(s, files);

	return CR_Run(s, CK_FORK_GETENV);
}
