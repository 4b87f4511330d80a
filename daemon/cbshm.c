/* SPDX-License-Identifier: BSD-2-Clause
 *
 * cbshm.c - writing the ClockBound segment (cbshm.h, cbformat.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/timeutil.h"

#include "cbformat.h"
#include "cbshm.h"
#include "fileio.h"
#include "log.h"
#include "ratelimit.h"

/* How often an unusable path is tried again, and the path checked to
 * still name the segment written. */
#define RETRY_S 1

static const CNF_Settings *cfg;
static int seg_fd = -1;
static struct stat seg_id;    /* st_dev and st_ino of the segment written */
static uint16_t generation;   /* the segment's, as last written */
static CBF_Bound last;        /* as last written */
static uint64_t coarse_res_ns;
static LOG_Repeat failing;
static RLM_Limit retry;

static const char *seg_path(const CNF_Settings *s)
{
	return s && s->clockbound_shm ? s->clockbound_shm : "";
}

/* 0, or a negative errno value, as for every write below. */
static int write_generation(int fd, uint16_t gen)
{
	uint8_t header[CBF_HEADER_SIZE];

	CBF_EncodeHeader(gen, header);
	return FIO_PwriteAll(fd, header + CBF_GENERATION_OFFSET, 2, CBF_GENERATION_OFFSET);
}

/*
 * An update in place, as ClockBound's writer does it: the generation made
 * odd, the body, the generation made even (never 0), each write ordered
 * after the previous one.  Only the low byte changes when the count is
 * made odd, and the body is complete before the count moves on: a reader
 * seeing the 16-bit count half written takes either an odd count (its
 * last snapshot) or an even one over a complete body.
 */
static int update(int fd)
{
	uint8_t body[CBF_SIZE - CBF_HEADER_SIZE];
	uint16_t gen = CBF_Begin(generation);
	int r;

	CBF_EncodeBody(&last, body);
	if ((r = write_generation(fd, gen)) < 0)
		return r;
	generation = gen;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if ((r = FIO_PwriteAll(fd, body, sizeof(body), CBF_HEADER_SIZE)) < 0)
		return r;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	gen = CBF_End(gen);
	if ((r = write_generation(fd, gen)) < 0)
		return r;
	generation = gen;
	return 0;
}

/* The segment's directory, made if missing, and ours alone: another user
 * (a ClockBound daemon's) or one others may write is refused (-EPERM). */
static int directory_ours(const char *path)
{
	char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
	struct stat st;
	int r = dir ? 0 : -ENOMEM;

	if (slash && slash != dir) {
		*slash = '\0';
		(void)mkdir(dir, 0755);
		if (lstat(dir, &st) < 0)
			r = -errno;
		else if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
			 (st.st_mode & (S_IWGRP | S_IWOTH)))
			r = -EPERM;
	}
	free(dir);
	return r;
}

/* A segment at the path a previous vmclockd left, ours to go on writing in
 * place: a regular file of ours with no other name, of the right size and
 * format.  Its descriptor, or a negative errno value (-EEXIST: something
 * else is there). */
static int adopt(const char *path)
{
	uint8_t image[CBF_SIZE];
	struct stat st;
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	    st.st_nlink == 1 && st.st_size == CBF_SIZE &&
	    pread(fd, image, sizeof(image), 0) == (ssize_t)sizeof(image) &&
	    CBF_Adopt(image, &generation)) {
		seg_id = st;
		return fd;
	}
	close(fd);
	return -EEXIST;
}

/* A fresh segment by temp file + rename, written whole before it takes the
 * name.  Its descriptor, or a negative errno value. */
