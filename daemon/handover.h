/* SPDX-License-Identifier: BSD-2-Clause
 *
 * handover.h - hand chronyd a disruption: reset its sources, give it the
 * counter's exact frequency change and the step, exactly once.
 *
 * A pure state machine in chrony's manner: HND_Handle() takes one event (a
 * target to hand over, chronyd's answer to a request, the timer, an offset
 * measured, the result of a write, the command socket reconfigured) with the
 * monotonic time it happened at, and returns the actions to take (send this
 * request, close the client, arm or disarm the timer, measure the offset,
 * keep this record durably, the handover is done).  It does no I/O but its
 * log lines: hnd_driver.c does the I/O, and tests drive it directly.
 *
 * One handover at a time, the newest target wins: a new marker while one
 * runs (or while it waits to retry) replaces the target, and the next step
 * is computed from what chronyd is known to have applied.  What it knows is
 * kept in one place: the counter period chronyd's frequency is right for.  A
 * dfreq is sent only from that period to the target's, composed exactly (a
 * ratio of periods, never a sum of ppm), and never again while one is in
 * doubt: a dfreq whose answer was lost is resolved from chronyd's own
 * frequency (tracking, read twice after a settling delay) before anything
 * else is sent.  chronyd's frequency is read first (the anchor), and again
 * before a dfreq that follows a wait in which samples were fed: a frequency
 * chronyd learned from them moves the period it is right for, and the dfreq
 * composes onto what chronyd has then.  Handovers closer together than a
 * hold-off (which doubles while markers keep changing) are coalesced into
 * one.
 *
 * States: IDLE; HOLDOFF (a target waits for the rate limit, or a failed
 * round waits to try again); REQUEST (one request out: tracking, reset,
 * dfreq, doffset, makestep, burst, or verify, the tracking read that
 * resolves an unknown dfreq); BACKOFF (a step failed, retry later); SETTLE
 * (something sent may still land: wait before verifying or resetting);
 * MEASURE (the offset for a doffset asked for); RECORD (a dfreq's
 * write-ahead record asked for: it is sent only once that is durable).
 */
#ifndef VMCLOCKD_HANDOVER_H
#define VMCLOCKD_HANDOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "chrony_client.h"
#include "chrony_proto.h"

/* A counter period as the page gives it: frac / 2^(64 + shift) seconds. */
typedef struct {
	bool valid;
	uint64_t frac;
	uint8_t shift;
} HND_Period;

/* The largest counter frequency change handed to chronyd, ppm.  Real
 * counters differ from their nominal rate by tens of ppm; a host that claims
 * more (a doubled period is -500000 ppm) is lying or broken, and chronyd is
 * reset without a frequency change instead (an error is logged): its samples
 * then steer it, slowly, rather than a hostile page at once. */
#define HND_MAX_DFREQ_PPM 1000.0

/* After the doffset, chronyd is told to step its clock (chrony's makestep)
 * by the correction it has not applied yet, when that is larger than this
 * (s); less is left to its slew. */
#define HND_MIN_STEP_S 1e-6
/* The most makesteps in one handover: the first, and the residuals it may
 * leave (what the kernel had not yet applied of chronyd's slew is lost in a
 * step: measured in a guest, 18 of 2000 us; each residual step leaves about
 * a hundredth of the one before). */
#define HND_MAX_STEPS 3

/* chrony's dfreq for a counter whose period went from p0 to p1:
 * -(P1/P0 - 1) * 1e6 ppm.  Both must be valid. */
double HND_DfreqPpm(HND_Period p0, HND_Period p1);

typedef enum {
	HND_IDLE = 0,
	HND_HOLDOFF,
	HND_REQUEST,
	HND_BACKOFF,
	HND_SETTLE,
	HND_MEASURE,
	HND_RECORD,
} HND_State;

typedef enum {
	HND_STEP_NONE = 0,
	HND_STEP_RESET,
	HND_STEP_TRACKING,
	HND_STEP_DFREQ,
	HND_STEP_DOFFSET,
	HND_STEP_BURST,
	HND_STEP_VERIFY,
	HND_STEP_MAKESTEP,
	HND_STEP_COUNT
} HND_Step;

const char *HND_StepName(HND_Step step);

/* A dfreq that may be in chronyd (sent, not known to be applied or not):
 * what resolves it from chronyd's frequency, also after vmclockd restarted
 * (it is recorded before it is sent: see HND_ACT_RECORD). */
