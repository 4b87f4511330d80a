/* SPDX-License-Identifier: BSD-2-Clause
 *
 * chrony_proto.c - chrony command protocol (version 6): packet encoding
 * and checked decoding.
 *
 * chronyd drops any request shorter than the reply it would send, so every
 * request is zero-padded to the length of its reply; a refused request is
 * answered with a bare 28-byte header whose status field says why (the
 * reply format field then reads RPY_NULL); replies echo the command and the
 * sequence number, not the attempt.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "chrony_proto.h"

/* Float layout: 7-bit exponent above a 25-bit coefficient. */
#define FLOAT_EXP_BITS 7
#define FLOAT_COEF_BITS 25
#define FLOAT_EXP_LOW (-(1 << (FLOAT_EXP_BITS - 1)))           /* -64 */
#define FLOAT_EXP_HIGH ((1 << (FLOAT_EXP_BITS - 1)) - 1)       /* 63 */
#define FLOAT_COEF_LIMIT (INT32_C(1) << (FLOAT_COEF_BITS - 1)) /* 2^24 */

/* Byte offsets in the request. */
#define RQ_VERSION 0
#define RQ_PKT_TYPE 1
#define RQ_COMMAND 4
#define RQ_ATTEMPT 6
#define RQ_SEQUENCE 8
#define RQ_DATA 20
#define IPADDR_LEN 20 /* 16 address bytes, u16 family, u16 pad */

/* Byte offsets in the reply. */
#define RP_VERSION 0
#define RP_PKT_TYPE 1
#define RP_COMMAND 4
#define RP_REPLY 6
#define RP_STATUS 8
#define RP_SEQUENCE 16
#define RP_DATA 28

/* Lengths of each request without padding; see CPR_Make*. */
#define NULL_REQUEST_LEN RQ_DATA
#define FLOAT_REQUEST_LEN (RQ_DATA + 4)
#define BURST_REQUEST_LEN (RQ_DATA + 2 * IPADDR_LEN + 8)

#define TV_NOHIGHSEC 0x7fffffffu

/* The tracking reply's data, by byte offset from RP_DATA. */
#define TK_REF_ID 0
/* 4: the reference's address, IPADDR_LEN bytes (not read) */
#define TK_STRATUM 24
#define TK_LEAP_STATUS 26
#define TK_REF_SEC_HIGH 28
#define TK_REF_SEC_LOW 32
#define TK_REF_NSEC 36
#define TK_CURRENT_CORRECTION 40 /* then each a chrony Float */
#define TK_LAST_OFFSET 44
#define TK_RMS_OFFSET 48
#define TK_FREQ_PPM 52
#define TK_RESID_FREQ_PPM 56
#define TK_SKEW_PPM 60
#define TK_ROOT_DELAY 64
#define TK_ROOT_DISPERSION 68
#define TK_LAST_UPDATE_INTERVAL 72

/* ================================================== */
/* Byte order helpers */

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ================================================== */
/* chrony's Float */

static uint32_t pack_float(int exponent, int32_t coef)
{
	return ((uint32_t)exponent & ((1u << FLOAT_EXP_BITS) - 1)) << FLOAT_COEF_BITS |
	       ((uint32_t)coef & ((1u << FLOAT_COEF_BITS) - 1));
}

uint32_t CPR_FloatEncode(double x)
{
	double magnitude, mantissa;
	int negative, binexp, exponent;
	int32_t coef, largest;

	if (isnan(x) || x == 0.0)
		return 0;

	negative = x < 0.0;
	magnitude = fabs(x);
	/* Two's complement allows one more step on the negative side. */
	largest = negative ? FLOAT_COEF_LIMIT : FLOAT_COEF_LIMIT - 1;

	if (isinf(magnitude)) {
		exponent = FLOAT_EXP_HIGH;
		coef = largest;
	} else {
		/* magnitude = mantissa * 2^binexp with mantissa in [0.5, 1); a coefficient
       of mantissa * 2^24 then goes with exponent binexp + 1. */
		mantissa = frexp(magnitude, &binexp);
		exponent = binexp + 1;
		coef = (int32_t)lround(ldexp(mantissa, FLOAT_COEF_BITS - 1));
		if (coef > largest) {
			/* Rounding reached 2^24, which is exactly 2^23 one exponent up. */
			coef >>= 1;
			exponent++;
		}

		if (exponent > FLOAT_EXP_HIGH) {
			exponent = FLOAT_EXP_HIGH;
			coef = largest;
		} else if (exponent < FLOAT_EXP_LOW) {
			/* Below the normal range: fewer significant bits at the lowest
         exponent, rounded from the original value. */
			exponent = FLOAT_EXP_LOW;
			coef = (int32_t)lround(ldexp(magnitude, FLOAT_COEF_BITS - FLOAT_EXP_LOW));
			if (coef == 0)
				return 0;
		}
	}

	return pack_float(exponent, negative ? -coef : coef);
}

