/* SPDX-License-Identifier: BSD-2-Clause
 *
 * config.h - vmclockd's settings: defaults, /etc/vmclockd.conf, command line.
 *
 * Every long option but --config, --foreground and --check-config is also a
 * directive of the same name in the file, one per line, chrony style
 * ("interval-ms 62"), '#' starting a comment.  The command line wins over
 * the file; SIGHUP re-reads the file and applies the command line on top
 * again.
 */
#ifndef VMCLOCKD_CONFIG_H
#define VMCLOCKD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define CNF_DEFAULT_FILE SYSCONFDIR "/vmclockd.conf"

typedef struct {
	char *config_file;
	bool foreground;
	bool debug;
	bool check_config;
	char *device;          /* vmclock page */
	char *chrony_sock;     /* chronyd's SOCK refclock socket, "" for none */
	char *chrony_cmd;      /* chronyd's command socket, "" for none */
	int ntp_shm;           /* SHM unit, -1 for none */
	unsigned ntp_shm_mode; /* permission bits of the SHM segment */
	unsigned interval_ms;  /* sampling interval */
	unsigned notified_interval_ms; /* sampling interval while the device notifies */
	unsigned burst_interval_ms; /* sampling interval right after a disruption */
	unsigned burst_ms;     /* how long the burst lasts */
	uint64_t max_error_ns; /* withhold samples whose bound is larger; 0: no limit */
	bool allow_freerunning;
	char *state_dir;
	char *publish_file;    /* published state for applications, "" for none */
	unsigned chrony_poll_ms; /* how often chronyd's tracking is read */
	char *metrics_file;    /* node_exporter textfile, "" for none */
	unsigned metrics_interval_ms; /* how often it is rewritten */
	char *clockbound_shm;  /* ClockBound's segment (cbshm.h), "" for none */
	bool handover_step;    /* chronyd steps by the correction after the doffset */
	bool cross_timestamps; /* offsets from the driver's PTP clock (phc.h) */
} CNF_Settings;

/* CNF_Load's outcomes that are not a configuration (the README's error
 * policy: the only positive results): --help, --version, and a usage error
 * (an unknown option or a stray argument, said in one line). */
#define CNF_HELP 1
#define CNF_VERSION 2
#define CNF_USAGE 3
/* Defaults, then the file (if any), then the command line.  Returns 0, one
 * of the outcomes above, or a negative errno value after printing one line
 * naming the file and line or the option at fault (-EINVAL for a wrong
 * directive or value, the system's error for a file that cannot be read). */
int CNF_Load(int argc, char **argv, CNF_Settings *out);
/* Re-reads the file and the command line kept from CNF_Load, which
 * accepted that command line: 0, or a negative errno value as above. */
int CNF_Reload(CNF_Settings *out);
void CNF_Free(CNF_Settings *s);
void CNF_PrintUsage(const char *progname);

#endif /* VMCLOCKD_CONFIG_H */