typedef struct {
	bool valid;
	uint64_t marker;        /* the target it was sent for */
	HND_Period from, to;    /* chronyd's period before it, and after it */
	double dfreq_ppm;       /* the change, as chronyd decodes it */
	/* chronyd's frequency before it (tracking, read right before): the
	 * one right for from, which with from tells the period of any
	 * frequency chronyd is seen at later */
	double freq_before_ppm;
} HND_Dfreq;

/* chronyd's frequency when it was right for a period, read during a
 * handover.  (1 - f) is proportional to the period f is right for, so this
 * pair gives the period of any frequency chronyd is seen at later (it learns
 * from samples fed between failed rounds), and the frequency of any period. */
typedef struct {
	bool valid;
	HND_Period period;
	double freq_ppm;
} HND_Anchor;

/* What chronyd has been handed, the one record of it: what must outlive
 * vmclockd for a restart to neither repeat nor lose a change.  The machine
 * owns it and hands it out to be kept (HND_ACT_RECORD) whenever it changes;
 * at start it takes back what was kept (HND_New). */
typedef struct {
	/* A marker was handled (else nothing else here is known). */
	bool valid;
	/* The last disruption handed over, and the VM generation counter
	 * under it. */
	uint64_t marker;
	uint64_t generation;
	/* The period chronyd's frequency is right for; !valid: not known. */
	HND_Period chrony_period;
	/* valid: the handover's anchor, recorded before samples are fed to
	 * chronyd between rounds (and with every dfreq), so that a restart
	 * does not take a frequency chronyd learned since for one right for
	 * chrony_period. */
	HND_Anchor anchor;
	/* valid: a dfreq about to be sent, or sent and not yet resolved; its
	 * from is chrony_period. */
	HND_Dfreq in_doubt;
} HND_Record;

typedef struct {
	uint64_t marker;
	/* The period chronyd's frequency is right for when no handover is under
	 * way (the handled one); ignored while one is, as the module knows
	 * better then. */
	HND_Period old_period;
	HND_Period new_period;
	bool has_time; /* false: reset and an NTP burst only */
	/* After the doffset, chronyd steps its clock by the correction it has
	 * not applied (read from tracking just before); false: it slews. */
	bool step;
	/* A dfreq recorded in doubt before a restart (valid): the handover
	 * that begins resolves it first, from chronyd's frequency (its from
	 * replaces old_period).  Ignored by a handover already under way. */
	HND_Dfreq in_doubt;
	/* The anchor recorded before a restart (valid): the handover that
	 * begins takes it rather than its first reading.  Ignored by a
	 * handover already under way. */
	HND_Anchor anchor;
} HND_Target;

typedef enum {
	HND_DOUBT_NONE = 0,    /* no dfreq was in doubt */
	HND_DOUBT_APPLIED,     /* chronyd's frequency moved by it */
	HND_DOUBT_NOT_APPLIED, /* still where it was: sent again */
	HND_DOUBT_MOVED,       /* neither: chronyd moved on its own, the change
				* composes from where it is */
} HND_Doubt;

typedef struct {
	bool ok;              /* false only after max_rounds failed rounds */
	bool chronyd_absent;  /* not reachable when a round began: no dfreq */
	uint64_t marker;      /* the (newest) target handed over */
	bool has_time;
	/* The period chronyd's frequency is right for now; !valid: not known
	 * (no period on the page, or a dfreq that could not be resolved). */
	HND_Period chrony_period;
	int dfreqs;           /* dfreq requests chronyd applied in this handover */
	double dfreq_ppm;     /* their composition (without what chronyd learned
			       * from samples between rounds) */
	bool dfreq_refused;   /* above HND_MAX_DFREQ_PPM: not sent */
	bool dfreq_unrecorded; /* its write-ahead record kept failing: not sent */
	bool have_offset;
	bool doffset_skipped; /* HND_OFFSET_SKIP: no doffset sent */
	int skip_reason;      /* then the caller's code for why (HND_EV_OFFSET) */
	/* A dfreq whose answer was lost (this handover's, or one recorded in
	 * doubt before a restart), as chronyd's frequency resolved it; the
	 * last one of this handover. */
	HND_Doubt doubt;
	double offset;        /* o, device minus system time, s */
	double correction;    /* c, chronyd's correction before doffset, s */
	double doffset;       /* -(o - c), s */
	int steps;            /* makesteps chronyd confirmed */
	double step;          /* the corrections it had left then (tracking), s */
	double residual;      /* o - c measured after the last step, s */
	bool step_refused;    /* chronyd answered the makestep "failed" (-x, or
				 its clock refused): the doffset was redone
				 and is slewed */
	int resets;           /* reset requests chronyd confirmed */
	int datagrams;        /* requests sent in all */
	int failures;         /* steps that failed and were retried */
	int failed_rounds;    /* rounds of max_failures tries that failed */
	int64_t duration_ns;
	int64_t rtt_ns[HND_STEP_COUNT]; /* last round trip of each step */
	/* The disruption it handled, for its one journal record (pages seen
	 * through HND_EV_PAGE; a target started directly has only marker):
	 * the marker chronyd was right for before, the first one seen after
	 * it, how many marker changes the pages showed (faster than a
	 * handover completes: coalesced into one), whether it began while
	 * vmclockd was down, the generation, the step
	 * the page's offset made (step_known), and the counter periods before
	 * and after (each !valid when not known). */
	uint64_t old_marker, first_marker;
	unsigned long marker_changes;
	bool while_down;
	uint64_t generation;
	bool step_known;
	int64_t step_ns;
	HND_Period period_before, period_after;
	/* When !ok: */
	HND_Step failed_step;
	int error;            /* errno value */
	const char *reason;
} HND_Report;