double CPR_FloatDecode(uint32_t f)
{
	int exponent;
	int32_t coef;

	exponent = (int)(f >> FLOAT_COEF_BITS);
	if (exponent > FLOAT_EXP_HIGH)
		exponent -= 1 << FLOAT_EXP_BITS;

	coef = (int32_t)(f & ((1u << FLOAT_COEF_BITS) - 1));
	if (coef >= FLOAT_COEF_LIMIT)
		coef -= 2 * FLOAT_COEF_LIMIT;

	return ldexp((double)coef, exponent - FLOAT_COEF_BITS);
}

/* ================================================== */
/* Requests */

static void make_request(CPR_Packet *p, uint16_t command, size_t data_end)
{
	size_t reply_len;

	memset(p, 0, sizeof(*p));
	p->command = command;
	p->data[RQ_VERSION] = CPR_PROTO_VERSION;
	p->data[RQ_PKT_TYPE] = CPR_PKT_REQUEST;
	put_u16(p->data + RQ_COMMAND, command);

	/* Padding: as long as the successful reply, which is never shorter than
     an error reply. */
	reply_len = CPR_ExpectedReplyType(command) == CPR_RPY_TRACKING ? CPR_TRACKING_REPLY_LEN
								       : CPR_REPLY_HEADER_LEN;
	p->length = data_end > reply_len ? data_end : reply_len;
}

void CPR_MakeResetSources(CPR_Packet *p)
{
	make_request(p, CPR_REQ_RESET_SOURCES, NULL_REQUEST_LEN);
}

void CPR_MakeTracking(CPR_Packet *p)
{
	make_request(p, CPR_REQ_TRACKING, NULL_REQUEST_LEN);
}

void CPR_MakeDfreq(CPR_Packet *p, double dfreq_ppm)
{
	make_request(p, CPR_REQ_DFREQ, FLOAT_REQUEST_LEN);
	put_u32(p->data + RQ_DATA, CPR_FloatEncode(dfreq_ppm));
}

void CPR_MakeDoffset(CPR_Packet *p, double doffset_s)
{
	make_request(p, CPR_REQ_DOFFSET2, FLOAT_REQUEST_LEN);
	put_u32(p->data + RQ_DATA, CPR_FloatEncode(doffset_s));
}

void CPR_MakeBurst(CPR_Packet *p, int n_good_samples, int n_total_samples)
{
	uint8_t *d;

	make_request(p, CPR_REQ_BURST, BURST_REQUEST_LEN);
	d = p->data + RQ_DATA;
	/* Mask and address stay all zero: family unspecified selects every NTP
     source. */
	put_u32(d + 2 * IPADDR_LEN, (uint32_t)n_good_samples);
	put_u32(d + 2 * IPADDR_LEN + 4, (uint32_t)n_total_samples);
}

void CPR_MakeMakestep(CPR_Packet *p)
{
	make_request(p, CPR_REQ_MAKESTEP, NULL_REQUEST_LEN);
}

void CPR_SetSequence(CPR_Packet *p, uint32_t sequence, uint16_t attempt)
{
	p->sequence = sequence;
	p->attempt = attempt;
	put_u16(p->data + RQ_ATTEMPT, attempt);
	put_u32(p->data + RQ_SEQUENCE, sequence);
}

uint16_t CPR_ExpectedReplyType(uint16_t command)
{
	return command == CPR_REQ_TRACKING ? CPR_RPY_TRACKING : CPR_RPY_NULL;
}

/* ================================================== */
/* Replies */

static void decode_tracking(const uint8_t *d, CPR_Tracking *t)
{
	uint32_t sec_high;

	memset(t, 0, sizeof(*t));
	t->ref_id = get_u32(d + TK_REF_ID);
	t->stratum = get_u16(d + TK_STRATUM);
	t->leap_status = get_u16(d + TK_LEAP_STATUS);
	sec_high = get_u32(d + TK_REF_SEC_HIGH);
	if (sec_high == TV_NOHIGHSEC)
		sec_high = 0;
	t->ref_time.tv_sec = (time_t)((uint64_t)sec_high << 32 | get_u32(d + TK_REF_SEC_LOW));
	t->ref_time.tv_nsec = get_u32(d + TK_REF_NSEC);
	if (t->ref_time.tv_nsec > 999999999)
		t->ref_time.tv_nsec = 999999999;
	t->current_correction = CPR_FloatDecode(get_u32(d + TK_CURRENT_CORRECTION));
	t->last_offset = CPR_FloatDecode(get_u32(d + TK_LAST_OFFSET));
	t->rms_offset = CPR_FloatDecode(get_u32(d + TK_RMS_OFFSET));
	t->freq_ppm = CPR_FloatDecode(get_u32(d + TK_FREQ_PPM));
	t->resid_freq_ppm = CPR_FloatDecode(get_u32(d + TK_RESID_FREQ_PPM));
	t->skew_ppm = CPR_FloatDecode(get_u32(d + TK_SKEW_PPM));
	t->root_delay = CPR_FloatDecode(get_u32(d + TK_ROOT_DELAY));
	t->root_dispersion = CPR_FloatDecode(get_u32(d + TK_ROOT_DISPERSION));
	t->last_update_interval = CPR_FloatDecode(get_u32(d + TK_LAST_UPDATE_INTERVAL));
}

