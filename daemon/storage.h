/* SPDX-License-Identifier: BSD-2-Clause
 *
 * storage.h - the marker record: what chronyd has been handed, kept in the
 * state directory across restarts and crashes of vmclockd.
 *
 * The record is the file "marker" in the state directory (state-dir), text
 * lines the man page's FILES section describes: the handled marker and
 * generation, the counter period chronyd's frequency is right for, and
 * while a handover is under way the anchor it read and a dfreq in doubt.
 * (Not the published state, publish.c's file for applications.)  This
 * module is the only code that touches the state directory.  It keeps no
 * timers: a save that failed is retried by its caller, and it says each
 * failure once per cause and the recovery once.  Return convention: 0 or a
 * negative errno value.
 */
#ifndef VMCLOCKD_STORAGE_H
#define VMCLOCKD_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The record's file in the state directory, and the temporary file each
 * save writes first. */
#define STO_FILE "marker"
#define STO_TMP_FILE STO_FILE ".tmp"
/* A larger file is not a record of ours. */
#define STO_MAX_BYTES 4096
/* Room for any record's text and its NUL (STO_Format). */
#define STO_TEXT_MAX 512

/* A counter period as the page gives it: frac / 2^(64 + shift) seconds. */
typedef struct {
	bool valid;
	uint64_t frac;
	uint8_t shift;
} STO_Period;

/* chronyd's frequency (ppm) when it was right for period. */
typedef struct {
	bool valid;
	STO_Period period;
	double freq_ppm;
} STO_Anchor;

/* A dfreq that may be in chronyd: the target marker it was sent for,
 * chronyd's period before and after it, the change as chronyd decodes it
 * and chronyd's frequency before it (both ppm). */
typedef struct {
	bool valid;
	uint64_t marker;
	STO_Period from, to;
	double dfreq_ppm;
	double freq_before_ppm;
} STO_Dfreq;

/* Exactly what the file holds.  A valid anchor's and dfreq's periods are
 * valid, with frac != 0 and shift < 64, and their frequencies finite: the
 * parser reads nothing else back. */
typedef struct {
	uint64_t marker;     /* the handled disruption marker */
	uint64_t generation; /* its vm_generation_counter */
	STO_Period period;   /* chronyd's frequency is right for it; !valid: not known */
	STO_Anchor anchor;
	STO_Dfreq dfreq;     /* in doubt */
} STO_Record;

/* Whether a period read back may be used (the caller's judgement: vmclockd
 * asks whether the page now would carry time with it). */
typedef bool (*STO_PeriodCheck)(const STO_Period *period, void *arg);

/* What STO_Parse ignored, for the caller to say. */
typedef struct {
	/* A period line the check refused (the last one's values): the
	 * record's period is not valid unless a later line passed. */
	bool period_refused;
	STO_Period refused;
	/* A dfreq or anchor line that does not parse: a dfreq may be in
	 * chronyd that cannot be resolved, or a frequency it learned cannot be
	 * told from one it had, so the record's period, anchor and dfreq are
	 * all !valid. */
	bool unreadable;
} STO_ParseNotes;

/* The record's text, NUL-terminated, into buf of len bytes: its length, as
 * snprintf (len or more: cut; STO_TEXT_MAX is always enough). */
size_t STO_Format(const STO_Record *rec, char *buf, size_t len);
/* Reads a record from text (NUL-terminated, any length; lines longer than
 * STO_MAX_BYTES are ignored, as are lines not understood).  A later line
 * replaces an earlier one of the same kind.  True if text has a marker
 * line, the one line a record cannot do without; *out and *notes are
 * filled in either way. */
bool STO_Parse(const char *text, STO_PeriodCheck check, void *arg, STO_Record *out,
	       STO_ParseNotes *notes);

typedef enum {
	STO_FOUND = 0,
	STO_NOT_FOUND,   /* no directory or no file: nothing saved yet */
	STO_UNUSABLE,    /* there, but not a record of ours (said why) */
} STO_Status;

/* The state directory's path is copied; its directory is created at the
 * first save if it is missing.  -ENOMEM (logged) if it cannot be copied. */
int STO_Initialise(const char *state_dir);
void STO_Finalise(void);
/* A new path (a reload): saves go there from now on.  -ENOMEM (logged, the
 * old path kept) if it cannot be copied. */
int STO_Reconfigure(const char *state_dir);
/* The record saved, if the directory is vmclockd's alone (owner our uid,
 * writable by nobody else) and the file a regular file of at most
 * STO_MAX_BYTES with a marker line.  The notes of STO_Parse are said. */
STO_Status STO_Load(STO_Record *out, STO_PeriodCheck check, void *arg);
/* Replaces the record durably: a fresh temporary file, written and flushed
 * to the disk, renamed over the file, the directory flushed.  0, or a
 * negative errno value (-EACCES: the directory is not vmclockd's alone);
 * the file holds the last record saved, or the new one if only the last
 * flush failed. */
int STO_Save(const STO_Record *rec);

#endif /* VMCLOCKD_STORAGE_H */