/* The answer to "what is the offset now" before a doffset. */
typedef enum {
	HND_OFFSET_OK = 0,  /* measured: send the doffset */
	HND_OFFSET_RETRY,   /* no reading now (no device, bad page, mid-update) */
	HND_OFFSET_SKIP,    /* the page does not vouch for its time, or its marker
			     * moved on: no step is sent, the doffset is done */
} HND_OffsetAnswer;

typedef struct {
	int timeout_ms;       /* per request (CCL_Start's), and for the next
			       * tick's offset (HND_ACT_MEASURE) */
	int tries;            /* sends per idempotent request */
	int max_failures;     /* failed steps before giving up */
	int first_backoff_ms; /* doubles after each failure */
	int settle_ms;        /* longest a sent request may still land */
	int holdoff_ms;       /* least time between two handovers' starts */
	int max_holdoff_ms;   /* the hold-off doubles up to this while flapping */
	/* Failed rounds before the handover gives up (done with !ok); 0:
	 * never, the daemon's way (a tool may want one try). */
	int max_rounds;
} HND_Timing;

extern const HND_Timing HND_DEFAULT_TIMING;

/* ---- the machine ---------------------------------------------------------- */

typedef struct HND_Machine HND_Machine;

typedef enum {
	/* A disruption to hand over (the newest wins), given directly (tools,
	 * tests); vmclockd hands the machine its pages (HND_EV_PAGE). */
	HND_EV_START = 0,
	/* The answer to the last HND_ACT_SEND (never one to a request the
	 * client was closed under: HND_ACT_CLOSE drops it). */
	HND_EV_REPLY,
	/* The timer armed by the last HND_ACT_ARM expired. */
	HND_EV_TIMER,
	/* The answer to HND_ACT_MEASURE. */
	HND_EV_OFFSET,
	/* The result of HND_ACT_RECORD (every one, in order). */
	HND_EV_RECORDED,
	/* What was kept before vmclockd started (the record), before the
	 * first page; none: the first page is adopted as handled. */
	HND_EV_LOADED,
	/* A page copy, each tick: a new marker starts a handover (the first
	 * page compares with the record loaded); the rest keeps the record
	 * current. */
	HND_EV_PAGE,
	/* The next page is another device's: a new epoch (handed over like a
	 * disruption, with no frequency change or step across the two). */
	HND_EV_SOURCE_CHANGED,
	/* vmclockd stops: what the record has not kept yet is kept now. */
	HND_EV_STOP,
	/* chronyd's command socket was configured anew (SIGHUP). */
	HND_EV_CHRONYD,
} HND_EventType;

typedef struct {
	HND_EventType type;
	int64_t now_ns; /* CLOCK_MONOTONIC when it happened */
	union {
		HND_Target start;
		/* The client's result; the reply's data is valid when done. */
		CCL_Result reply;
		struct {
			HND_OffsetAnswer answer;
			double offset_s; /* device minus system time, s (OK) */
			int skip_reason; /* SKIP: why, in the caller's codes
					  * (HND_Report.skip_reason) */
		} offset;
		struct {
			int result;        /* 0, or a negative errno value */
			HND_Record record; /* what was to be kept */
		} recorded;
		HND_Record loaded;
		struct {
			bool configured; /* a command socket at all */
			bool changed;    /* another path: the client is closed */
		} chronyd;
		struct {
			uint64_t marker;
			uint64_t generation;
			bool generation_present; /* the page's flag says it counts */
			/* The counter period when the page carries time (the
			 * library's predicate), else !valid. */
			HND_Period period;
			/* The offset measured on this copy (device minus
			 * system time), if one was. */
			bool have_offset;
			int64_t offset_ns;
			/* A handover this page starts has chronyd step its
			 * clock (the handover-step setting). */
			bool step;
		} page;
	} u;
} HND_Event;