CPR_DecodeResult CPR_DecodeReply(const CPR_Packet *request, const void *buf, size_t len,
				 CPR_Reply *reply)
{
	const uint8_t *b = buf;
	uint16_t expected_type;

	memset(reply, 0, sizeof(*reply));

	if (len < CPR_REPLY_HEADER_LEN)
		return CPR_DEC_SHORT;
	if (b[RP_PKT_TYPE] != CPR_PKT_REPLY)
		return CPR_DEC_PKT_TYPE;

	reply->command = get_u16(b + RP_COMMAND);
	reply->reply_type = get_u16(b + RP_REPLY);
	reply->status = get_u16(b + RP_STATUS);
	reply->sequence = get_u32(b + RP_SEQUENCE);

	if (reply->command != request->command)
		return CPR_DEC_COMMAND;
	if (reply->sequence != request->sequence)
		return CPR_DEC_SEQUENCE;
	/* Checked after the echo so that an unrelated packet stays just stale; a
     chronyd speaking another version answers STT_BADPKTVERSION in its own. */
	if (b[RP_VERSION] != CPR_PROTO_VERSION)
		return CPR_DEC_VERSION;
	if (reply->status != CPR_STT_SUCCESS)
		return CPR_DEC_STATUS;

	expected_type = CPR_ExpectedReplyType(request->command);
	if (reply->reply_type != expected_type)
		return CPR_DEC_REPLY_TYPE;

	if (expected_type == CPR_RPY_TRACKING) {
		if (len < CPR_TRACKING_REPLY_LEN)
			return CPR_DEC_SHORT;
		decode_tracking(b + RP_DATA, &reply->tracking);
		reply->have_tracking = 1;
	}

	return CPR_DEC_OK;
}

const char *CPR_DecodeResultName(CPR_DecodeResult r)
{
	switch (r) {
	case CPR_DEC_OK:
		return "ok";
	case CPR_DEC_SHORT:
		return "reply too short";
	case CPR_DEC_PKT_TYPE:
		return "not a reply";
	case CPR_DEC_VERSION:
		return "protocol version mismatch";
	case CPR_DEC_COMMAND:
		return "reply to another command";
	case CPR_DEC_SEQUENCE:
		return "stale sequence number";
	case CPR_DEC_STATUS:
		return "chronyd refused the command";
	case CPR_DEC_REPLY_TYPE:
		return "unexpected reply format";
	}
	return "unknown decode result";
}

int CPR_StatusToErrno(uint16_t status)
{
	switch (status) {
	case CPR_STT_SUCCESS:
		return 0;
	case CPR_STT_UNAUTH:
		return EACCES;
	case CPR_STT_INVALID:
		return EINVAL;
	case CPR_STT_NOSUCHSOURCE:
		return ESRCH;
	case CPR_STT_INVALIDTS:
		return ERANGE;
	case CPR_STT_NOTENABLED:
		return ENOTSUP;
	case CPR_STT_INACTIVE:
		return EAGAIN;
	case CPR_STT_INVALIDAF:
		return EAFNOSUPPORT;
	case CPR_STT_BADPKTVERSION:
		return EPROTONOSUPPORT;
	case CPR_STT_BADPKTLENGTH:
		return EMSGSIZE;
	case CPR_STT_FAILED:
		return EIO;
	default:
		return EPROTO;
	}
}

const char *CPR_StatusName(uint16_t status)
{
	switch (status) {
	case CPR_STT_SUCCESS:
		return "success";
	case CPR_STT_FAILED:
		return "failed";
	case CPR_STT_UNAUTH:
		return "unauthorised";
	case CPR_STT_INVALID:
		return "invalid command";
	case CPR_STT_NOSUCHSOURCE:
		return "no such source";
	case CPR_STT_INVALIDTS:
		return "invalid timestamp";
	case CPR_STT_NOTENABLED:
		return "not enabled";
	case CPR_STT_BADSUBNET:
		return "bad subnet";
	case CPR_STT_ACCESSALLOWED:
		return "access allowed";
	case CPR_STT_ACCESSDENIED:
		return "access denied";
	case CPR_STT_NOHOSTACCESS:
		return "no host access";
	case CPR_STT_SOURCEALREADYKNOWN:
		return "source already known";
	case CPR_STT_TOOMANYSOURCES:
		return "too many sources";
	case CPR_STT_NORTC:
		return "no RTC";
	case CPR_STT_BADRTCFILE:
		return "bad RTC file";
	case CPR_STT_INACTIVE:
		return "inactive";
	case CPR_STT_BADSAMPLE:
		return "bad sample";
	case CPR_STT_INVALIDAF:
		return "invalid address family";
	case CPR_STT_BADPKTVERSION:
		return "bad packet version";
	case CPR_STT_BADPKTLENGTH:
		return "bad packet length";
	case CPR_STT_INVALIDNAME:
		return "invalid name";
	}
	return "unknown status";
}

bool CPR_IsIdempotent(uint16_t command)
{
	return command != CPR_REQ_DFREQ && command != CPR_REQ_DOFFSET2 &&
	       command != CPR_REQ_MAKESTEP;
}
