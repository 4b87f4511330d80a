/* SPDX-License-Identifier: BSD-2-Clause
 *
 * metrics.c - the daemon's and the device's state at one instant, and its
 * Prometheus text, for vmclockctl and vmclockd alike.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "metrics.h"
#include "timeutil.h"

static void state_to_native(struct vmclockd_state *s)
{
	s->magic = vmclock_le32(s->magic);
	s->version = vmclock_le16(s->version);
	s->size = vmclock_le16(s->size);
	s->seq_count = vmclock_le32(s->seq_count);
	s->heartbeat_timeout_ms = vmclock_le16(s->heartbeat_timeout_ms);
	s->heartbeat_realtime_ns = vmclock_le64(s->heartbeat_realtime_ns);
	s->heartbeat_monotonic_ns = vmclock_le64(s->heartbeat_monotonic_ns);
	s->disruption_marker = vmclock_le64(s->disruption_marker);
	s->vm_generation_counter = vmclock_le64(s->vm_generation_counter);
	s->error_bound_ns = vmclock_le64(s->error_bound_ns);
	s->error_bound_realtime_ns = vmclock_le64(s->error_bound_realtime_ns);
	s->drift_ppb = vmclock_le32(s->drift_ppb);
	s->last_offset_ns = (int64_t)vmclock_le64((uint64_t)s->last_offset_ns);
	s->last_disruption_realtime_ns = vmclock_le64(s->last_disruption_realtime_ns);
	s->disruptions = vmclock_le64(s->disruptions);
	s->samples_fed = vmclock_le64(s->samples_fed);
	for (int i = 0; i < VMCLOCKD_STATE_REASONS; i++)
		s->withheld[i] = vmclock_le64(s->withheld[i]);
}

void MTR_TakeView(const vmclock_truth_t *truth, const char *device, bool want_offset, MTR_View *v)
{
	vmclock_t *vc;

	memset(v, 0, sizeof(*v));
	vmclock_timestamp(truth, &v->ts);
	if (vmclock_daemon_state(truth, &v->st) == 0) {
		uint64_t now = TIM_TimespecToNs(&v->ts.time);

		state_to_native(&v->st);
		v->heartbeat_age_ns = (int64_t)(now - v->st.heartbeat_realtime_ns);
		v->fresh = now >= v->st.heartbeat_realtime_ns &&
			   now - v->st.heartbeat_realtime_ns <=
				   (uint64_t)v->st.heartbeat_timeout_ms * 1000000u;
	} else {
		v->state_err = errno;
	}
	vc = vmclock_open(device);
	if (vc) {
		v->have_page = vmclock_snapshot(vc, &v->page) == 0;
		v->have_offset = v->have_page && want_offset && vmclock_offset(vc, &v->off) == 0;
		vmclock_close(vc);
	}
}

/* Text exposition format 0.0.4, for node_exporter's textfile collector.
 * Label values and help texts are escaped as the format asks, although
 * every one printed here is a name of our own. */
static void prom_escaped(FILE *f, const char *s, bool label)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '"' && label)
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

static void prom_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	prom_escaped(f, help, false);
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

