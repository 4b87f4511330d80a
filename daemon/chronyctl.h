/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chronyctl.h - talk to chronyd over its Unix command socket.
 *
 * Two layers.  The protocol layer (CCL_Make*, CCL_DecodeReply, CCL_Float*)
 * is pure: it turns requests into datagrams and datagrams into checked,
 * decoded replies, and touches no socket, so it is unit-tested byte for byte.
 * The client layer owns a socket bound next to chronyd's and offers a
 * blocking exchange for tools and tests (CCL_Request) and non-blocking
 * sequences driven by a libevent base for the daemon (CCL_Start*).
 *
 * Wire format: chrony's command protocol version 6 (chronyd 4.x), network
 * byte order, described in NOTES.md; numbers below are chrony's.
 */
#ifndef VMCLOCKD_CHRONYCTL_H
#define VMCLOCKD_CHRONYCTL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct event_base;

/* ---- protocol constants ------------------------------------------------ */

#define CCL_PROTO_VERSION 6
#define CCL_PKT_REQUEST 1
#define CCL_PKT_REPLY 2

/* Request codes used here. */
#define CCL_REQ_BURST 3
#define CCL_REQ_DFREQ 31
#define CCL_REQ_TRACKING 33
#define CCL_REQ_MAKESTEP 43
#define CCL_REQ_MODIFY_MAKESTEP 50
#define CCL_REQ_RESET_SOURCES 66
#define CCL_REQ_DOFFSET2 71

/* Reply formats used here. */
#define CCL_RPY_NULL 1
#define CCL_RPY_TRACKING 5

/* chronyd's status codes. */
#define CCL_STT_SUCCESS 0
#define CCL_STT_FAILED 1
#define CCL_STT_UNAUTH 2
#define CCL_STT_INVALID 3
#define CCL_STT_NOSUCHSOURCE 4
#define CCL_STT_INVALIDTS 5
#define CCL_STT_NOTENABLED 6
#define CCL_STT_BADSUBNET 7
#define CCL_STT_ACCESSALLOWED 8
#define CCL_STT_ACCESSDENIED 9
#define CCL_STT_NOHOSTACCESS 10
#define CCL_STT_SOURCEALREADYKNOWN 11
#define CCL_STT_TOOMANYSOURCES 12
#define CCL_STT_NORTC 13
#define CCL_STT_BADRTCFILE 14
#define CCL_STT_INACTIVE 15
#define CCL_STT_BADSAMPLE 16
#define CCL_STT_INVALIDAF 17
#define CCL_STT_BADPKTVERSION 18
#define CCL_STT_BADPKTLENGTH 19
#define CCL_STT_INVALIDNAME 21

/* Sizes on the wire. */
#define CCL_REQUEST_HEADER_LEN 20
#define CCL_REPLY_HEADER_LEN 28
#define CCL_TRACKING_REPLY_LEN 104
#define CCL_MAX_REQUEST_LEN 128
#define CCL_MAX_REPLY_LEN 512

/* Leap status values in the tracking report. */
#define CCL_LEAP_NORMAL 0
#define CCL_LEAP_INSERT 1
#define CCL_LEAP_DELETE 2
#define CCL_LEAP_UNSYNCHRONISED 3

/* ---- chrony's 32-bit Float ---------------------------------------------- */

/* value = coef * 2^(exp - 25), exp a 7-bit and coef a 25-bit two's complement
 * number, exp in the top bits.  Values are in host order here; the packet
 * code stores them big-endian.  Encoding rounds to the nearest representable
 * value (24 significant bits), saturates beyond about +-4.6e18, flushes below
 * about 1.6e-27 to zero, and stores NaN as zero. */
uint32_t CCL_FloatEncode(double x);
double CCL_FloatDecode(uint32_t f);

/* ---- requests ----------------------------------------------------------- */

/* One encoded request, ready to send: header, data and the zero padding that
 * makes it as long as the reply (chronyd ignores shorter requests). */
typedef struct {
	uint8_t data[CCL_MAX_REQUEST_LEN];
	size_t length;
	uint16_t command;
	uint16_t attempt;
	uint32_t sequence;
} CCL_Packet;

/* Each Make function fills a whole packet with sequence 0 and attempt 0. */
void CCL_MakeResetSources(CCL_Packet *p);
void CCL_MakeTracking(CCL_Packet *p);
void CCL_MakeMakestep(CCL_Packet *p);
/* Relative frequency change in ppm, chrony's `dfreq` (positive: the clock
 * is made to run faster). */
