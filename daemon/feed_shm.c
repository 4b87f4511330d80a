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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

#include "feed.h"
#include "log.h"
#include "ratelimit.h"

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

/* Why a segment is not used, besides an errno (which is > 0). */
enum {
	SHM_FOREIGN = -1,    /* owned or created by another user */
	SHM_WIDE_MODE = -2,  /* more permissive than ntp-shm-mode */
	SHM_WRONG_SIZE = -3, /* not an shmTime */
	SHM_REMOVED = -4,    /* ours was removed under us */
};

typedef struct {
	struct FED_Output_Record base;
	struct shm_time *shm; /* NULL while no usable segment is attached */
	int id;
	int unit;
	key_t key;
	unsigned mode;
	LOG_Repeat failing;
	RLM_Limit retry;   /* attach attempts while there is no segment */
	RLM_Limit recheck; /* whether ours is still the key's segment */
	char problem[80];
} ShmOutput;

/* The fields of this output's lines: OUTPUT=, then the CAUSE= of a
 * failure, then its detail (OWNER_UID=, MODE=, SIZE=, ERRNO=; the MODE= of
 * the segment used), written by the caller into detail ("" for none). */
typedef struct {
	char out[32], cause[32], detail[32];
	const char *fields[4];
} ShmFields;

static const char *const *shm_fields(ShmFields *f, FED_Output out, const char *cause)
{
	int n = 0;

	snprintf(f->out, sizeof(f->out), "OUTPUT=%s", FED_Name(out));
	f->fields[n++] = f->out;
	if (cause) {
		snprintf(f->cause, sizeof(f->cause), "CAUSE=%s", cause);
		f->fields[n++] = f->cause;
	}
	if (f->detail[0])
		f->fields[n++] = f->detail;
	f->fields[n] = NULL;
	return f->fields;
}

/* Says once (until the cause changes) why the segment is not used.
 * Returns the negative errno value for the cause. */
static int refuse(ShmOutput *so, int cause, const struct shmid_ds *ds)
{
	unsigned key = (unsigned)so->key;
	ShmFields f;

	switch (cause) {
	case SHM_FOREIGN:
		snprintf(so->problem, sizeof(so->problem), "segment owned by uid %u",
			 (unsigned)ds->shm_perm.uid);
		snprintf(f.detail, sizeof(f.detail), "OWNER_UID=%u", (unsigned)ds->shm_perm.uid);
		if (LOG_RepeatFailing(&so->failing, cause))
			LOG_Event(LOGS_ERR, NULL, shm_fields(&f, &so->base, "foreign"),
			    "ntp-shm unit %d: the segment with key 0x%08x belongs to uid %u "
			    "(created by uid %u), not to vmclockd (uid %u): its owner could read and "
			    "rewrite every sample; not using it, retrying every second (ipcrm -M 0x%08x "
			    "removes it)", so->unit, key, (unsigned)ds->shm_perm.uid,
			    (unsigned)ds->shm_perm.cuid, (unsigned)geteuid(), key);
		break;
	case SHM_WIDE_MODE:
		snprintf(so->problem, sizeof(so->problem), "segment mode %04o wider than %04o",
			 (unsigned)ds->shm_perm.mode & 0777, so->mode);
		snprintf(f.detail, sizeof(f.detail), "MODE=%04o", (unsigned)ds->shm_perm.mode & 0777);
		if (LOG_RepeatFailing(&so->failing, cause))
			LOG_Event(LOGS_ERR, NULL, shm_fields(&f, &so->base, "wide_mode"),
			    "ntp-shm unit %d: the segment with key 0x%08x has mode %04o, "
			    "wider than ntp-shm-mode %04o: others could read or rewrite the samples; "
			    "not using it, retrying every second (ipcrm -M 0x%08x removes it)",
			    so->unit, key, (unsigned)ds->shm_perm.mode & 0777, so->mode, key);
		break;
	case SHM_WRONG_SIZE:
		snprintf(so->problem, sizeof(so->problem), "segment of %zu bytes, not %zu",
			 (size_t)ds->shm_segsz, sizeof(struct shm_time));
		snprintf(f.detail, sizeof(f.detail), "SIZE=%zu", (size_t)ds->shm_segsz);
		if (LOG_RepeatFailing(&so->failing, cause))
			LOG_Event(LOGS_ERR, NULL, shm_fields(&f, &so->base, "wrong_size"),
			    "ntp-shm unit %d: the segment with key 0x%08x is %zu bytes, not "
			    "the %zu of ntpd's shmTime (another program's?); not using it, retrying "
			    "every second", so->unit, key, (size_t)ds->shm_segsz,
			    sizeof(struct shm_time));
		break;
	default:
		snprintf(so->problem, sizeof(so->problem), "segment: %s", strerror(cause));
		snprintf(f.detail, sizeof(f.detail), "ERRNO=%d", cause);
		if (LOG_RepeatFailing(&so->failing, cause))
			LOG_Event(LOGS_ERR, NULL, shm_fields(&f, &so->base, "error"),
			    "ntp-shm unit %d: cannot use the segment with key 0x%08x: %s; "
			    "retrying every second", so->unit, key, strerror(cause));
		break;
	}
	so->base.problem = so->problem;
	switch (cause) {
	case SHM_FOREIGN:
	case SHM_WIDE_MODE:
		return -EPERM;
	case SHM_WRONG_SIZE:
		return -EINVAL;
	default:
		return -cause;
	}
}