static int create(const char *path)
{
	uint8_t image[CBF_SIZE];
	char *tmp = NULL;
	struct stat st;
	int fd, err;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	(void)unlink(tmp); /* a leftover of a daemon that died here */
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		err = -errno;
		free(tmp);
		return err;
	}
	generation = CBF_End(CBF_Begin(0));
	CBF_EncodeHeader(generation, image);
	CBF_EncodeBody(&last, image + CBF_HEADER_SIZE);
	if ((err = posix_fallocate(fd, 0, CBF_SIZE)) != 0)
		err = -err;
	else if (fchmod(fd, 0644) < 0 || fstat(fd, &st) < 0)
		err = -errno;
	else if ((err = FIO_PwriteAll(fd, image, sizeof(image), 0)) == 0 && rename(tmp, path) < 0)
		err = -errno;
	if (err < 0) {
		close(fd);
		(void)unlink(tmp);
		fd = err;
	} else {
		seg_id = st;
	}
	free(tmp);
	return fd;
}

/* Opens the segment: the one left at the path if it is ours, else a fresh
 * one. */
static void open_segment(const char *path)
{
	int r = directory_ours(path);

	/* r: 0 for the directory, then a descriptor or a negative errno. */
	if (r == 0 && (r = adopt(path)) < 0)
		r = create(path);
	if (r >= 0) {
		seg_fd = r;
		(void)LOG_RepeatRecovered(&failing); /* this line says so */
		LOG(LOGS_INFO, "writing the ClockBound segment %s", path);
		return;
	}
	if (LOG_RepeatFailing(&failing, -r))
		LOG(LOGS_WARN, "cannot write the ClockBound segment %s: %s", path, strerror(-r));
}

/* The path still names the segment written?  If it was removed or
 * replaced, a fresh one is made: new readers look for it by path. */
static void check_replaced(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 && st.st_dev == seg_id.st_dev && st.st_ino == seg_id.st_ino)
		return;
	LOG(LOGS_WARN, "ClockBound segment %s was removed or replaced: writing a fresh one", path);
	close(seg_fd);
	seg_fd = -1;
}

void CBS_Publish(const struct vmclockd_state *state)
{
	const char *path = seg_path(cfg);
	CBF_Now now;
	int r;

	if (!*path)
		return;
	/* The coarse clock first: the bound is computed at a later instant,
	 * never smaller than at as_of. */
	now.coarse_ns = TIM_NowNs(CLOCK_MONOTONIC_COARSE);
	now.realtime_ns = TIM_NowNs(CLOCK_REALTIME);
	now.coarse_res_ns = coarse_res_ns;
	last = CBF_FromState(state, &now);
	/* Once a second: the path checked, or an unusable one tried again. */
	if (RLM_Due(&retry, RETRY_S)) {
		if (seg_fd >= 0)
			check_replaced(path);
		if (seg_fd < 0)
			open_segment(path);
	}
	if (seg_fd < 0)
		return;
	if ((r = update(seg_fd)) == 0) {
		if (LOG_RepeatRecovered(&failing))
			LOG(LOGS_INFO, "writing the ClockBound segment %s again", path);
	} else if (LOG_RepeatFailing(&failing, -r)) {
		LOG(LOGS_WARN, "cannot write the ClockBound segment %s: %s", path, strerror(-r));
	}
}

/* Left saying UNKNOWN: readers need not wait for void_after. */
static void close_segment(void)
{
	if (seg_fd >= 0) {
		last.status = CBF_STATUS_UNKNOWN;
		(void)update(seg_fd);
		close(seg_fd);
	}
	seg_fd = -1;
}

void CBS_Initialise(const CNF_Settings *settings)
{
	struct timespec res;

	cfg = settings;
	seg_fd = -1;
	retry = (RLM_Limit){ 0 };
	/* Unknown, a generous guess: a tick of the slowest kernel timer. */
	coarse_res_ns = clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 ? TIM_TimespecToNs(&res) :
									   10 * NSEC_PER_MSEC;
}

void CBS_Reconfigure(const CNF_Settings *fresh)
{
	if (strcmp(seg_path(cfg), seg_path(fresh)) != 0) {
		close_segment();
		retry = (RLM_Limit){ 0 };
	}
}

void CBS_Finalise(void)
{
	close_segment();
	cfg = NULL;
}
