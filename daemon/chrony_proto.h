/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chrony_proto.h - chrony's command protocol: requests out, checked replies in.
 *
 * Pure encoding and decoding: no socket, no clock, so it is unit-tested
 * byte for byte and fuzzed (fuzz/fuzz_chrony_reply.c).  The client that
 * sends these packets is chrony_client.c.
 *
 * Wire format: chrony's command protocol version 6 (chronyd 4.x), network
 * byte order, described in docs/internals.md; numbers below are chrony's.
 */
#ifndef VMCLOCKD_CHRONY_PROTO_H
#define VMCLOCKD_CHRONY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- protocol constants ------------------------------------------------ */

#define CPR_PROTO_VERSION 6
#define CPR_PKT_REQUEST 1
#define CPR_PKT_REPLY 2

/* Request codes used here. */
#define CPR_REQ_BURST 3
#define CPR_REQ_DFREQ 31
#define CPR_REQ_TRACKING 33
#define CPR_REQ_MAKESTEP 43
#define CPR_REQ_RESET_SOURCES 66
#define CPR_REQ_DOFFSET2 71

/* Reply formats used here. */
#define CPR_RPY_NULL 1
#define CPR_RPY_TRACKING 5

/* chronyd's status codes. */
#define CPR_STT_SUCCESS 0
#define CPR_STT_FAILED 1
#define CPR_STT_UNAUTH 2
#define CPR_STT_INVALID 3
#define CPR_STT_NOSUCHSOURCE 4
#define CPR_STT_INVALIDTS 5
#define CPR_STT_NOTENABLED 6
#define CPR_STT_BADSUBNET 7
#define CPR_STT_ACCESSALLOWED 8
#define CPR_STT_ACCESSDENIED 9
#define CPR_STT_NOHOSTACCESS 10
#define CPR_STT_SOURCEALREADYKNOWN 11
#define CPR_STT_TOOMANYSOURCES 12
#define CPR_STT_NORTC 13
#define CPR_STT_BADRTCFILE 14
#define CPR_STT_INACTIVE 15
#define CPR_STT_BADSAMPLE 16
#define CPR_STT_INVALIDAF 17
#define CPR_STT_BADPKTVERSION 18
#define CPR_STT_BADPKTLENGTH 19
#define CPR_STT_INVALIDNAME 21

/* Sizes on the wire. */
#define CPR_REQUEST_HEADER_LEN 20
#define CPR_REPLY_HEADER_LEN 28
#define CPR_TRACKING_REPLY_LEN 104
#define CPR_MAX_REQUEST_LEN 128
#define CPR_MAX_REPLY_LEN 512

/* Leap status values in the tracking report. */
#define CPR_LEAP_NORMAL 0
#define CPR_LEAP_INSERT 1
#define CPR_LEAP_DELETE 2
#define CPR_LEAP_UNSYNCHRONISED 3

/* ---- chrony's 32-bit Float ---------------------------------------------- */

/* value = coef * 2^(exp - 25), exp a 7-bit and coef a 25-bit two's complement
 * number, exp in the top bits.  Values are in host order here; the packet
 * code stores them big-endian.  Encoding rounds to the nearest representable
 * value (24 significant bits), saturates beyond about +-4.6e18, flushes below
 * about 1.6e-27 to zero, and stores NaN as zero. */
uint32_t CPR_FloatEncode(double x);
double CPR_FloatDecode(uint32_t f);

/* ---- requests ----------------------------------------------------------- */

/* One encoded request, ready to send: header, data and the zero padding that
 * makes it as long as the reply (chronyd ignores shorter requests). */
typedef struct {
	uint8_t data[CPR_MAX_REQUEST_LEN];
	size_t length;
	uint16_t command;
	uint16_t attempt;
	uint32_t sequence;
} CPR_Packet;

/* Each Make function fills a whole packet with sequence 0 and attempt 0. */
void CPR_MakeResetSources(CPR_Packet *p);
void CPR_MakeTracking(CPR_Packet *p);
/* Relative frequency change in ppm, chrony's `dfreq`, in chrony's sense of
 * frequency: positive means the clock was found running fast (it gained),
 * which chronyd corrects by making it run slower; negative, faster. */
void CPR_MakeDfreq(CPR_Packet *p, double dfreq_ppm);
/* Relative offset in seconds, chrony's `doffset` (positive: the clock is
 * moved backwards, i.e. it was ahead by that much). */
void CPR_MakeDoffset(CPR_Packet *p, double doffset_s);
/* Burst on every NTP source (address family unspecified, as chronyc's
 * `burst N/M` without an address). */
void CPR_MakeBurst(CPR_Packet *p, int n_good_samples, int n_total_samples);
/* chronyc's `makestep` without arguments: chronyd cancels the correction it
 * is slewing and steps its clock by all of it at once.  Answered with a bare
 * header, status "failed" when the clock cannot be stepped (chronyd -x, or
 * the step refused). */
void CPR_MakeMakestep(CPR_Packet *p);

/* Stamp sequence and attempt into the packet's header. */
void CPR_SetSequence(CPR_Packet *p, uint32_t sequence, uint16_t attempt);

/* The reply format chronyd answers this command with when it succeeds. */
uint16_t CPR_ExpectedReplyType(uint16_t command);

/* ---- replies ------------------------------------------------------------ */

typedef struct {
	uint32_t ref_id;
	uint16_t stratum;
	uint16_t leap_status; /* CPR_LEAP_* */
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
} CPR_Tracking;

typedef struct {
	uint16_t command;
	uint16_t reply_type;
	uint16_t status; /* chronyd's CPR_STT_* */
	uint32_t sequence;
	int have_tracking;
	CPR_Tracking tracking;
} CPR_Reply;

typedef enum {
	CPR_DEC_OK = 0,
	CPR_DEC_SHORT,      /* shorter than its format */
	CPR_DEC_PKT_TYPE,   /* not a reply */
	CPR_DEC_VERSION,    /* another protocol version */
	CPR_DEC_COMMAND,    /* answers another command */
	CPR_DEC_SEQUENCE,   /* answers another (stale) request */
	CPR_DEC_STATUS,     /* well-formed, chronyd refused: see status */
	CPR_DEC_REPLY_TYPE, /* success but an unexpected format */
} CPR_DecodeResult;

/* Check a datagram against the request it should answer and decode it.
 * On CPR_DEC_OK and CPR_DEC_STATUS the header fields of *reply are valid. */
CPR_DecodeResult CPR_DecodeReply(const CPR_Packet *request, const void *buf, size_t len,
				 CPR_Reply *reply);
const char *CPR_DecodeResultName(CPR_DecodeResult r);

/* chronyd's status as an errno value (0 for success) and as a short name. */
int CPR_StatusToErrno(uint16_t status);
const char *CPR_StatusName(uint16_t status);

/* DFREQ and DOFFSET2 change chronyd's state relative to what it is: one
 * that arrives twice applies twice.  MAKESTEP is not sent twice either:
 * a second one steps whatever chronyd learned in between, and a chronyd
 * whose step failed may have dropped its correction (4.3 does) while the
 * repeat reports success.  Every other request used here can be sent
 * again safely. */
bool CPR_IsIdempotent(uint16_t command);

#endif /* VMCLOCKD_CHRONY_PROTO_H */