/*
 * Finds the unit's segment, creating it if there is none, and attaches it
 * if it is fit for us: owned and created by our uid, no wider than the
 * configured mode, an shmTime's size.  Anything else is somebody else's (or
 * world-writable) and feeding it would hand them our samples to read and
 * rewrite.  The segment is never created over an existing one (IPC_EXCL),
 * so every segment used has passed the same checks.  0, or a negative
 * errno value (said).
 */
static int attach(ShmOutput *so)
{
	struct shmid_ds ds;
	uid_t euid = geteuid();
	void *p;
	int id;

	id = shmget(so->key, 0, 0);
	if (id < 0 && errno == ENOENT)
		id = shmget(so->key, sizeof(struct shm_time), IPC_CREAT | IPC_EXCL | (int)(so->mode & 0777));
	if (id < 0 || shmctl(id, IPC_STAT, &ds) < 0)
		return refuse(so, errno, NULL);
	if (ds.shm_perm.uid != euid || ds.shm_perm.cuid != euid)
		return refuse(so, SHM_FOREIGN, &ds);
	if (ds.shm_perm.mode & 0777 & ~so->mode)
		return refuse(so, SHM_WIDE_MODE, &ds);
	if (ds.shm_segsz != sizeof(struct shm_time))
		return refuse(so, SHM_WRONG_SIZE, &ds);
	p = shmat(id, NULL, 0);
	if (p == (void *)-1)
		return refuse(so, errno, NULL);
	so->shm = p;
	so->id = id;
	so->base.problem = NULL;
	if (LOG_RepeatRecovered(&so->failing)) {
		ShmFields f;

		snprintf(f.detail, sizeof(f.detail), "MODE=%04o", (unsigned)ds.shm_perm.mode & 0777);
		LOG_Event(LOGS_INFO, NULL, shm_fields(&f, &so->base, NULL),
			  "ntp-shm unit %d: using the segment with key 0x%08x (mode %04o) now", so->unit,
			  (unsigned)so->key, (unsigned)ds.shm_perm.mode & 0777);
	}
	RLM_Restart(&so->recheck);
	return 0;
}

static void detach(ShmOutput *so)
{
	/* Tell a reader there is nothing new; the segment stays for ntpd. */
	so->shm->valid = 0;
	so->shm->leap = NTP_LEAP_NOTINSYNC;
	shmdt(so->shm);
	so->shm = NULL;
}

/* True if a usable segment is attached, attaching one at most once a
 * second while there is none. */
static bool ready(ShmOutput *so)
{
	/* Ours removed (only root can) and perhaps replaced: the key names
	 * another segment now, which is checked afresh. */
	if (so->shm && RLM_Due(&so->recheck, 1) && shmget(so->key, 0, 0) != so->id) {
		shmdt(so->shm);
		so->shm = NULL;
		RLM_Restart(&so->retry);
		if (LOG_RepeatFailing(&so->failing, SHM_REMOVED)) {
			ShmFields f = { .detail = "" };

			LOG_Event(LOGS_WARN, NULL, shm_fields(&f, &so->base, "removed"),
				  "ntp-shm unit %d: the segment with key 0x%08x was removed; "
				  "attaching to a new one", so->unit, (unsigned)so->key);
		}
		so->base.problem = "segment removed";
		return attach(so) == 0;
	}
	if (!so->shm && RLM_Due(&so->retry, 1))
		attach(so);
	return so->shm != NULL;
}

/* The finest precision we claim, 2^-30 s (~0.93 ns), and that bound in ns. */
#define SHM_PRECISION_MIN (-30)
#define SHM_PRECISION_MIN_NS 0.931322574615478515625

/* ceil(log2(ns * 1e-9)), the precision field's units, from SHM_PRECISION_MIN
 * to 0 (one second: ntpd's coarsest meaningful value). */
static int precision_of(uint64_t ns)
{
	int p = SHM_PRECISION_MIN;
	double limit = SHM_PRECISION_MIN_NS;

	while (p < 0 && (double)ns > limit) {
		p++;
		limit *= 2;
	}
	return p;
}

static int shm_send(FED_Output out, const FED_Sample *s)
{
	ShmOutput *so = (ShmOutput *)out;
	struct shm_time *t;
	int64_t ns = (int64_t)s->system.tv_nsec + s->offset_ns;
	int64_t ref_sec = (int64_t)s->system.tv_sec + ns / 1000000000;
	int64_t ref_nsec = ns % 1000000000;

	/* No usable segment yet: FED_Problem says why, retried by itself. */
	if (!ready(so))
		return -EAGAIN;
	t = so->shm;
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

	if (so->shm)
		detach(so);
	free(so);
}

static const struct FED_Driver shm_driver = {
	.name = "ntp-shm",
	.send = shm_send,
	.destroy = shm_destroy,
};

FED_Output FED_CreateShm(int unit, unsigned mode)
{
	ShmOutput *so = calloc(1, sizeof(*so));

	if (!so) {
		LOG(LOGS_ERR, "ntp-shm unit %d: %s", unit, strerror(errno));
		return NULL;
	}
	so->base.driver = &shm_driver;
	so->unit = unit;
	so->key = SHM_KEY_BASE + unit;
	so->mode = mode & 0777;
	/* Said at start if the segment is not usable; retried from the sends. */
	RLM_Restart(&so->retry);
	attach(so);
	return &so->base;
}
