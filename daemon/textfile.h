/* SPDX-License-Identifier: BSD-2-Clause
 *
 * textfile.h - vmclockd's metrics for node_exporter's textfile collector.
 *
 * With metrics-file set, the file is replaced whole (a temporary file beside
 * it, renamed over it) on the first tick after metrics-interval-ms has
 * passed, and at once on the tick that detects a disruption or finishes its
 * handover.  Its text is `vmclockctl metrics`'s (common/metrics.c), read back
 * through libvmclock from the device and the published state, so that the
 * metrics say what applications are told.  The file is left behind when
 * vmclockd stops: its age (node_exporter's node_textfile_mtime_seconds) is
 * what tells a daemon that is down.  A pure consumer like publish.c: main.c
 * calls it after the published state has been written.
 */
#ifndef VMCLOCKD_TEXTFILE_H
#define VMCLOCKD_TEXTFILE_H

#include "config.h"
#include "disrupt.h"

/* settings stays valid (and is read) until TXF_Finalise. */
void TXF_Initialise(const CNF_Settings *settings);
void TXF_Finalise(void);
/* Before a reload replaces the settings with fresh: the next tick writes,
 * reading the paths fresh names. */
void TXF_Reconfigure(const CNF_Settings *fresh);
/* After every tick of the sampler, once the published state is written. */
void TXF_Tick(const DSR_Report *disruptions);

#endif /* VMCLOCKD_TEXTFILE_H */