/* One sample; label may be NULL. */
static void prom_sample(FILE *f, const char *name, const char *label, const char *value,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void prom_sample(FILE *f, const char *name, const char *label, const char *value,
			const char *fmt, ...)
{
	va_list ap;

	fputs(name, f);
	if (label) {
		fprintf(f, "{%s=\"", label);
		prom_escaped(f, value, true);
		fputs("\"}", f);
	}
	fputc(' ', f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
}

static void prom_seconds(FILE *f, const char *name, const char *label, const char *value,
			 uint64_t ns)
{
	if (ns == VMCLOCK_ERROR_UNKNOWN)
		prom_sample(f, name, label, value, "+Inf");
	else
		prom_sample(f, name, label, value, "%" PRIu64 ".%09" PRIu64, ns / NSEC_PER_SEC,
			    ns % NSEC_PER_SEC);
}

/* A gauge with one sample from the device and one from vmclockd's state,
 * each only where it could be read. */
static void prom_pair(FILE *f, const char *name, const char *help, bool have_device,
		      uint64_t device, bool have_daemon, uint64_t daemon)
{
	prom_family(f, name, "gauge", help);
	if (have_device)
		prom_sample(f, name, "source", "device", "%" PRIu64, device);
	if (have_daemon)
		prom_sample(f, name, "source", "vmclockd", "%" PRIu64, daemon);
}

static void prom_signed_seconds(FILE *f, const char *name, int64_t ns)
{
	uint64_t mag = ns < 0 ? 0 - (uint64_t)ns : (uint64_t)ns;

	prom_sample(f, name, NULL, NULL, "%s%" PRIu64 ".%09" PRIu64, ns < 0 ? "-" : "",
		    mag / NSEC_PER_SEC, mag % NSEC_PER_SEC);
}

void MTR_Write(FILE *f, const MTR_View *v)
{
	const struct vmclockd_state *s = &v->st;
	bool have_state = v->state_err == 0;

	prom_family(f, "vmclock_sync_verdict", "gauge",
		    "1 for the verdict vmclock_timestamp() gives now, 0 for the others.");
	for (int i = VMCLOCK_VERDICT_UNKNOWN; i <= VMCLOCK_VERDICT_DISRUPTED; i++)
		prom_sample(f, "vmclock_sync_verdict", "verdict", vmclock_verdict_name(i), "%d",
			    v->ts.verdict == (vmclock_verdict_t)i);
	prom_family(f, "vmclock_error_bound_seconds", "gauge",
		    "Bound on the system clock's error now (+Inf unless synchronized or freerunning).");
	prom_seconds(f, "vmclock_error_bound_seconds", NULL, NULL, v->ts.bound_ns);
	prom_family(f, "vmclock_daemon_up", "gauge",
		    "1 if vmclockd's heartbeat in its published state is fresh.");
	prom_sample(f, "vmclock_daemon_up", NULL, NULL, "%d", have_state && v->fresh);
	prom_family(f, "vmclock_device_up", "gauge", "1 if the vmclock device could be read.");
	prom_sample(f, "vmclock_device_up", NULL, NULL, "%d", v->have_page);

	prom_pair(f, "vmclock_disruption_marker",
		  "Disruption marker: the device's, and the last one vmclockd has handled.",
		  v->have_page, vmclock_le64(v->page.disruption_marker), have_state,
		  have_state ? s->disruption_marker : 0);
	prom_pair(f, "vmclock_vm_generation",
		  "VM generation counter: the device's, and the last one vmclockd has handled.",
		  v->have_page, vmclock_le64(v->page.vm_generation_counter), have_state,
		  have_state ? s->vm_generation_counter : 0);

	if (have_state) {
		prom_family(f, "vmclock_daemon_heartbeat_age_seconds", "gauge",
			    "Age of vmclockd's last heartbeat.");
		prom_signed_seconds(f, "vmclock_daemon_heartbeat_age_seconds", v->heartbeat_age_ns);
		prom_family(f, "vmclock_disruptions_total", "counter",
			    "Clock disruptions vmclockd has handled since its published state was created.");
		prom_sample(f, "vmclock_disruptions_total", NULL, NULL, "%" PRIu64, s->disruptions);
		prom_family(f, "vmclock_last_offset_seconds", "gauge",
			    "Device time minus system time of the last sample fed to the time daemon.");
		prom_signed_seconds(f, "vmclock_last_offset_seconds", s->last_offset_ns);
		prom_family(f, "vmclock_samples_fed_total", "counter",
			    "Samples vmclockd has fed to the time daemon since it started.");
		prom_sample(f, "vmclock_samples_fed_total", NULL, NULL, "%" PRIu64, s->samples_fed);
		prom_family(f, "vmclock_samples_withheld_total", "counter",
			    "Samples vmclockd has withheld since it started, by reason.");
		for (int i = MTR_FIRST_WITHHOLD_REASON; i < VMCLOCKD_STATE_REASONS; i++)
			prom_sample(f, "vmclock_samples_withheld_total", "reason",
				    vmclockd_reason_name(i), "%" PRIu64, s->withheld[i]);
	}

	if (v->have_page) {
		uint8_t cs = v->page.clock_status;
		const char *name = vmclock_status_name(cs);

		prom_family(f, "vmclock_clock_status", "gauge",
			    "1 for the host clock status the device reports, 0 for the others.");
		for (uint8_t i = VMCLOCK_STATUS_UNKNOWN; i <= VMCLOCK_STATUS_UNRELIABLE; i++)
			prom_sample(f, "vmclock_clock_status", "status", vmclock_status_name(i), "%d",
				    cs == i);
		if (!name) {
			char num[8];

			snprintf(num, sizeof(num), "%u", (unsigned)cs);
			prom_sample(f, "vmclock_clock_status", "status", num, "1");
		}
	}
	if (v->have_offset) {
		prom_family(f, "vmclock_device_time_offset_seconds", "gauge",
			    "Device UTC minus CLOCK_REALTIME.");
		prom_signed_seconds(f, "vmclock_device_time_offset_seconds", v->off.offset_ns);
		if (v->off.time.maxerror_ns != VMCLOCK_ERROR_UNKNOWN) {
			prom_family(f, "vmclock_device_max_error_seconds", "gauge",
				    "The device's maximum error of its time now.");
			prom_seconds(f, "vmclock_device_max_error_seconds", NULL, NULL,
				     v->off.time.maxerror_ns);
		}
	}
}