void CCL_MakeDfreq(CCL_Packet *p, double dfreq_ppm);
/* Relative offset in seconds, chrony's `doffset` (positive: the clock is
 * moved backwards, i.e. it was ahead by that much). */
void CCL_MakeDoffset(CCL_Packet *p, double doffset_s);
/* Burst on every NTP source (address family unspecified, as chronyc's
 * `burst N/M` without an address). */
void CCL_MakeBurst(CCL_Packet *p, int n_good_samples, int n_total_samples);
/* chronyd's `makestep THRESHOLD LIMIT`: restore the step limit. */
void CCL_MakeModifyMakestep(CCL_Packet *p, int limit, double threshold_s);

/* Stamp sequence and attempt into the packet's header. */
void CCL_SetSequence(CCL_Packet *p, uint32_t sequence, uint16_t attempt);

/* The reply format chronyd answers this command with when it succeeds. */
uint16_t CCL_ExpectedReplyType(uint16_t command);

/* ---- replies ------------------------------------------------------------ */

typedef struct {
	uint32_t ref_id;
	uint16_t ip_family;  /* 0 unspec, 1 IPv4, 2 IPv6, 3 ID */
	uint8_t ip_addr[16]; /* IPv4 in the first 4 bytes, network order */
	uint16_t stratum;
	uint16_t leap_status; /* CCL_LEAP_* */
	struct timespec ref_time;
	double current_correction; /* s; chronyc's "System time": > 0 means
                                    the system clock is slow (behind) */
	double last_offset;        /* s */
	double rms_offset;         /* s */
	double freq_ppm;           /* chrony's absolute frequency (> 0 fast) */
	double resid_freq_ppm;
	double skew_ppm;
	double root_delay;           /* s */
	double root_dispersion;      /* s */
	double last_update_interval; /* s */
} CCL_Tracking;

typedef struct {
	uint16_t command;
	uint16_t reply_type;
	uint16_t status; /* chronyd's CCL_STT_* */
	uint32_t sequence;
	int have_tracking;
	CCL_Tracking tracking;
	/* Filled by the client, not by CCL_DecodeReply: */
	int64_t rtt_ns;          /* CLOCK_MONOTONIC, last send to reply */
	struct timespec tx_real; /* CLOCK_REALTIME at the last send */
	struct timespec rx_real; /* CLOCK_REALTIME at receipt */
	int attempts;            /* sends made for this exchange */
} CCL_Reply;

typedef enum {
	CCL_DEC_OK = 0,
	CCL_DEC_SHORT,      /* shorter than its format */
	CCL_DEC_PKT_TYPE,   /* not a reply */
	CCL_DEC_VERSION,    /* another protocol version */
	CCL_DEC_COMMAND,    /* answers another command */
	CCL_DEC_SEQUENCE,   /* answers another (stale) request */
	CCL_DEC_STATUS,     /* well-formed, chronyd refused: see status */
	CCL_DEC_REPLY_TYPE, /* success but an unexpected format */
} CCL_DecodeResult;

/* Check a datagram against the request it should answer and decode it.
 * On CCL_DEC_OK and CCL_DEC_STATUS the header fields of *reply are valid. */
CCL_DecodeResult CCL_DecodeReply(const CCL_Packet *request, const void *buf, size_t len,
				 CCL_Reply *reply);
const char *CCL_DecodeResultName(CCL_DecodeResult r);

/* chronyd's status as an errno value (0 for success) and as a short name. */
int CCL_StatusToErrno(uint16_t status);
const char *CCL_StatusName(uint16_t status);

/* ---- client ------------------------------------------------------------- */

typedef struct CCL_Client_Record *CCL_Client;

/* Bind <dir of chronyd_sock>/vmclockd.<pid>.sock (stale file removed, mode
 * 0666 so chronyd can answer under its own uid; a process's later clients
 * use vmclockd.<pid>.<n>.sock), non-blocking, and try to
 * connect to chronyd_sock.  A chronyd that is not there yet is no error: each
 * exchange re-connects when needed.  base may be NULL for blocking use only.
 * Returns NULL with errno set (e.g. ENAMETOOLONG, EACCES). */
CCL_Client CCL_Open(const char *chronyd_sock, struct event_base *base);
/* Cancels any operation without calling its callback, unlinks the socket. */
void CCL_Close(CCL_Client client);
const char *CCL_GetLocalPath(CCL_Client client);