typedef enum {
	/* Send the request (its answer is HND_EV_REPLY). */
	HND_ACT_SEND = 0,
	/* Close the command client, dropping any request in flight (its
	 * answer never comes); the next send opens a fresh one. */
	HND_ACT_CLOSE,
	/* Arm the one timer (replacing any armed one): HND_EV_TIMER after ms. */
	HND_ACT_ARM,
	HND_ACT_DISARM,
	/* The offset on a page whose marker is marker is wanted, from the next
	 * tick's sample: HND_EV_OFFSET (an armed timer gives up on it). */
	HND_ACT_MEASURE,
	/* Keep record durably (it must survive a crash of vmclockd):
	 * HND_EV_RECORDED with the result.  With a dfreq in in_doubt, that
	 * dfreq is sent only once this succeeded (a change a restart could
	 * apply twice is worse than one delayed; at the last try the handover
	 * goes on without it, as for a refused one).  Without, it says the
	 * dfreq is known to be applied or unknowable; its failure then is
	 * harmless (the old record resolves to the same). */
	HND_ACT_RECORD,
	/* The handover completed (or gave up after HND_Timing.max_rounds, if
	 * not 0): exactly once per handover.  Taken after the record of it. */
	HND_ACT_DONE,
	/* A page showed a new marker (each change; the handover's record of
	 * them is its report). */
	HND_ACT_DISRUPTION,
	/* The page's VM generation counter changed: restored or cloned. */
	HND_ACT_RESTORE,
} HND_ActionType;

typedef struct {
	HND_ActionType type;
	union {
		struct {
			HND_Step step;
			CPR_Packet request;
			int timeout_ms, tries; /* CCL_Start's */
		} send;
		struct {
			int64_t ms;
			HND_State state; /* what the machine waits in */
		} arm;
		uint64_t measure_marker;
		HND_Record record;
		HND_Report done;
		struct {
			uint64_t old_marker, new_marker;
			HND_Period period_before, period_after;
			bool source_changed;
		} disruption;
		struct {
			uint64_t old_generation, new_generation, marker;
		} restore;
	} u;
} HND_Action;

/* The most actions one event returns. */
#define HND_MAX_ACTIONS 8

/* A failed keeping of the record is tried again this often (at the next
 * page after it); a changed generation or a drifting period is kept at most
 * this often (the latest values always), and at HND_EV_STOP. */
#define HND_SAVE_RETRY_S 1
/* A drifting counter period (the host refines it) is kept again when it
 * moved further than this from the kept one, at most every
 * HND_PERIOD_RESAVE_S, so that a disruption while vmclockd is down still
 * gets an exact dfreq. */
#define HND_PERIOD_RESAVE_PPM 0.001
#define HND_PERIOD_RESAVE_S 60

typedef struct {
	int n;
	HND_Action a[HND_MAX_ACTIONS];
} HND_Actions;

/* A machine with no handover under way; chronyd: a command socket is
 * configured (without one, every handover completes at once, with nothing
 * sent).  timing NULL: HND_DEFAULT_TIMING.  NULL: out of memory. */
HND_Machine *HND_New(const HND_Timing *timing, bool chronyd);
void HND_Free(HND_Machine *m);
/* Takes EV, fills OUT with the actions, in the order they are to be taken. */
void HND_Handle(HND_Machine *m, const HND_Event *ev, HND_Actions *out);
bool HND_Busy(const HND_Machine *m);
/* The record as the machine holds it (kept or not yet). */
const HND_Record *HND_GetRecord(const HND_Machine *m);
/* The last keeping of the record failed: it is tried again every
 * HND_SAVE_RETRY_S (at the next page after that), and what is kept is older
 * than what HND_GetRecord says. */
bool HND_Unsaved(const HND_Machine *m);
/* Samples must be withheld: a handover is under way (and is not waiting
 * between failed rounds with samples allowed, HND_RetryWaiting). */
bool HND_Withholding(const HND_Machine *m);
/* The generation counter the machine knows (the target's during a
 * handover, else the handled one's). */
uint64_t HND_CurrentGeneration(const HND_Machine *m);
/* A round failed and the handover waits to try again: nothing of it is in
 * flight, and the caller may feed samples meanwhile.  Not before chronyd's
 * frequency was read and recorded (the anchor): what chronyd learns from the
 * samples could not be told from what it had. */
bool HND_RetryWaiting(const HND_Machine *m);

#endif /* VMCLOCKD_HANDOVER_H */
