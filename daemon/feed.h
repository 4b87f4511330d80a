/* SPDX-License-Identifier: BSD-2-Clause
 *
 * feed.h - where reference samples go: one small interface, several outputs.
 *
 * The sampler builds a FED_Sample per tick and hands it to every configured
 * output through FED_Send(); it neither knows nor cares whether that is
 * chrony's SOCK refclock or ntpd's SHM segment.  Each output owns its own
 * error reporting (once when it starts failing, once when it recovers) and
 * never blocks.
 */
#ifndef VMCLOCKD_FEED_H
#define VMCLOCKD_FEED_H

#include <stdint.h>
#include <time.h>

typedef enum {
	FED_LEAP_NONE = 0,
	FED_LEAP_INSERT = 1,
	FED_LEAP_DELETE = 2,
} FED_Leap;

typedef struct {
	struct timespec system;  /* CLOCK_REALTIME of the measurement */
	int64_t offset_ns;       /* device UTC minus system */
	uint64_t uncertainty_ns; /* measurement (bracket) half-width */
	uint64_t bound_ns;       /* page max error + bracket */
	uint32_t bound_ppb;      /* how fast the page's max error grows */
	FED_Leap leap;
} FED_Sample;

typedef struct FED_Output_Record *FED_Output;

struct FED_Driver {
	const char *name;
	/* 0 if sent, or a negative errno value if this output could not take
	 * it (it logged why, once: the README's error policy). */
	int (*send)(FED_Output out, const FED_Sample *s);
	void (*destroy)(FED_Output out);
};

struct FED_Output_Record {
	const struct FED_Driver *driver;
	/* Set by the driver: NULL while the output takes samples, or why it
	 * does not (a short phrase for STATUS=). */
	const char *problem;
};

/* Outputs: NULL with a logged error when they cannot be set up at all.  An
 * output that cannot take samples yet (a segment that is not ours) is still
 * created: it says why in FED_Problem and retries by itself. */
FED_Output FED_CreateSock(const char *path);
FED_Output FED_CreateShm(int unit, unsigned mode);

/* 0, or a negative errno value: the driver's send. */
int FED_Send(FED_Output out, const FED_Sample *s);
/* The output's name and, if its last send failed, why; NULL problem while
 * it works.  What STATUS= says about the outputs comes from here only. */
const char *FED_Name(FED_Output out);
const char *FED_Problem(FED_Output out);
void FED_Destroy(FED_Output out);

#endif /* VMCLOCKD_FEED_H */
