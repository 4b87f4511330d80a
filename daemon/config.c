/* SPDX-License-Identifier: BSD-2-Clause
 *
 * config.c - one table of settings serves the file parser, getopt_long and
 * --help, whose ranges tests/test-config-ranges.sh compares with the man
 * pages'.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "vmclockd-state.h"

typedef enum { T_FLAG, T_BOOL, T_STRING, T_UINT, T_U64, T_INT, T_MODE } SettingType;

typedef struct {
	const char *name;
	SettingType type;
	size_t offset;
	unsigned long long min, max; /* for numbers */
	bool zero_too;               /* 0 accepted too, outside min to max */
	bool file_ok;                /* may appear in the configuration file */
	const char *help;
} Setting;

#define OFF(field) offsetof(CNF_Settings, field)

static const Setting settings[] = {
	{ "config", T_STRING, OFF(config_file), 0, 0, false, false, "FILE  configuration file" },
	{ "foreground", T_FLAG, OFF(foreground), 0, 0, false, false, "      accepted for compatibility: vmclockd never forks" },
	{ "debug", T_FLAG, OFF(debug), 0, 0, false, true, "      log debug messages" },
	{ "check-config", T_FLAG, OFF(check_config), 0, 0, false, false, "      check the configuration and exit" },
	{ "device", T_STRING, OFF(device), 0, 0, false, true, "PATH  vmclock device (default /dev/vmclock0)" },
	{ "chrony-sock", T_STRING, OFF(chrony_sock), 0, 0, false, true, "PATH  chronyd SOCK refclock socket (\"\" for none)" },
	{ "chrony-cmd", T_STRING, OFF(chrony_cmd), 0, 0, false, true, "PATH  chronyd command socket (\"\" for none)" },
	{ "ntp-shm", T_INT, OFF(ntp_shm), 0, 255, false, true, "UNIT  feed ntpd's SHM refclock unit (none: off)" },
	{ "ntp-shm-mode", T_MODE, OFF(ntp_shm_mode), 0, 0777, false, true, "MODE  SHM segment permissions (default 0600)" },
	{ "interval-ms", T_UINT, OFF(interval_ms), 10, 60000, false, true, "N     sampling interval" },
	{ "notified-interval-ms", T_UINT, OFF(notified_interval_ms), 10, 60000, true, true, "N     sampling interval while the device notifies (0: interval-ms)" },
	{ "burst-interval-ms", T_UINT, OFF(burst_interval_ms), 10, 60000, false, true, "N     sampling interval after a disruption" },
	{ "burst-ms", T_UINT, OFF(burst_ms), 0, 600000, false, true, "N     length of the burst after a disruption" },
	{ "max-error-ns", T_U64, OFF(max_error_ns), 0, 1000000000000ull, false, true, "N     withhold samples with a larger bound (0: off)" },
	{ "allow-freerunning", T_BOOL, OFF(allow_freerunning), 0, 0, false, true, "yes|no feed samples while the host is freerunning" },
	{ "state-dir", T_STRING, OFF(state_dir), 0, 0, false, true, "DIR   vmclockd's own memory across restarts (the handled marker)" },
	{ "publish-file", T_STRING, OFF(publish_file), 0, 0, false, true, "PATH  rewritten every tick for applications (\"\" for none)" },
	{ "state-file", T_STRING, OFF(publish_file), 0, 0, false, true, "PATH  the former name of publish-file" },
	{ "clockbound-shm", T_STRING, OFF(clockbound_shm), 0, 0, false, true, "PATH  also write ClockBound's segment there (e.g. /var/run/clockbound/shm0; default none)" },
	{ "chrony-poll-ms", T_UINT, OFF(chrony_poll_ms), 50, 60000, false, true, "N     how often chronyd's tracking is read" },
	{ "metrics-file", T_STRING, OFF(metrics_file), 0, 0, false, true, "PATH  Prometheus text for node_exporter's textfile collector (\"\" for none)" },
	{ "metrics-interval-ms", T_UINT, OFF(metrics_interval_ms), 1000, 600000, false, true, "N     how often metrics-file is rewritten" },
	{ "handover-step", T_BOOL, OFF(handover_step), 0, 0, false, true, "yes|no after a disruption chronyd steps its clock (no: it slews)" },
	{ "cross-timestamps", T_BOOL, OFF(cross_timestamps), 0, 0, false, true, "yes|no offsets from the driver's PTP clock where it has one (no: brackets)" },
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Kept from CNF_Load for CNF_Reload. */
static int saved_argc;
static char **saved_argv;

static void set_defaults(CNF_Settings *s)
{
	memset(s, 0, sizeof(*s));
	s->config_file = strdup(CNF_DEFAULT_FILE);
	s->device = strdup("/dev/vmclock0");
	s->chrony_sock = strdup("/run/vmclockd.sock");
	s->chrony_cmd = strdup("/run/chrony/chronyd.sock");
	s->ntp_shm = -1;
	s->ntp_shm_mode = 0600;
	s->interval_ms = 62;
	s->notified_interval_ms = 0;
	s->burst_interval_ms = 31;
	s->burst_ms = 4000;
	s->max_error_ns = 100000;
	s->state_dir = strdup(LOCALSTATEDIR "/lib/vmclockd");
	s->publish_file = strdup(VMCLOCKD_STATE_DEFAULT_PATH);
	s->chrony_poll_ms = 1000;
	s->metrics_file = strdup("");
	s->metrics_interval_ms = 5000;
	s->clockbound_shm = strdup("");
	s->handover_step = true;
	s->cross_timestamps = true;
}

void CNF_Free(CNF_Settings *s)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (settings[i].type == T_STRING) {
			char **p = (char **)((char *)s + settings[i].offset);
			free(*p);
			*p = NULL;
		}
}

