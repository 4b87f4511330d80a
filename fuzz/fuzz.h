/* SPDX-License-Identifier: BSD-2-Clause
 *
 * fuzz.h - helpers shared by the libFuzzer targets in this directory.
 *
 * Targets put their input in a memfd and hand the library its
 * /proc/self/fd path, so that the code under test opens, stats and maps a
 * real regular file without touching the disk.  A broken invariant aborts
 * with the condition and a line number; libFuzzer then keeps the input.
 */
#ifndef VMCLOCK_FUZZ_H
#define VMCLOCK_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,    \
				__LINE__, #cond);                                     \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* Checks of bugs already reported and not yet fixed are skipped unless the
 * targets are built with FUZZ_KNOWN_BUGS=1 (make fuzz-smoke FUZZ_KNOWN_BUGS=1),
 * so that the smoke run stays a test of everything else. */
#ifndef FUZZ_KNOWN_BUGS
#define FUZZ_KNOWN_BUGS 0
#endif

/* A memfd and the path that names it; made once per process. */
struct fuzz_file {
	int fd;
	char path[64];
};

static inline void fuzz_file_init(struct fuzz_file *f, const char *name)
{
	if (f->path[0])
		return;
	f->fd = memfd_create(name, MFD_CLOEXEC);
	if (f->fd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
}

/* Replace the file's contents with exactly these bytes. */
static inline void fuzz_file_set(struct fuzz_file *f, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t done = 0;

	if (ftruncate(f->fd, 0) < 0) {
		perror("ftruncate");
		abort();
	}
	while (done < len) {
		ssize_t n = pwrite(f->fd, p + done, len - done, (off_t)done);

		if (n <= 0) {
			perror("pwrite");
			abort();
		}
		done += (size_t)n;
	}
}

/* Little-endian loads and stores at a byte offset, independent of the
 * library's structures. */
static inline uint64_t fuzz_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline void fuzz_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Consume up to 8 bytes as a number (fewer at the end of the input). */
static inline uint64_t fuzz_take64(const uint8_t **data, size_t *len)
{
	uint64_t v = 0;
	size_t n = *len < 8 ? *len : 8;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)(*data)[i] << (8 * i);
	*data += n;
	*len -= n;
	return v;
}

#endif /* VMCLOCK_FUZZ_H */
