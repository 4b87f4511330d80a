/* SPDX-License-Identifier: BSD-2-Clause
 *
 * textfile.c - the metrics file for node_exporter's textfile collector.
 *
 * The collector reads every *.prom file of its directory at each scrape: a
 * file it reads must be complete, so the text goes to "<metrics-file>.tmp"
 * (which the collector ignores), created afresh (whatever is at that name
 * removed first, then O_EXCL and O_NOFOLLOW: a link planted in between is
 * an error, never followed) and renamed over the file once written and
 * flushed.  A failure is logged when it starts
 * and when it ends, and tried again at the next interval.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "textfile.h"
#include "../common/metrics.h"
#include "../common/timeutil.h"

static const CNF_Settings *cfg;
static vmclock_truth_t *truth; /* opened on the first write after a (re)start */
static uint64_t due_ns;         /* CLOCK_MONOTONIC of the next periodic write */
static unsigned long seen_disruptions;
static bool seen_handling;
static LOG_Repeat write_failing;

void TXF_Initialise(const CNF_Settings *settings)
{
	cfg = settings;
	due_ns = 0;
}

void TXF_Finalise(void)
{
	vmclock_truth_close(truth);
	truth = NULL;
	cfg = NULL;
}

void TXF_Reconfigure(const CNF_Settings *fresh)
{
	/* The device or the published state may have moved. */
	vmclock_truth_close(truth);
	truth = NULL;
	due_ns = 0;
}

/* Writes the metrics to tmp and renames it over the file; 0, or a negative
 * errno value. */
static int replace(const char *tmp)
{
	MTR_View v;
	FILE *f;
	int fd, err = 0;

	if (!truth && !(truth = vmclock_truth_open(cfg->device, cfg->publish_file)))
		return errno ? -errno : -ENOMEM;
	MTR_TakeView(truth, cfg->device, true, &v);
	(void)unlink(tmp); /* a leftover of a daemon that died here */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		err = -errno;
		close(fd);
		(void)unlink(tmp);
		return err;
	}
	errno = 0;
	MTR_Write(f, &v);
	if (fflush(f) != 0 || ferror(f))
		err = errno ? -errno : -EIO;
	if (fclose(f) != 0 && !err)
		err = -errno;
	if (!err && rename(tmp, cfg->metrics_file) < 0)
		err = -errno;
	if (err)
		(void)unlink(tmp);
	return err;
}

void TXF_Tick(const DSR_Report *disruptions)
{
	uint64_t now = TIM_NowNs(CLOCK_MONOTONIC);
	char *tmp;
	int err;

	if (!*cfg->metrics_file)
		return;
	if (now < due_ns && disruptions->disruptions == seen_disruptions &&
	    disruptions->handling == seen_handling)
		return;
	seen_disruptions = disruptions->disruptions;
	seen_handling = disruptions->handling;
	due_ns = now + (uint64_t)cfg->metrics_interval_ms * NSEC_PER_MSEC;
	if (asprintf(&tmp, "%s.tmp", cfg->metrics_file) < 0)
		err = -ENOMEM;
	else {
		err = replace(tmp);
		free(tmp);
	}
	if (err && LOG_RepeatFailing(&write_failing, err))
		LOG_FileState(LOGS_ERR, cfg->metrics_file, "unwritable", -err, NULL,
			      "metrics file %s not written: %s", cfg->metrics_file, strerror(-err));
	else if (!err && LOG_RepeatRecovered(&write_failing))
		LOG_FileState(LOGS_INFO, cfg->metrics_file, "written", 0, NULL,
			      "metrics file %s written again", cfg->metrics_file);
}
