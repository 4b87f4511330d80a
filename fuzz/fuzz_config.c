/* SPDX-License-Identifier: BSD-2-Clause
 *
 * fuzz_config.c - libFuzzer target: the input is a vmclockd.conf.
 *
 * daemon/config.c is linked directly.  The input goes to a memfd that
 * CNF_Load reads as `vmclockd --config PATH --check-config`.  What is
 * checked, beyond ASan/UBSan and LeakSanitizer (every load is freed):
 *   - CNF_Load returns 0 or a negative errno value (never a positive
 *     outcome such as CNF_USAGE: the command line is fixed), prints
 *     nothing on success and exactly one "vmclockd: " line on failure;
 *   - on success every number lies in its documented range and every path
 *     is one word without white space or '#', or empty ("");
 *   - CNF_Reload of the same file gives the same result and settings;
 *   - the same file with every line commented out loads and gives the
 *     defaults: a comment never sets anything (vmclockd.conf(5)).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

static struct fuzz_file conf_file;

/* stderr captured for one call: config.c reports through it. */
struct capture {
	FILE *saved;
	char *text;
	size_t len;
};

static void capture_begin(struct capture *c)
{
	c->text = NULL;
	c->len = 0;
	c->saved = stderr;
	stderr = open_memstream(&c->text, &c->len);
	FUZZ_CHECK(stderr);
}

static void capture_end(struct capture *c)
{
	fclose(stderr);
	stderr = c->saved;
}

static int load(bool reload, CNF_Settings *s, struct capture *c)
{
	char *argv[] = { "vmclockd", "--config", conf_file.path, "--check-config", NULL };
	int r;

	capture_begin(c);
	r = reload ? CNF_Reload(s) : CNF_Load(4, argv, s);
	capture_end(c);
	return r;
}

static void check_report(int r, const struct capture *c)
{
	FUZZ_CHECK(r <= 0);
	if (r == 0) {
		FUZZ_CHECK(c->len == 0);
		return;
	}
	FUZZ_CHECK(c->len > 0 && strncmp(c->text, "vmclockd: ", 10) == 0);
	FUZZ_CHECK(c->text[c->len - 1] == '\n');
	FUZZ_CHECK(memchr(c->text, '\n', c->len) == c->text + c->len - 1);
}

/* One word, or empty: "" in the file, as on a command line, means none. */
static void check_word(const char *s)
{
	FUZZ_CHECK(s);
	FUZZ_CHECK(!strpbrk(s, " \t\r\n#"));
}

static void check_settings(const CNF_Settings *s)
{
	FUZZ_CHECK(s->check_config);
	FUZZ_CHECK(strcmp(s->config_file, conf_file.path) == 0);
	check_word(s->device);
	check_word(s->chrony_sock);
	check_word(s->chrony_cmd);
	check_word(s->state_dir);
	check_word(s->publish_file);
	FUZZ_CHECK(s->ntp_shm == -1 || (s->ntp_shm >= 0 && s->ntp_shm <= 255));
	FUZZ_CHECK(s->ntp_shm_mode <= 0777);
	FUZZ_CHECK(s->interval_ms >= 10 && s->interval_ms <= 60000);
	FUZZ_CHECK(s->burst_interval_ms >= 10 && s->burst_interval_ms <= 60000);
	FUZZ_CHECK(s->burst_ms <= 600000);
	FUZZ_CHECK(s->max_error_ns <= 1000000000000ull);
	FUZZ_CHECK(s->chrony_poll_ms >= 50 && s->chrony_poll_ms <= 60000);
}

static bool same_string(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_settings(const CNF_Settings *a, const CNF_Settings *b)
{
	return same_string(a->config_file, b->config_file) && a->foreground == b->foreground &&
	       a->debug == b->debug && a->check_config == b->check_config &&
	       same_string(a->device, b->device) && same_string(a->chrony_sock, b->chrony_sock) &&
	       same_string(a->chrony_cmd, b->chrony_cmd) && a->ntp_shm == b->ntp_shm &&
	       a->ntp_shm_mode == b->ntp_shm_mode && a->interval_ms == b->interval_ms &&
	       a->burst_interval_ms == b->burst_interval_ms && a->burst_ms == b->burst_ms &&
	       a->max_error_ns == b->max_error_ns && a->allow_freerunning == b->allow_freerunning &&
	       same_string(a->state_dir, b->state_dir) && same_string(a->publish_file, b->publish_file) &&
	       a->chrony_poll_ms == b->chrony_poll_ms;
}

/* config.c reads lines of up to 1022 characters, the newline not counted,
 * and rejects longer ones ("line too long") rather than parse their tails: a
 * commented-out directive past that column once got applied. */
#define MAX_LINE 1021 /* 1022 less the added '#' */

static size_t longest_line(const uint8_t *data, size_t len)
{
	size_t longest = 0, cur = 0;

	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			cur = 0;
			continue;
		}
		if (++cur > longest)
			longest = cur;
	}
	return longest;
}

/* Every line of the input behind a '#'. */
static uint8_t *commented_out(const uint8_t *data, size_t len, size_t *out_len)
{
	uint8_t *out = malloc(2 * len + 1), *o = out;
	bool line_start = true;

	FUZZ_CHECK(out);
	for (size_t i = 0; i < len; i++) {
		if (line_start)
			*o++ = '#';
		*o++ = data[i];
		line_start = data[i] == '\n';
	}
	*out_len = (size_t)(o - out);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	CNF_Settings first, again, defaults, commented;
	struct capture c;
	uint8_t *hidden;
	size_t hidden_len;
	int r, r2;

	fuzz_file_init(&conf_file, "fuzz_config");

	/* The input as it is, then again through CNF_Reload. */
	fuzz_file_set(&conf_file, data, len);
	r = load(false, &first, &c);
	check_report(r, &c);
	free(c.text);
	if (r == 0)
		check_settings(&first);
	r2 = load(true, &again, &c);
	free(c.text);
	FUZZ_CHECK(r2 == r);
	if (r == 0)
		FUZZ_CHECK(same_settings(&first, &again));
	CNF_Free(&first);
	CNF_Free(&again);

	/* Commented out: the defaults (an empty file), whatever the input; a
	 * line too long is refused as such. */
	fuzz_file_set(&conf_file, "", 0);
	r = load(false, &defaults, &c);
	free(c.text);
	FUZZ_CHECK(r == 0);
	hidden = commented_out(data, len, &hidden_len);
	fuzz_file_set(&conf_file, hidden, hidden_len);
	free(hidden);
	r = load(false, &commented, &c);
	check_report(r, &c);
	free(c.text);
	if (longest_line(data, len) > MAX_LINE) {
		FUZZ_CHECK(r == -EINVAL);
	} else {
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(same_settings(&defaults, &commented));
	}
	CNF_Free(&defaults);
	CNF_Free(&commented);
	return 0;
}
