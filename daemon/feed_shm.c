/* SPDX-License-Identifier: BSD-2-Clause
 *
 * feed_shm.c - samples for ntpd's (and chrony's) SHM refclock.
 *
 * The classic System V segment with key 0x4e545030 + unit, written in mode 1:
 * valid cleared, count bumped, fields written, count bumped again, valid set.
 * A reader that sees count change under it retries or drops the sample.
 * Nanosecond fields are filled, with the microsecond ones their truncation,
 * as ntpsec expects.  precision carries the sample's bound as log2 seconds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

#include "feed.h"
#include "log.h"

#define SHM_KEY_BASE 0x4e545030
#define NTP_LEAP_NOTINSYNC 3

/* ntpd's struct shmTime as laid out on LP64 Linux. */
struct shm_time {
	int mode;
	volatile int count;
	time_t clock_sec;
	int clock_usec;
	time_t receive_sec;
	int receive_usec;
	int leap;
	int precision;
	int nsamples;
	volatile int valid;
	unsigned clock_nsec;
	unsigned receive_nsec;
	int dummy[8];
};
_Static_assert(sizeof(time_t) != 8 || sizeof(struct shm_time) == 96, "shmTime is 96 bytes");

typedef struct {
	struct FED_Output_Record base;
	struct shm_time *shm;
	int unit;
} ShmOutput;

/* ceil(log2(ns * 1e-9)), the precision field's units, within ntpd's range. */
static int precision_of(uint64_t ns)
{
	int p = -30; /* 2^-30 s ~ 0.93 ns */
	double limit = 0.931322574615478515625;

	while (p < 0 && (double)ns > limit) {
		p++;
		limit *= 2;
	}
	return p;
}

static int shm_send(FED_Output out, const FED_Sample *s)
{
	ShmOutput *so = (ShmOutput *)out;
	struct shm_time *t = so->shm;
	int64_t ns = (int64_t)s->system.tv_nsec + s->offset_ns;
	int64_t ref_sec = (int64_t)s->system.tv_sec + ns / 1000000000;
	int64_t ref_nsec = ns % 1000000000;

	if (ref_nsec < 0) {
		ref_nsec += 1000000000;
		ref_sec--;
	}
	t->valid = 0;
	t->mode = 1;
	__atomic_add_fetch(&t->count, 1, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	t->clock_sec = (time_t)ref_sec;
	t->clock_nsec = (unsigned)ref_nsec;
	t->clock_usec = (int)(ref_nsec / 1000);
	t->receive_sec = s->system.tv_sec;
	t->receive_nsec = (unsigned)s->system.tv_nsec;
	t->receive_usec = (int)(s->system.tv_nsec / 1000);
	t->leap = (int)s->leap;
	t->precision = precision_of(s->bound_ns);
	t->nsamples = 0;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_add_fetch(&t->count, 1, __ATOMIC_RELEASE);
	t->valid = 1;
	return 0;
}

static void shm_destroy(FED_Output out)
{
	ShmOutput *so = (ShmOutput *)out;

	/* Tell a reader there is nothing new; the segment stays for ntpd. */
	so->shm->valid = 0;
	so->shm->leap = NTP_LEAP_NOTINSYNC;
	shmdt(so->shm);
	free(so);
}

static const struct FED_Driver shm_driver = {
	.name = "ntp-shm",
	.send = shm_send,
	.destroy = shm_destroy,
};

FED_Output FED_CreateShm(int unit, unsigned mode)
{
	ShmOutput *so;
	void *p;
	int id;

	id = shmget(SHM_KEY_BASE + unit, sizeof(struct shm_time), IPC_CREAT | (int)(mode & 0777));
	if (id < 0) {
		LOG(LOGS_ERR, "cannot create SHM segment for unit %d: %s", unit, strerror(errno));
		return NULL;
	}
	p = shmat(id, NULL, 0);
	if (p == (void *)-1) {
		LOG(LOGS_ERR, "cannot attach SHM segment for unit %d: %s", unit, strerror(errno));
		return NULL;
	}
	so = calloc(1, sizeof(*so));
	if (!so) {
		shmdt(p);
		return NULL;
	}
	so->base.driver = &shm_driver;
	so->shm = p;
	so->unit = unit;
	return &so->base;
}
