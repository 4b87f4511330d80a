/* SPDX-License-Identifier: BSD-2-Clause
 *
 * testpage.c - build vmclock pages byte by byte and write them to files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmclock.h"
#include "testpage.h"

static void die(const char *what)
{
	fprintf(stderr, "testpage: %s: %s\n", what, strerror(errno));
	abort();
}

void tp_put8(struct testpage *p, size_t off, uint8_t v)
{
	p->b[off] = v;
}

void tp_put16(struct testpage *p, size_t off, uint16_t v)
{
	for (unsigned i = 0; i < 2; i++)
		p->b[off + i] = (uint8_t)(v >> (8 * i));
}

void tp_put32(struct testpage *p, size_t off, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p->b[off + i] = (uint8_t)(v >> (8 * i));
}

void tp_put64(struct testpage *p, size_t off, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p->b[off + i] = (uint8_t)(v >> (8 * i));
}

uint8_t tp_get8(const struct testpage *p, size_t off)
{
	return p->b[off];
}

static uint64_t get_le(const uint8_t *b, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

uint16_t tp_get16(const struct testpage *p, size_t off)
{
	return (uint16_t)get_le(p->b + off, 2);
}

uint32_t tp_get32(const struct testpage *p, size_t off)
{
	return (uint32_t)get_le(p->b + off, 4);
}

uint64_t tp_get64(const struct testpage *p, size_t off)
{
	return get_le(p->b + off, 8);
}

void tp_store64(volatile uint8_t *base, size_t off, uint64_t v)
{
	uint64_t le = 0;

	/* Assemble the little-endian image, then store it as one aligned word
	 * so that a concurrent reader sees either the old or the new value. */
	for (unsigned i = 0; i < 8; i++)
		((uint8_t *)&le)[i] = (uint8_t)(v >> (8 * i));
	__atomic_store_n((uint64_t *)(uintptr_t)(base + off), le, __ATOMIC_RELAXED);
}

void tp_init(struct testpage *p)
{
	memset(p, 0, sizeof(*p));
	tp_put32(p, TP_MAGIC, TP_MAGIC_VALUE);
	tp_put32(p, TP_SIZE, TP_PAGE_BYTES);
	tp_put16(p, TP_VERSION, 1);
	p->len = TP_PAGE_BYTES;
}

void tp_init_time(struct testpage *p, uint8_t counter_id, uint64_t counter_value,
		  uint64_t period_frac, uint8_t shift, uint64_t time_sec, uint64_t time_frac)
{
	tp_init(p);
	tp_put8(p, TP_COUNTER_ID, counter_id);
	tp_put8(p, TP_TIME_TYPE, 0);  /* UTC */
	tp_put8(p, TP_STATUS, 2);     /* synchronized */
	tp_put64(p, TP_FLAGS, TP_FLAG(3) | TP_FLAG(4) | TP_FLAG(5) | TP_FLAG(6));
	tp_put8(p, TP_SHIFT, shift);
	tp_put64(p, TP_COUNTER, counter_value);
	tp_put64(p, TP_PERIOD, period_frac);
	tp_put64(p, TP_TIME_SEC, time_sec);
	tp_put64(p, TP_TIME_FRAC, time_frac);
}

void tp_to_abi(const struct testpage *p, struct vmclock_abi *out)
{
	memcpy(out, p->b, sizeof(*out));
}

char *tp_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&dir, "%s/vmclock-test.XXXXXX", base) < 0)
		die("asprintf");
	if (!mkdtemp(dir))
		die("mkdtemp");
	return dir;
}

char *tp_path(const char *dir, const char *name)
{
	char *path;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		die("asprintf");
	return path;
}

char *tp_write_bytes(const char *dir, const char *name, const void *bytes, size_t len)
{
	char *path = tp_path(dir, name);
	const uint8_t *b = bytes;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die(path);
	while (len > 0) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write");
		b += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0)
		die("close");
	return path;
}

char *tp_write_file(const char *dir, const char *name, const struct testpage *p)
{
	return tp_write_bytes(dir, name, p->b, p->len);
}

void tp_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char *path;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		path = tp_path(dir, e->d_name);
		if (unlink(path) < 0)
			rmdir(path);
		free(path);
	}
	closedir(d);
	rmdir(dir);
}

uint8_t tp_native_counter(void)
{
	return vmclock_native_counter();
}

int64_t tp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t raw_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A (counter, clock, counter) reading; the counter at the clock's instant is
 * taken as the middle.  Keeps the narrowest of a few tries. */
static void sample(uint8_t id, clockid_t clk, uint64_t *counter, struct timespec *ts)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 8; i++) {
		uint64_t a, b;
		struct timespec t;

		vmclock_read_counter(id, &a);
		clock_gettime(clk, &t);
		vmclock_read_counter(id, &b);
		if (b - a < best) {
			best = b - a;
			*counter = a + (b - a) / 2;
			*ts = t;
		}
	}
}

uint64_t tp_calibrate_period(uint8_t counter_id, unsigned shift, unsigned ms)
{
	struct timespec t0, t1;
	uint64_t c0, c1;
	int64_t start, ns;
	unsigned __int128 num;

	sample(counter_id, CLOCK_MONOTONIC_RAW, &c0, &t0);
	start = raw_ns();
	while (raw_ns() - start < (int64_t)ms * 1000000)
		;
	sample(counter_id, CLOCK_MONOTONIC_RAW, &c1, &t1);
	ns = (t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
	/* seconds per tick * 2^(64+shift) = ns * 2^(64+shift) / (1e9 * ticks);
	 * ns < 2^31 and shift <= 32 keep the numerator within 127 bits. */
	if (shift > 32 || ns <= 0 || ns >= ((int64_t)1 << 31) || c1 <= c0)
		abort();
	num = (unsigned __int128)(uint64_t)ns << (64 + shift);
	num = num / (c1 - c0) / 1000000000u;
	if (num >> 64)
		abort();
	return (uint64_t)num;
}

void tp_init_live(struct testpage *p, uint8_t counter_id, uint64_t period_frac, uint8_t shift,
		  int64_t offset_ns)
{
	struct timespec now;
	uint64_t anchor;
	int64_t sec, nsec;

	sample(counter_id, CLOCK_REALTIME, &anchor, &now);
	sec = now.tv_sec + offset_ns / 1000000000;
	nsec = now.tv_nsec + offset_ns % 1000000000;
	if (nsec < 0) {
		nsec += 1000000000;
		sec--;
	} else if (nsec >= 1000000000) {
		nsec -= 1000000000;
		sec++;
	}
	/* Round the fraction up so that truncation back to ns is exact. */
	tp_init_time(p, counter_id, anchor, period_frac, shift, (uint64_t)sec,
		     (uint64_t)((((unsigned __int128)nsec << 64) + 999999999u) / 1000000000u));
}

uint64_t tp_rand64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t tp_seed(void)
{
	static uint64_t seed;
	static int have;
	const char *env;

	if (have)
		return seed;
	env = getenv("VMCLOCK_TEST_SEED");
	if (env && *env) {
		seed = strtoull(env, NULL, 0);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		seed ^= (uint64_t)getpid() << 32;
	}
	have = 1;
	fprintf(stderr, "random tests: VMCLOCK_TEST_SEED=%" PRIu64 "\n", seed);
	return seed;
}

int32_t tp_native_i32(const uint8_t *b, size_t off)
{
	int32_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

int64_t tp_native_i64(const uint8_t *b, size_t off)
{
	int64_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

double tp_native_double(const uint8_t *b, size_t off)
{
	double v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}
