/* SPDX-License-Identifier: BSD-2-Clause
 *
 * sampler.c - the tick: read the page, decide, feed or withhold.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "vmclock.h"
#include "../common/timeutil.h"

#include "feed.h"
#include "log.h"
#include "notify.h"
#include "ratelimit.h"
#include "sampler.h"

/* The outputs, one slot per setting that names one. */
enum { OUT_SOCK, OUT_SHM, MAX_OUTPUTS };
/* Notified page changes per tick beyond which the host is taken to notify
 * too often to follow: fall back to the timer alone. */
#define MAX_WAKEUPS_PER_TICK 50

static struct event_base *ev_base;
static const CNF_Settings *cfg;
static SMP_Hooks hooks;
static vmclock_t *page;
/* The page stayed mid-update for a whole wait (vmclock_snapshot()'s bound):
 * a writer that died between its two seq_count increments.  Until the page
 * is consistent again each tick makes one attempt (vmclock_snapshot_once(),
 * one copy) instead of spinning through the wait again. */
static bool page_stuck;
static FED_Output outputs[MAX_OUTPUTS]; /* NULL: not configured */
static struct event *tick_ev, *device_ev;
/* A CLOCK_REALTIME timer armed far ahead with TFD_TIMER_CANCEL_ON_SET: its
 * read fails with ECANCELED as soon as the realtime clock is set or stepped
 * (date -s, another time daemon, chronyd's own steps), and a tick runs then
 * rather than at the next interval: the offset is measured again and the
 * published bound checked against it at once.  -1 if it cannot be had. */
static int step_fd = -1;
static struct event *step_ev;
static unsigned wakeups_this_tick;
static bool device_paused; /* device_ev off for a while: the host stalled */
static bool have_marker;   /* report.marker was read from a page */
static unsigned armed_ms;           /* the tick timer's current period */
static unsigned verdict_ms;         /* the last verdict's interval (0: none) */
static SMP_Report report;
static LOG_Repeat open_failing, read_failing, offset_failing, device_stalled;
static RLM_Limit reopen_check, open_retry, device_retry;

/*
 * A page file truncated under its mapping raises SIGBUS on the next read.
 * Reads of the page are bracketed by BUS_GUARD_BEGIN/END; the handler jumps
 * back to the bracket, which drops the page as bad.  Reads are plain loads
 * in libvmclock, holding no lock and no allocation, so leaving them by a
 * jump is safe.  A SIGBUS anywhere else is our bug and kills as usual.
 */
static sigjmp_buf bus_jump;
static volatile sig_atomic_t bus_armed;

