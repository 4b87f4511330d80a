/* SPDX-License-Identifier: BSD-2-Clause
 *
 * main.c - vmclockd: start-up, the event loop, signals, shutdown.
 *
 * Modules are initialised in dependency order and finalised in reverse;
 * a fatal error before the loop exits without running teardown of modules
 * that never started.  Signals are libevent events: handlers only note what
 * happened, the loop does the work.
 *
 * Data flows one way, and this file does the wiring:
 *
 *   sampler --(page copy, offset)--> disrupt --(report)--> chronysync
 *      |                         (the disruption        |
 *      |                          state machine)        |
 *      +--(report)--------------------> publish <--(report)-----+
 *                                       |  then, with disrupt's report
 *                                       v
 *                                   textfile (reads the state back)
 *
 * The sampler produces a sample and a report per tick and hands them on
 * through hooks; nothing calls back into it.  What the disruption module
 * needs of the page it has from the next tick (the doffset's offset), or
 * asks for in its verdict (ticks close together while a handover may want
 * that offset, the burst after one).  No module includes the header of one
 * of its consumers (tests/test-layering.sh).
 */
#include "autoconfig.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "chronysync.h"
#include "config.h"
#include "disrupt.h"
#include "evbase.h"
#include "log.h"
#include "notify.h"
#include "publish.h"
#include "sampler.h"
#include "storage.h"
#include "textfile.h"

static CNF_Settings settings;
static struct event_base *base;

/* ---- the wiring ---------------------------------------------------------- */

static SMP_Verdict observe_page(const struct vmclock_abi *page,
				const struct vmclock_offset *offset, POL_Reason judged,
				double offset_s, void *arg)
{
	DSR_Verdict v = DSR_Observe(page, offset, judged, offset_s);

	return (SMP_Verdict){ .withhold = v.withhold, .tick_ms = v.tick_ms };
}

static void tick_done(const SMP_Report *report, void *arg)
{
	CSY_Tick();
	PUB_Tick(report, DSR_GetReport(), CSY_GetReport());
	TXF_Tick(DSR_GetReport());
	NTF_Ticked();
}

static void chrony_updated(const CSY_Report *report, void *arg)
{
	PUB_ChronyUpdated(report);
}

static const SMP_Hooks sampler_hooks = { .observe = observe_page, .tick_done = tick_done };
static const CSY_Hooks chronysync_hooks = { .updated = chrony_updated };

/* In dependency order: each module after those whose reports it consumes
 * (the sampler's hooks run only from the loop, after all have started).  A module that cannot start is a fatal start-up error,
 * after the line saying why. */
static void start_modules(void)
{
	if (SMP_Initialise(base, &settings, &sampler_hooks) < 0 ||
	    STO_Initialise(settings.state_dir) < 0 ||
	    DSR_Initialise(base, &settings) < 0 ||
	    CSY_Initialise(base, &settings, DSR_GetReport(), &chronysync_hooks) < 0)
		LOG_FATAL("vmclockd not started");
	PUB_Initialise(&settings);
	TXF_Initialise(&settings);
}

static void stop_modules(void)
{
	TXF_Finalise();
	PUB_Finalise();
	CSY_Finalise();
	DSR_Finalise();
	STO_Finalise();
	SMP_Finalise();
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	LOG(LOGS_INFO, "signal %d: exiting", (int)sig);
	event_base_loopbreak(base);
}

/* A reload that cannot be taken leaves the running configuration as it was. */
static void reload_refused(CNF_Settings *fresh)
{
	LOG_Event(LOGS_ERR, NULL, (const char *[]){ "RELOAD=refused", NULL },
		  "configuration not reloaded: keeping the running one");
	CNF_Free(fresh);
	NTF_Reloaded();
}

static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
	CNF_Settings fresh;
	int sampling;

	NTF_Reloading();
	if (CNF_Reload(&fresh) < 0) {
		reload_refused(&fresh);
		return;
	}
	/* Nothing stops: what did not change goes on untouched (the page is
	 * sampled, the state file's heartbeat kept, the outputs fed), and an
	 * output that cannot be created leaves everything as it was. */
	if ((sampling = SMP_Reconfigure(&fresh)) < 0) {
		reload_refused(&fresh);
		return;
	}
	CSY_Reconfigure(&fresh);
	PUB_Reconfigure(&fresh);
	TXF_Reconfigure(&fresh);
	CNF_Free(&settings);
	settings = fresh;
	LOG_Initialise(settings.debug, false);
	/* Out of memory: the marker record stays where it was (said). */
	(void)STO_Reconfigure(settings.state_dir);
	DSR_Reconfigure(&settings);
	/* Another device is another clock: what chronyd learned from the old
	 * one must not be mixed with the new one's samples. */
	if (sampling == 1)
		DSR_SourceChanged();
	LOG_Event(LOGS_INFO, NULL, (const char *[]){ "RELOAD=applied", NULL }, "configuration reloaded");
	NTF_Reloaded();
}

int main(int argc, char **argv)
{
	struct event *sig_term, *sig_int, *sig_hup;
	int r;

	r = CNF_Load(argc, argv, &settings);
	if (r == CNF_HELP) {
		CNF_PrintUsage("vmclockd");
		return 0;
	}
	if (r == CNF_VERSION) {
		printf("vmclockd %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (r == CNF_USAGE)
		return 2;
	if (r < 0)
		return 1;
	if (settings.check_config) {
		printf("vmclockd: configuration OK\n");
		CNF_Free(&settings);
		return 0;
	}
	LOG_Initialise(settings.debug, false);
	signal(SIGPIPE, SIG_IGN);
	umask(0022);

	base = EVB_New();
	if (!base)
		LOG_FATAL("cannot create the event loop");
	LOG_AttachLoop(base);

	sig_term = evsignal_new(base, SIGTERM, stop_cb, NULL);
	sig_int = evsignal_new(base, SIGINT, stop_cb, NULL);
	sig_hup = evsignal_new(base, SIGHUP, reload_cb, NULL);
	if (!sig_term || !sig_int || !sig_hup || event_add(sig_term, NULL) < 0 ||
	    event_add(sig_int, NULL) < 0 || event_add(sig_hup, NULL) < 0)
		LOG_FATAL("cannot handle signals");

	NTF_Initialise(base);
	start_modules();
	LOG(LOGS_INFO, "vmclockd " PACKAGE_VERSION " started: page %s, chrony %s / %s, interval %u ms",
	    settings.device, *settings.chrony_sock ? settings.chrony_sock : "-",
	    *settings.chrony_cmd ? settings.chrony_cmd : "-", settings.interval_ms);

	event_base_dispatch(base);

	NTF_Stopping();
	stop_modules();
	NTF_Finalise();
	event_free(sig_hup);
	event_free(sig_int);
	event_free(sig_term);
	LOG_DetachLoop();
	event_base_free(base);
	CNF_Free(&settings);
	LOG_Finalise();
	return 0;
}