/* Blocking exchange: stamps a fresh sequence, sends, polls, and resends with
 * the next attempt number after each timeout_ms (at most 3 sends in all).
 * Returns 0 on success, or a negative errno: -ENOENT / -ECONNREFUSED (no
 * chronyd), -ETIMEDOUT, -EPROTO / -EPROTONOSUPPORT (bad reply), -EBUSY (an
 * asynchronous operation is running), or -CCL_StatusToErrno(status) when
 * chronyd refused (reply->status tells which).  Non-idempotent commands
 * (DFREQ, DOFFSET2) are only resent when the previous send provably did not
 * reach chronyd; otherwise they wait 3 * timeout_ms once. */
int CCL_Request(CCL_Client client, CCL_Packet *request, CCL_Reply *reply, int timeout_ms);

/* ---- asynchronous operations ------------------------------------------- */

typedef enum {
	CCL_STEP_NONE = 0,
	CCL_STEP_RESET,
	CCL_STEP_TRACKING,
	CCL_STEP_DFREQ,
	CCL_STEP_DOFFSET,
	CCL_STEP_BURST,
	CCL_STEP_COUNT
} CCL_Step;

typedef enum {
	CCL_STATE_NOT_RUN = 0, /* never sent */
	CCL_STATE_SKIPPED,     /* not requested */
	CCL_STATE_DONE,        /* chronyd confirmed */
	CCL_STATE_FAILED,      /* chronyd refused, or it never got it */
	CCL_STATE_UNKNOWN,     /* sent, never answered: may have applied */
} CCL_StepState;

const char *CCL_StepName(CCL_Step step);

typedef struct {
	int ok;
	CCL_Step failed_step; /* CCL_STEP_NONE when ok */
	int error;            /* errno value, 0 when ok */
	int status;           /* chronyd's status of the failed step, -1 none */
	const char *reason;   /* static text for logs */
	int64_t duration_ns;  /* start to completion, CLOCK_MONOTONIC */
	CCL_StepState state[CCL_STEP_COUNT];
	int64_t rtt_ns[CCL_STEP_COUNT]; /* round trip of each step that completed */
	int attempts;                   /* datagrams sent in all */
	int discarded;                  /* stale or foreign replies dropped */
	int have_correction;
	double correction;     /* c: tracking's current correction after
                                    the reset, s */
	CCL_Tracking tracking; /* that tracking report */
	int have_offset;
	double offset;  /* o as returned by offset_fn, s */
	double doffset; /* what was sent: -(o - c), s */
} CCL_Result;

typedef void (*CCL_DoneFn)(const CCL_Result *result, void *arg);
/* Device time minus system time, in seconds, now.  Non-finite: no sample,
 * the handover fails at CCL_STEP_DOFFSET with ENODATA. */
typedef double (*CCL_OffsetFn)(void *arg);

typedef struct {
	int have_dfreq;
	double dfreq_ppm;       /* -(P1/P0 - 1) * 1e6, see NOTES.md */
	CCL_OffsetFn offset_fn; /* NULL: no doffset */
	void *offset_arg;
	int timeout_ms; /* per request; 0: CCL_DEFAULT_TIMEOUT_MS */
	int max_tries;  /* per step; 0: CCL_DEFAULT_TRIES */
} CCL_HandoverParams;

#define CCL_DEFAULT_TIMEOUT_MS 100
#define CCL_DEFAULT_TRIES 3

/* reset sources -> tracking (c) -> dfreq -> doffset2(-(o - c)), with o read
 * from offset_fn just before that request is sent.  Needs an event base.
 * done() runs from the event loop, exactly once, unless CCL_Cancel or
 * CCL_Close comes first; it may start the next operation or close the
 * client.  Returns 0, or -1 with errno EBUSY (an operation is running) or
 * EINVAL (no event base).  When a retried handover follows a failed one,
 * the caller must drop have_dfreq if result->state[CCL_STEP_DFREQ] was DONE
 * or UNKNOWN: dfreq is relative and would otherwise apply twice. */
int CCL_StartHandover(CCL_Client client, const CCL_HandoverParams *p, CCL_DoneFn done, void *arg);
/* reset sources alone. */
int CCL_StartReset(CCL_Client client, CCL_DoneFn done, void *arg);
/* tracking alone: the report arrives in result->tracking. */
int CCL_StartTracking(CCL_Client client, CCL_DoneFn done, void *arg);
/* burst 4/8 on all NTP sources.  With none configured chronyd answers
 * NOSUCHSOURCE: error ESRCH, which is not worth retrying. */
int CCL_StartBurst(CCL_Client client, CCL_DoneFn done, void *arg);
/* Drop the running operation, if any, without calling its callback. */
void CCL_Cancel(CCL_Client client);
int CCL_IsBusy(CCL_Client client);

#endif /* VMCLOCKD_CHRONYCTL_H */