static void bus_handler(int sig)
{
	if (bus_armed) {
		bus_armed = 0;
		siglongjmp(bus_jump, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The mask is not saved (that is a syscall per tick): the handler runs with
 * SA_NODEFER, so leaving it by a jump leaves SIGBUS unblocked. */
#define BUS_GUARD_BEGIN() (sigsetjmp(bus_jump, 0) == 0 ? (bus_armed = 1, true) : false)
#define BUS_GUARD_END() (bus_armed = 0)

const char *SMP_ReasonName(POL_Reason reason)
{
	/* The reasons are numbered as the state file numbers them (publish.c
	 * checks it): the library holds their one table of words. */
	return reason < POL_REASON_COUNT ? vmclockd_reason_text(reason) : "starting";
}

/* The tick is a persistent timer, re-armed only when its interval changes
 * (the observer asks for another, or the device's notifications come or go):
 * re-adding it every tick cost a timerfd_settime() per sample. */
static void arm_tick(unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	armed_ms = ms;
	evtimer_add(tick_ev, &tv);
}

static unsigned tick_interval_ms(const CNF_Settings *s)
{
	/* A device that notifies reports each disruption itself: the timer
	 * only keeps the samples coming. */
	bool notified = device_ev && !device_paused && s->notified_interval_ms &&
			event_pending(device_ev, EV_READ, NULL);

	unsigned ms = verdict_ms ? verdict_ms : notified ? s->notified_interval_ms : s->interval_ms;

	return ms < SMP_MAX_TICK_MS ? ms : SMP_MAX_TICK_MS;
}

/* The longest tick_interval_ms() may arm until the next tick: a burst may
 * end, a paused device resume, so every interval that may apply counts (an
 * observer asks for the burst interval or shorter ones). */
static unsigned longest_tick_ms(const CNF_Settings *s)
{
	unsigned ms = s->interval_ms > s->burst_interval_ms ? s->interval_ms : s->burst_interval_ms;

	if (device_ev && s->notified_interval_ms > ms)
		ms = s->notified_interval_ms;
	return ms < SMP_MAX_TICK_MS ? ms : SMP_MAX_TICK_MS;
}

static void schedule_tick(void)
{
	unsigned ms = tick_interval_ms(cfg);

	if (ms == armed_ms && evtimer_pending(tick_ev, NULL))
		return;
	arm_tick(ms);
}

/* A page flapping between reasons every tick would log every tick: changes
 * are logged at once while they come slowly, a flood is cut to a line every
 * so often, and what was suppressed is said when the window closes, with
 * the state the flood left (log.h). */
static LOG_Limit reason_log = { .states = true };
/* A page that carried no time since it was opened (a marker-only device:
 * QEMU's own, Firecracker's) is a mode, said once at NOTICE, not a reason
 * warned about again after every disruption. */
static bool page_had_time, marker_only_said;

/* Each says SAMPLES=fed with the reason it was withheld for before (WAS=),
 * or SAMPLES=withheld (none, for a marker-only page) with REASON=, by the
 * names the metrics use. */
static void set_reason(POL_Reason reason)
{
	if (reason != report.reason) {
		char why[64];
		const char *fields[] = { NULL, why, NULL };

		if (reason == POL_FED) {
			const char *was = vmclockd_reason_name(report.reason);

			/* At start there was no reason before: no WAS. */
			fields[0] = "SAMPLES=fed";
			snprintf(why, sizeof(why), "WAS=%s", was ? was : "");
			if (!was)
				fields[1] = NULL;
			LOG_LimitedEvent(&reason_log, LOGS_INFO, NULL, fields, "feeding samples (was: %s)",
					 SMP_ReasonName(report.reason));
		} else if (reason == POL_NO_TIME && !page_had_time) {
			fields[0] = "SAMPLES=none";
			snprintf(why, sizeof(why), "REASON=%s", vmclockd_reason_name(reason));
			if (!marker_only_said)
				LOG_Event(LOGS_NOTICE, NULL, fields, "%s is a marker-only page: no samples "
					  "will be fed; disruptions are still handed to chronyd",
					  cfg->device);
			marker_only_said = true;
		} else if (reason != POL_DISRUPTION) {
			fields[0] = "SAMPLES=withheld";
			snprintf(why, sizeof(why), "REASON=%s", vmclockd_reason_name(reason));
			LOG_LimitedEvent(&reason_log, LOGS_WARN, NULL, fields, "withholding samples: %s",
					 SMP_ReasonName(reason));
		}
		report.reason = reason;
	}
	if (reason == POL_FED)
		report.fed++;
	else
		report.withheld[reason]++;
}

static void close_page(void)
{
	if (device_ev)
		event_free(device_ev);
	device_ev = NULL;
	device_paused = false;
	vmclock_close(page);
	page = NULL;
	page_stuck = false;
	page_had_time = false;
	marker_only_said = false;
}

/* Opens the page if it is not open.  Only vmclock_open() itself runs under
 * the bus guard (it takes its first copy through the mapping); what follows
 * (logging, libevent) never does. */
static vmclock_t *open_guarded(const char *path)
{
	vmclock_t *volatile vc = NULL;

	if (!BUS_GUARD_BEGIN()) {
		errno = EFAULT;
		return NULL;
	}
	vc = vmclock_open(path);
	BUS_GUARD_END();
	return vc;
}

static void device_cb(evutil_socket_t fd, short what, void *arg);

/* Opens the page if it is not open; false (reason set) if it cannot be. */
static bool ensure_open(void)
{
	vmclock_notify_t n;

	/* Whether the page was replaced is asked once a second (two syscalls);
	 * a page file truncated in between faults the reader, which the bus
	 * guard turns into a bad page instead of a crash.  This runs outside
	 * the guard (it logs and creates events). */
	if (page && RLM_Due(&reopen_check, 1) && vmclock_needs_reopen(page)) {
		DEBUG_LOG("%s was replaced or truncated: reopening", cfg->device);
		close_page();
	}
	if (page)
		return true;
	/* A missing or bad device is tried again once a second; the ticks in
	 * between count as withheld for the same reason. */
	if (!RLM_Due(&open_retry, 1)) {
		set_reason(report.reason == POL_FED || report.reason == POL_REASON_COUNT
				   ? POL_NO_DEVICE : report.reason);
		return false;
	}
	page = open_guarded(cfg->device);
	if (!page) {
		report.reason_errno = errno;
		if (LOG_RepeatFailing(&open_failing, report.reason_errno))
			LOG_FileState(LOGS_WARN, cfg->device, "unusable", report.reason_errno, NULL,
				      "cannot use %s: %s; waiting for it", cfg->device,
				      vmclock_strerror(report.reason_errno));
		set_reason(report.reason_errno == ENOENT ? POL_NO_DEVICE : POL_BAD_PAGE);
		return false;
	}
	/* A page just opened was not replaced yet: the first replaced-page
	 * check is a second away, and a truncation before then is met by the
	 * reads (the bus guard). */
	RLM_Restart(&reopen_check);
	if (LOG_RepeatRecovered(&open_failing))
		LOG_FileState(LOGS_INFO, cfg->device, "usable", 0, NULL, "%s is usable now", cfg->device);
	if (!vmclock_is_device(page))
		return true; /* a page file: the timer alone */
	if (cfg->cross_timestamps && vmclock_phc_open(page) >= 0)
		LOG(LOGS_INFO, "%s: offsets from /dev/ptp%d's cross-timestamps", cfg->device,
		    vmclock_phc_index(page));
	/* Ask the driver whether it notifies (this also re-arms). */
	n = vmclock_notify_rearm(page);
	if (n == VMCLOCK_NOTIFY_NONE || n == VMCLOCK_NOTIFY_ALWAYS || n == VMCLOCK_NOTIFY_ERROR) {
		LOG(LOGS_INFO, "%s: %s; sampling on the timer", cfg->device,
		    vmclock_notify_describe(n));
		return true;
	}
	device_ev = event_new(ev_base, vmclock_fd(page), EV_READ | EV_PERSIST, device_cb, NULL);
	if (device_ev && event_add(device_ev, NULL) == 0)
		LOG(LOGS_INFO, "waiting for notifications on %s", cfg->device);
	else
		LOG(LOGS_WARN, "cannot wait for notifications on %s: sampling on the timer",
		    cfg->device);
	return true;
}

/* The sample the page vouches for, judged (POL_FED with *s filled), or why
 * not: no measurement (said once per cause), or the policy's reason. */
static POL_Reason judge_sample(const struct vmclock_abi *copy,
			       const struct vmclock_offset *measured, int offset_errno, FED_Sample *s)
{
	if (!measured) {
		report.reason_errno = offset_errno;
		if (LOG_RepeatFailing(&offset_failing, offset_errno))
			LOG_FileState(LOGS_WARN, cfg->device, "unmeasurable", offset_errno, NULL,
				      "cannot measure the offset on %s: %s", cfg->device,
				      vmclock_strerror(offset_errno));
		return POL_ReasonForErrno(report.reason_errno);
	}
	if (LOG_RepeatRecovered(&offset_failing))
		LOG_FileState(LOGS_INFO, cfg->device, "measurable", 0, NULL,
			      "offsets can be measured on %s again", cfg->device);
	return POL_JudgeSample(copy, measured, cfg, s);
}

/* Hands S to every output; the report says which did not take it. */
static void feed(const FED_Sample *s)
{
	report.outputs = 0;
	report.outputs_failing = 0;
	report.output_problems[0] = '\0';
	for (int i = 0; i < MAX_OUTPUTS; i++) {
		if (!outputs[i])
			continue;
		report.outputs++;
		if (FED_Send(outputs[i], s) < 0) {
			size_t used = strlen(report.output_problems);

			snprintf(report.output_problems + used, sizeof(report.output_problems) - used,
				 "%s%s: %s", report.outputs_failing ? "; " : "",
				 FED_Name(outputs[i]), FED_Problem(outputs[i]));
			report.outputs_failing++;
		}
	}
	report.last_offset_ns = s->offset_ns;
	report.last_bound_ns = s->bound_ns;
	report.last_system_ns = TIM_TimespecToNs(&s->system);
	report.last_uncertainty_ns = s->uncertainty_ns;
	report.last_bound_ppb = s->bound_ppb;
}

/* What one tick read from the page, under the bus guard. */
typedef struct {
	struct vmclock_abi copy;
	struct vmclock_offset offset;
	int offset_errno; /* 0 if offset was measured */
} PageRead;

/* The page was truncated under its mapping (a read faulted): dropped as a
 * bad page, to be reopened. */
static void page_faulted(void)
{
	report.reason_errno = EFAULT;
	if (LOG_RepeatFailing(&read_failing, EFAULT))
		LOG_FileState(LOGS_WARN, cfg->device, "truncated", 0, NULL,
			      "%s was truncated under its mapping: reopening", cfg->device);
	close_page();
	set_reason(POL_BAD_PAGE);
}

/* A consistent copy of the open page, under the caller's bus guard: 0, or
 * why not.  A page seen stuck mid-update is not waited for again (one
 * attempt), and still mid-update is the same failure as the wait that timed
 * out. */
static int copy_page(struct vmclock_abi *copy)
{
	if (!page_stuck)
		return vmclock_snapshot(page, copy) < 0 ? errno : 0;
	if (vmclock_snapshot_once(page, copy) == 0)
		return 0;
	return errno == EAGAIN ? ETIMEDOUT : errno;
}

/* Reads the page (copy and offset); false, with the reason set, if it
 * could not be read.  The bus guard brackets the two reads alone: no log
 * line, hook, allocation or libevent call runs under it. */
static bool read_page(PageRead *r)
{
	int err;

	if (!ensure_open())
		return false;
	if (!BUS_GUARD_BEGIN()) {
		page_faulted();
		return false;
	}
	err = copy_page(&r->copy);
	if (!err)
		r->offset_errno = vmclock_offset(page, &r->offset) < 0 ? errno : 0;
	BUS_GUARD_END();

	if (err) {
		if (err == ETIMEDOUT)
			page_stuck = true;
		report.reason_errno = err;
		if (LOG_RepeatFailing(&read_failing, err))
			LOG_FileState(LOGS_WARN, cfg->device, "unreadable", err, NULL, "cannot read %s: %s",
				      cfg->device, vmclock_strerror(err));
		/* A page that went bad is reopened: it may have been replaced. */
		if (err != ETIMEDOUT)
			close_page();
		set_reason(POL_ReasonForErrno(err));
		return false;
	}
	page_stuck = r->offset_errno == ETIMEDOUT;
	return true;
}

/* The hooks run outside the bus guard: they read no page.  NOTIFIED: woken
 * by the device's notification rather than the timer. */
static void run_tick(bool notified)
{
	PageRead r;
	const struct vmclock_offset *o;
	POL_Reason judged;
	SMP_Verdict verdict = { false, 0 };
	FED_Sample s;

	if (read_page(&r)) {
		if (LOG_RepeatRecovered(&read_failing))
			LOG_FileState(LOGS_INFO, cfg->device, "readable", 0, NULL,
				      "%s reads correctly again", cfg->device);
		o = r.offset_errno ? NULL : &r.offset;
		if (have_marker && report.marker != vmclock_le64(r.copy.disruption_marker) &&
		    LOG_DebugEnabled()) {
			struct timespec now;

			/* Every change the ticks see; the journal's record is
			 * one per handled disruption (disrupt.c). */
			clock_gettime(CLOCK_MONOTONIC, &now);
			LOG(LOGS_DEBUG, "disruption detected via %s: marker %" PRIu64 " -> %" PRIu64
					" at monotonic %lld.%09ld",
			    notified ? "notification" : "timer", report.marker,
			    vmclock_le64(r.copy.disruption_marker), (long long)now.tv_sec,
			    now.tv_nsec);
		}
		report.marker = vmclock_le64(r.copy.disruption_marker);
		have_marker = true;
		if (vmclock_has_time(&r.copy) == 0)
			page_had_time = true;

		/* Judged as it would be fed; a page the library cannot convert
		 * failed the measurement too: judge_sample says why, once. */
		judged = POL_JudgePage(&r.copy, cfg);
		if (judged == POL_FED || judged == POL_UNSUPPORTED || judged == POL_BAD_PAGE)
			judged = judge_sample(&r.copy, o, r.offset_errno, &s);
		if (hooks.observe)
			verdict = hooks.observe(&r.copy, o, judged,
						judged == POL_FED ? (double)s.offset_ns * 1e-9 : 0.0,
						hooks.arg);
		if (verdict.withhold)
			judged = POL_DISRUPTION;
		else if (judged == POL_FED)
			feed(&s);
		set_reason(judged);
	}
	verdict_ms = verdict.tick_ms < SMP_MAX_TICK_MS ? verdict.tick_ms : SMP_MAX_TICK_MS;
	report.longest_tick_ms = longest_tick_ms(cfg);
	if (hooks.tick_done)
		hooks.tick_done(&report, hooks.arg);
	NTF_Ready(); /* up, and saying in STATUS what it is doing or waits for */
	schedule_tick();
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	wakeups_this_tick = 0;
	if (device_paused && RLM_Due(&device_retry, 1)) {
		device_paused = false;
		event_add(device_ev, NULL);
	}
	run_tick(false);
}

/* Stops waiting on the device for a second: the tick (on the timer alone
 * meanwhile) tries it again.  Never for good: whatever stopped it (a stall,
 * a flood, an interrupted read) may pass. */
static void pause_device(void)
{
	event_del(device_ev);
	device_paused = true;
	RLM_Restart(&device_retry);
}

/* Causes of a pause, for LOG_RepeatFailing: the notify result, or a flood. */
#define PAUSE_FLOOD (-1)

static void device_cb(evutil_socket_t fd, short what, void *arg)
{
	vmclock_notify_t n = vmclock_notify_rearm(page);

	switch (n) {
	case VMCLOCK_NOTIFY_CHANGED:
		break;
	case VMCLOCK_NOTIFY_IDLE:
		return;
	case VMCLOCK_NOTIFY_BUSY:
		/* That read spun ~100 ms in the driver: the tick retries the
		 * device once a second, never this callback in a loop. */
		if (LOG_RepeatFailing(&device_stalled, (int)n + 1))
			LOG(LOGS_WARN, "%s: %s; trying again once a second", cfg->device,
			    vmclock_notify_describe(n));
		pause_device();
		return;
	default:
		if (LOG_RepeatFailing(&device_stalled, (int)n + 1))
			LOG(LOGS_WARN, "%s: %s; sampling on the timer, trying again once a second",
			    cfg->device, vmclock_notify_describe(n));
		pause_device();
		return;
	}
	if (++wakeups_this_tick > MAX_WAKEUPS_PER_TICK) {
		if (LOG_RepeatFailing(&device_stalled, PAUSE_FLOOD))
			LOG(LOGS_WARN, "%s: more than %d notified changes in one tick; sampling on "
				       "the timer, trying again once a second",
			    cfg->device, MAX_WAKEUPS_PER_TICK);
		pause_device();
		return;
	}
	if (LOG_RepeatRecovered(&device_stalled))
		LOG(LOGS_INFO, "%s notifies again", cfg->device);
	run_tick(true);
}

/* How far ahead the step watch's timer is armed: it is never meant to
 * expire (if it does, it is armed again). */
#define STEP_WATCH_AHEAD_S (366 * 86400)

/* Arms the step watch; false (logged by the caller) if it cannot be. */
static bool arm_step_watch(void)
{
	struct itimerspec its = { 0 };

	if (clock_gettime(CLOCK_REALTIME, &its.it_value) < 0)
		return false;
	its.it_value.tv_sec += STEP_WATCH_AHEAD_S;
	return timerfd_settime(step_fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) == 0;
}

static void step_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t expirations;
	ssize_t n = read(fd, &expirations, sizeof(expirations));
	bool stepped = n < 0 && errno == ECANCELED;

	if (n < 0 && !stepped)
		return; /* EAGAIN: woken for nothing */
	/* A cancelled timer stays cancelled until it is armed again. */
	if (!arm_step_watch()) {
		LOG(LOGS_WARN, "cannot watch the realtime clock for steps: %s", strerror(errno));
		event_del(step_ev);
	}
	if (!stepped)
		return;
	DEBUG_LOG("the realtime clock was set: sampling now");
	run_tick(false);
}

static void close_step_watch(void)
{
	if (step_ev)
		event_free(step_ev);
	step_ev = NULL;
	if (step_fd >= 0)
		close(step_fd);
	step_fd = -1;
}

static void start_step_watch(void)
{
	step_fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (step_fd >= 0 && arm_step_watch() &&
	    (step_ev = event_new(ev_base, step_fd, EV_READ | EV_PERSIST, step_cb, NULL)) &&
	    event_add(step_ev, NULL) == 0)
		return;
	/* Steps are then seen at the next tick. */
	LOG(LOGS_WARN, "cannot watch the realtime clock for steps: %s", strerror(errno));
	close_step_watch();
}

/* ---- outputs and settings ------------------------------------------------- */

static bool same_string(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Whether output slot i is configured the same way in a and b. */
static bool same_output(int i, const CNF_Settings *a, const CNF_Settings *b)
{
	if (i == OUT_SOCK)
		return same_string(a->chrony_sock, b->chrony_sock);
	return a->ntp_shm == b->ntp_shm && (a->ntp_shm < 0 || a->ntp_shm_mode == b->ntp_shm_mode);
}

/*
 * Creates the outputs s names in the slots marked in create.  Failing to
 * create our own socket or segment is a local failure (chronyd's or ntpd's
 * absence is not: sends are retried every tick): -1 with the setting named
 * and nothing created.
 */
static int create_outputs(const CNF_Settings *s, const bool create[MAX_OUTPUTS],
			  FED_Output created[MAX_OUTPUTS])
{
	memset(created, 0, sizeof(FED_Output) * MAX_OUTPUTS);
	if (create[OUT_SOCK] && s->chrony_sock && *s->chrony_sock &&
	    !(created[OUT_SOCK] = FED_CreateSock(s->chrony_sock))) {
		LOG(LOGS_ERR, "chrony-sock %s: cannot create the socket that feeds it", s->chrony_sock);
		return -1;
	}
	if (create[OUT_SHM] && s->ntp_shm >= 0 &&
	    !(created[OUT_SHM] = FED_CreateShm(s->ntp_shm, s->ntp_shm_mode))) {
		LOG(LOGS_ERR, "ntp-shm %d: cannot create its SHM segment", s->ntp_shm);
		if (created[OUT_SOCK])
			FED_Destroy(created[OUT_SOCK]);
		return -1;
	}
	return 0;
}

int SMP_Reconfigure(const CNF_Settings *fresh)
{
	bool changed[MAX_OUTPUTS];
	FED_Output created[MAX_OUTPUTS];

	for (int i = 0; i < MAX_OUTPUTS; i++)
		changed[i] = !same_output(i, cfg, fresh);
	if (create_outputs(fresh, changed, created) < 0)
		return -1;
	/* Nothing fails from here on.  Unchanged outputs are kept as they are
	 * (ntpd never sees its segment invalidated by a reload). */
	for (int i = 0; i < MAX_OUTPUTS; i++) {
		if (!changed[i])
			continue;
		if (outputs[i])
			FED_Destroy(outputs[i]);
		outputs[i] = created[i];
	}
	/* The page stays open, and is sampled on, unless it is another one;
	 * a new one is opened at the next tick. */
	bool new_device = !same_string(cfg->device, fresh->device);

	if (new_device) {
		close_page();
		open_retry = (RLM_Limit){ 0 };
	}
	if (tick_interval_ms(fresh) != tick_interval_ms(cfg))
		arm_tick(tick_interval_ms(fresh));
	return new_device ? 1 : 0;
}

int SMP_Initialise(struct event_base *base, const CNF_Settings *settings, const SMP_Hooks *h)
{
	ev_base = base;
	cfg = settings;
	hooks = h ? *h : (SMP_Hooks){ 0 };
	if (create_outputs(cfg, (const bool[MAX_OUTPUTS]){ true, true }, outputs) < 0)
		return -1;
	tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	if (!tick_ev) {
		LOG(LOGS_ERR, "cannot create the sampling timer");
		SMP_Finalise();
		return -1;
	}
	sigaction(SIGBUS, &(struct sigaction){ .sa_handler = bus_handler, .sa_flags = SA_NODEFER },
		  NULL);
	/* The first tick logs its state. */
	report.reason = POL_REASON_COUNT;
	armed_ms = 0;
	event_active(tick_ev, EV_TIMEOUT, 0);
	start_step_watch();
	return 0;
}

void SMP_Finalise(void)
{
	if (tick_ev)
		event_free(tick_ev);
	tick_ev = NULL;
	close_step_watch();
	close_page();
	for (int i = 0; i < MAX_OUTPUTS; i++) {
		if (outputs[i])
			FED_Destroy(outputs[i]);
		outputs[i] = NULL;
	}
}
