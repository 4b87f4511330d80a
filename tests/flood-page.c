/* SPDX-License-Identifier: BSD-2-Clause
 *
 * flood-page.c - a page writer whose flags and generation counter flap, to
 * measure what a flood costs vmclockd (alerts, state-file writes, CPU).
 *
 *   flood-page PATH [--flags-ms N] [--generation-ms N] [--status-ms N] [--marker-ms N]
 *              [--duration S]
 *
 * Writes a live page carrying time (the CPU's counter, calibrated, UTC,
 * synchronized, VM_GEN_COUNTER_PRESENT) to PATH (temporary file + rename),
 * then, with the hypervisor's seq_count protocol, every --flags-ms toggles
 * DISRUPTION_IMMINENT and every --generation-ms adds one to
 * vm_generation_counter, and every --status-ms flips clock_status between
 * synchronized and unknown, and every --marker-ms adds one to the
 * disruption marker (a flapping marker: a migration every N ms, the counter
 * unchanged), for --duration seconds (default: until killed); the status is
 * left unknown at the end (a flood of withhold-reason changes that ends
 * withheld).  0 turns a kind of flapping off.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "testpage.h"

#define FLAG_IMMINENT TP_FLAG(2)
#define FLAG_GEN_PRESENT TP_FLAG(8)
#define STATUS_UNKNOWN 0
#define STATUS_SYNCHRONIZED 2

static void sleep_until(int64_t t_ns)
{
	int64_t d = t_ns - tp_now_ns();

	if (d > 0)
		nanosleep(&(struct timespec){ d / 1000000000, d % 1000000000 }, NULL);
}

static uint64_t load64(volatile uint8_t *b, size_t off)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[off + (size_t)i];
	return v;
}

static void bump_seq(volatile uint8_t *b)
{
	uint32_t seq = (uint32_t)b[TP_SEQ_COUNT] | (uint32_t)b[TP_SEQ_COUNT + 1] << 8 |
		       (uint32_t)b[TP_SEQ_COUNT + 2] << 16 | (uint32_t)b[TP_SEQ_COUNT + 3] << 24;

	seq++;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (int i = 0; i < 4; i++)
		b[TP_SEQ_COUNT + i] = (uint8_t)(seq >> (8 * i));
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

int main(int argc, char **argv)
{
	long flags_ms = 0, gen_ms = 0, status_ms = 0, marker_ms = 0, duration_s = 0;
	struct testpage p;
	uint8_t counter = tp_native_counter();
	unsigned shift = 0;
	uint64_t period;
	char *dir, *slash, tmp[4096];
	int64_t start, next_flags, next_gen, next_status, next_marker, end;
	volatile uint8_t *map;
	int fd;

	if (argc < 2 || argc % 2) {
		fprintf(stderr, "usage: flood-page PATH [--flags-ms N] [--generation-ms N] "
			"[--status-ms N] [--marker-ms N] [--duration S]\n");
		return 2;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		long v = strtol(argv[i + 1], NULL, 10);

		if (!strcmp(argv[i], "--flags-ms"))
			flags_ms = v;
		else if (!strcmp(argv[i], "--generation-ms"))
			gen_ms = v;
		else if (!strcmp(argv[i], "--status-ms"))
			status_ms = v;
		else if (!strcmp(argv[i], "--marker-ms"))
			marker_ms = v;
		else if (!strcmp(argv[i], "--duration"))
			duration_s = v;
		else
			return 2;
	}
	if (counter == 0xff) {
		fprintf(stderr, "flood-page: no readable counter on this CPU\n");
		return 1;
	}
	/* The largest shift that keeps the period below 2^63. */
	period = tp_calibrate_period(counter, 0, 20);
	while (shift < 63 && period < (1ull << 62) >> shift)
		shift++;
	period = tp_calibrate_period(counter, shift, 100);
	tp_init_live(&p, counter, period, (uint8_t)shift, 0);
	tp_put64(&p, TP_TIME_MAXERR, 1000);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | FLAG_GEN_PRESENT);
	tp_put64(&p, TP_MARKER, 1);
	tp_put64(&p, TP_GENERATION, 1);
	p.len = 4096;

	/* Temporary file beside PATH, then rename: never a short page. */
	snprintf(tmp, sizeof(tmp), "%s", argv[1]);
	slash = strrchr(tmp, '/');
	dir = slash ? (*slash = '\0', tmp) : ".";
	free(tp_write_file(dir, ".flood-page.tmp", &p));
	{
		char from[4200];

		snprintf(from, sizeof(from), "%s/.flood-page.tmp", dir);
		if (rename(from, argv[1]) < 0) {
			perror("flood-page: rename");
			return 1;
		}
	}
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	map = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		perror("flood-page: map");
		return 1;
	}
	start = tp_now_ns();
	end = duration_s ? start + duration_s * 1000000000ll : INT64_MAX;
	next_flags = flags_ms ? start + flags_ms * 1000000ll : INT64_MAX;
	next_gen = gen_ms ? start + gen_ms * 1000000ll : INT64_MAX;
	next_status = status_ms ? start + status_ms * 1000000ll : INT64_MAX;
	next_marker = marker_ms ? start + marker_ms * 1000000ll : INT64_MAX;
	while (tp_now_ns() < end) {
		int64_t next = next_flags < next_gen ? next_flags : next_gen;

		if (next_status < next)
			next = next_status;
		if (next_marker < next)
			next = next_marker;

		if (next == INT64_MAX) {
			sleep_until(end);
			break;
		}
		sleep_until(next < end ? next : end);
		bump_seq(map);
		if (tp_now_ns() >= next_flags) {
			tp_store64(map, TP_FLAGS, load64(map, TP_FLAGS) ^ FLAG_IMMINENT);
			next_flags += flags_ms * 1000000ll;
		}
		if (tp_now_ns() >= next_gen) {
			tp_store64(map, TP_GENERATION, load64(map, TP_GENERATION) + 1);
			next_gen += gen_ms * 1000000ll;
		}
		if (tp_now_ns() >= next_status) {
			map[TP_STATUS] = map[TP_STATUS] == STATUS_SYNCHRONIZED ? STATUS_UNKNOWN
									: STATUS_SYNCHRONIZED;
			next_status += status_ms * 1000000ll;
		}
		if (tp_now_ns() >= next_marker) {
			tp_store64(map, TP_MARKER, load64(map, TP_MARKER) + 1);
			next_marker += marker_ms * 1000000ll;
		}
		bump_seq(map);
	}
	if (status_ms) {
		bump_seq(map);
		map[TP_STATUS] = STATUS_UNKNOWN;
		bump_seq(map);
	}
	return 0;
}