static const Setting *find(const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

/* Stores one value; returns NULL or a description of what is wrong. */
static const char *apply(CNF_Settings *s, const Setting *set, const char *value)
{
	void *field = (char *)s + set->offset;
	unsigned long long n;
	char *end;

	switch (set->type) {
	case T_FLAG:
		*(bool *)field = true;
		return NULL;
	case T_BOOL:
		if (!value)
			return "needs yes or no";
		if (!strcmp(value, "yes") || !strcmp(value, "on") || !strcmp(value, "1"))
			*(bool *)field = true;
		else if (!strcmp(value, "no") || !strcmp(value, "off") || !strcmp(value, "0"))
			*(bool *)field = false;
		else
			return "needs yes or no";
		return NULL;
	case T_STRING:
		if (!value)
			return "needs a value";
		/* "" in the file, as on a command line, means none. */
		if (strcmp(value, "\"\"") == 0)
			value = "";
		free(*(char **)field);
		*(char **)field = strdup(value);
		return NULL;
	default:
		break;
	}

	if (set->type == T_INT && value && (!strcmp(value, "none") || !strcmp(value, "off"))) {
		*(int *)field = -1;
		return NULL;
	}
	if (!value || !*value || *value == '-' || *value == '+' || *value == ' ')
		return "needs a non-negative number";
	errno = 0;
	n = strtoull(value, &end, set->type == T_MODE ? 8 : 10);
	if (errno || *end)
		return set->type == T_MODE ? "needs an octal mode" : "needs a number";
	if ((n < set->min || n > set->max) && !(n == 0 && set->zero_too))
		return "is out of range";
	switch (set->type) {
	case T_UINT:
	case T_MODE:
		*(unsigned *)field = (unsigned)n;
		break;
	case T_INT:
		*(int *)field = (int)n;
		break;
	default:
		*(uint64_t *)field = n;
		break;
	}
	return NULL;
}

/* Lines longer than this (newline not counted) are refused: no real
 * configuration has one, and a reader that split it could take the tail of
 * a comment for a directive. */
#define MAX_LINE 1022

/* A configuration file larger than this is refused (the example is 3 KiB):
 * a file that never ends (/dev/zero, a FIFO, a growing log) is an error
 * said at once, not a read that takes the machine's memory. */
#define MAX_FILE_SIZE (64 * 1024)

static const char *kind_of(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

static void too_large(const char *path)
{
	LOG(LOGS_ERR, "%s: larger than %d KiB, not a configuration file", path,
		MAX_FILE_SIZE / 1024);
}

/*
 * The whole file, NUL-terminated, in *text (*len bytes before the NUL), or
 * NULL in *text if there is nothing to read (the file is absent and may be,
 * or is /dev/null).  Returns 0, or a negative errno value after one line.
 *
 * The path is followed if it is a symbolic link: it is the administrator's
 * choice (the command line, or the default in a directory only root can
 * write), and configuration tools link files into /etc.  What a path given
 * by mistake can still do is handled on the descriptor: O_NONBLOCK so that
 * opening a FIFO does not wait for a writer, fstat() so that only a regular
 * file is read, a size limit that does not trust st_size (files in /proc say
 * 0), and a read error is an error, never taken for the end of the file.
 */
static int read_text(const char *path, bool must_exist, char **text, size_t *len)
{
	struct stat st;
	size_t n = 0;
	char *buf;
	int fd, err;

	*text = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		err = errno;
		if (err == ENOENT && !must_exist)
			return 0;
		LOG(LOGS_ERR, "%s: %s", path, strerror(err));
		return -err;
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		LOG(LOGS_ERR, "%s: %s", path, strerror(err));
		close(fd);
		return -err;
	}
	/* "--config /dev/null", the usual way to say "no file", is empty. */
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {
		close(fd);
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		LOG(LOGS_ERR, "%s: %s, not a configuration file", path,
			kind_of(st.st_mode));
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	if (st.st_size > MAX_FILE_SIZE) {
		too_large(path);
		close(fd);
		return -EFBIG;
	}
	buf = malloc(MAX_FILE_SIZE + 1);
	if (!buf) {
		LOG(LOGS_ERR, "%s: %s", path, strerror(ENOMEM));
		close(fd);
		return -ENOMEM;
	}
	/* One byte past the limit is read to tell "at the limit" from "over". */
	while (n <= MAX_FILE_SIZE) {
		ssize_t r = read(fd, buf + n, MAX_FILE_SIZE + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			LOG(LOGS_ERR, "%s: read error: %s", path, strerror(-err));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > MAX_FILE_SIZE) {
		too_large(path);
		err = -EFBIG;
		goto fail;
	}
	close(fd);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	close(fd);
	return err;
}

/* The directives of the file; 0, or a negative errno value after one line
 * (-EINVAL: a directive is wrong). */
static int read_file(CNF_Settings *s, const char *path, bool must_exist)
{
	char line[MAX_LINE + 1];
	char *text, *p, *end;
	unsigned lineno = 0;
	size_t text_len;
	int r;

	if ((r = read_text(path, must_exist, &text, &text_len)) < 0 || !text)
		return r;
	for (p = text, end = text + text_len; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		char *name, *value, *save = NULL;
		const Setting *set;
		const char *why;

		lineno++;
		if (len > MAX_LINE) {
			LOG(LOGS_ERR, "%s:%u: line too long", path, lineno);
			goto fail;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (nl != NULL);
		/* A NUL ends the line where C strings end it: said, not guessed
		 * (after a '#' it is part of the comment). */
		if (strlen(line) != len && !strchr(line, '#')) {
			LOG(LOGS_ERR, "%s:%u: NUL byte in line", path, lineno);
			goto fail;
		}
		line[strcspn(line, "#")] = '\0';
		name = strtok_r(line, " \t\r\n", &save);
		if (!name)
			continue;
		value = strtok_r(NULL, " \t\r\n", &save);
		set = find(name);
		if (!set || !set->file_ok) {
			LOG(LOGS_ERR, "%s:%u: unknown directive '%s'", path, lineno, name);
			goto fail;
		}
		if (set->type == T_FLAG && !value)
			value = "yes";
		if (set->type == T_FLAG)
			why = apply(s, &(Setting){ .type = T_BOOL, .offset = set->offset }, value);
		else
			why = apply(s, set, value);
		if (!why && strtok_r(NULL, " \t\r\n", &save))
			why = "has trailing words";
		if (why) {
			LOG(LOGS_ERR, "%s:%u: %s %s", path, lineno, name, why);
			goto fail;
		}
	}
	free(text);
	return 0;
fail:
	free(text);
	return -EINVAL;
}

/* Applies the command line; with only_config, just finds --config.  0,
 * CNF_HELP, CNF_VERSION, CNF_USAGE, or -EINVAL after one line. */
static int parse_args(CNF_Settings *s, int argc, char **argv, bool only_config)
{
	struct option longopts[N_SETTINGS + 3];
	int c, idx;

	for (size_t i = 0; i < N_SETTINGS; i++)
		longopts[i] = (struct option){ settings[i].name,
			settings[i].type == T_FLAG ? no_argument : required_argument, NULL, 0 };
	longopts[N_SETTINGS] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[N_SETTINGS + 1] = (struct option){ "version", no_argument, NULL, 'V' };
	longopts[N_SETTINGS + 2] = (struct option){ NULL, 0, NULL, 0 };

	optind = 0;
	opterr = !only_config;
	while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		const Setting *set;
		const char *why;

		/* Before any file is read: they work whatever the configuration. */
		if (c == 'h')
			return CNF_HELP;
		if (c == 'V')
			return CNF_VERSION;
		if (c == '?')
			return only_config ? 0 : CNF_USAGE;
		set = &settings[idx];
		if (only_config != (set->offset == OFF(config_file)))
			continue;
		why = apply(s, set, optarg);
		if (why) {
			LOG(LOGS_ERR, "--%s %s", set->name, why);
			return -EINVAL;
		}
	}
	if (!only_config && optind < argc) {
		LOG(LOGS_ERR, "unexpected argument '%s'", argv[optind]);
		return CNF_USAGE;
	}
	return 0;
}

static int load(CNF_Settings *out)
{
	bool explicit_file;
	int r;

	set_defaults(out);
	if ((r = parse_args(out, saved_argc, saved_argv, true)) != 0)
		return r;
	explicit_file = strcmp(out->config_file, CNF_DEFAULT_FILE) != 0;
	if ((r = read_file(out, out->config_file, explicit_file)) < 0)
		return r;
	if ((r = parse_args(out, saved_argc, saved_argv, false)) != 0)
		return r;
	/* The metrics are read back from the published state, as applications
	 * read it: without it they would say vmclockd is down. */
	if (*out->metrics_file && !*out->publish_file) {
		LOG(LOGS_ERR, "metrics-file needs publish-file");
		return -EINVAL;
	}
	return 0;
}

int CNF_Load(int argc, char **argv, CNF_Settings *out)
{
	saved_argc = argc;
	saved_argv = argv;
	return load(out);
}

int CNF_Reload(CNF_Settings *out)
{
	return load(out);
}

/* "0 or 10-60000", from the table: what --help says and the man pages must
 * say too (tests/test-config-ranges.sh). */
static void print_range(const Setting *set)
{
	if (set->type == T_FLAG || set->type == T_BOOL || set->type == T_STRING)
		return;
	printf(" [%s", set->zero_too ? "0 or " : "");
	if (set->type == T_MODE)
		printf("%#llo-%#llo]", set->min, set->max);
	else
		printf("%llu-%llu]", set->min, set->max);
}

void CNF_PrintUsage(const char *progname)
{
	printf("Usage: %s [OPTION]...\n", progname);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		printf("  --%-18s %s", settings[i].name, settings[i].help);
		print_range(&settings[i]);
		printf("\n");
	}
	printf("  --%-18s %s\n  --%-18s %s\n", "help", "print this summary and exit",
	       "version", "print the version and exit");
}
