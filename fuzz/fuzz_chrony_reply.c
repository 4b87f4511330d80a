/* SPDX-License-Identifier: BSD-2-Clause
 *
 * fuzz_chrony_reply.c - libFuzzer target: the input is a datagram from
 * chronyd's command socket.
 *
 * Input: 4 bytes of request sequence number, 2 of attempt, then the
 * datagram.  Every request vmclockd makes (CPR_Make*, parameters from the
 * sequence bytes) is stamped with that sequence and given the datagram
 * twice through CPR_DecodeReply: as it is, and with the request's command
 * and sequence written into it, so that the fuzzer reaches the status,
 * format and tracking checks without having to guess them.  The datagram
 * sits in a buffer of exactly its length, so ASan sees any read past it.
 *
 * Checked: the result is one of the enum's values; CPR_DEC_OK only for a
 * reply that echoes the request, says success in the expected format and
 * is long enough; a tracking report only for a tracking request, with
 * nanoseconds below 10^9 and finite numbers that chrony's Float encodes
 * back to themselves.  CPR_FloatEncode is also given the input's bytes as
 * doubles: round-to-nearest within 2^-24 inside the normal range.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chrony_proto.h"
#include "fuzz.h"

#define HEADER_BYTES 6 /* sequence and attempt ahead of the datagram */

/* Reply layout (chrony's CMD_Reply), written out independently. */
enum { RP_VERSION = 0, RP_PKT_TYPE = 1, RP_COMMAND = 4, RP_REPLY = 6, RP_STATUS = 8, RP_SEQUENCE = 16 };

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void check_float_roundtrip(double x)
{
	FUZZ_CHECK(isfinite(x));
	FUZZ_CHECK(CPR_FloatDecode(CPR_FloatEncode(x)) == x);
}

static void check_tracking(const CPR_Tracking *t)
{
	FUZZ_CHECK(t->ref_time.tv_nsec >= 0 && t->ref_time.tv_nsec <= 999999999);
	check_float_roundtrip(t->current_correction);
	check_float_roundtrip(t->last_offset);
	check_float_roundtrip(t->rms_offset);
	check_float_roundtrip(t->freq_ppm);
	check_float_roundtrip(t->resid_freq_ppm);
	check_float_roundtrip(t->skew_ppm);
	check_float_roundtrip(t->root_delay);
	check_float_roundtrip(t->root_dispersion);
	check_float_roundtrip(t->last_update_interval);
}

static void decode(const CPR_Packet *req, const uint8_t *buf, size_t len)
{
	CPR_Reply reply;
	CPR_DecodeResult r;
	bool tracking = req->command == CPR_REQ_TRACKING;

	memset(&reply, 0xa5, sizeof(reply));
	r = CPR_DecodeReply(req, buf, len, &reply);
	FUZZ_CHECK(r >= CPR_DEC_OK && r <= CPR_DEC_REPLY_TYPE);
	FUZZ_CHECK(CPR_DecodeResultName(r) != NULL);
	if (len < CPR_REPLY_HEADER_LEN) {
		FUZZ_CHECK(r == CPR_DEC_SHORT);
		return;
	}
	if (buf[RP_PKT_TYPE] != CPR_PKT_REPLY) {
		FUZZ_CHECK(r == CPR_DEC_PKT_TYPE);
		return;
	}
	/* Past the packet type the header is decoded whatever follows. */
	FUZZ_CHECK(reply.command == be16(buf + RP_COMMAND));
	FUZZ_CHECK(reply.reply_type == be16(buf + RP_REPLY));
	FUZZ_CHECK(reply.status == be16(buf + RP_STATUS));
	FUZZ_CHECK(reply.sequence == be32(buf + RP_SEQUENCE));
	FUZZ_CHECK(reply.have_tracking == (r == CPR_DEC_OK && tracking));
	if (r == CPR_DEC_STATUS)
		FUZZ_CHECK(reply.status != CPR_STT_SUCCESS && CPR_StatusName(reply.status) != NULL);
	if (r != CPR_DEC_OK)
		return;
	FUZZ_CHECK(buf[RP_VERSION] == CPR_PROTO_VERSION);
	FUZZ_CHECK(reply.command == req->command && reply.sequence == req->sequence);
	FUZZ_CHECK(reply.status == CPR_STT_SUCCESS);
	FUZZ_CHECK(reply.reply_type == CPR_ExpectedReplyType(req->command));
	FUZZ_CHECK(CPR_StatusToErrno(reply.status) == 0);
	if (tracking) {
		FUZZ_CHECK(len >= CPR_TRACKING_REPLY_LEN);
		check_tracking(&reply.tracking);
	}
}

/* The request's command and sequence written into a copy of the datagram. */
static void decode_matched(const CPR_Packet *req, const uint8_t *buf, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);

	FUZZ_CHECK(copy);
	memcpy(copy, buf, len);
	if (len > RP_COMMAND + 1) {
		copy[RP_COMMAND] = (uint8_t)(req->command >> 8);
		copy[RP_COMMAND + 1] = (uint8_t)req->command;
	}
	for (int i = 0; i < 4 && RP_SEQUENCE + i < (int)len; i++)
		copy[RP_SEQUENCE + i] = (uint8_t)(req->sequence >> (24 - 8 * i));
	decode(req, copy, len);
	free(copy);
}

/* Float encoding of an arbitrary double: nearest within 2^-24 relative in
 * the normal range, saturating above it, never a NaN. */
static void check_float_encode(uint64_t bits)
{
	double x, y;

	memcpy(&x, &bits, sizeof(x));
	y = CPR_FloatDecode(CPR_FloatEncode(x));
	FUZZ_CHECK(isfinite(y));
	if (isnan(x)) {
		FUZZ_CHECK(y == 0.0);
		return;
	}
	FUZZ_CHECK(y == 0.0 || signbit(y) == signbit(x));
	if (fabs(x) >= 0x1p-60 && fabs(x) <= 0x1p61)
		FUZZ_CHECK(fabs(y - x) <= fabs(x) * 0x1p-24);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	CPR_Packet req[6];
	const uint8_t *dgram = data + (len < HEADER_BYTES ? len : HEADER_BYTES);
	size_t dlen = len - (size_t)(dgram - data);
	uint32_t seq = len >= 4 ? be32(data) : 0;
	uint16_t attempt = len >= HEADER_BYTES ? be16(data + 4) : 0;
	double param;
	const uint8_t *p = data;
	size_t n = len;

	memcpy(&param, &(uint64_t){ (uint64_t)seq << 32 | seq }, sizeof(param));
	CPR_MakeResetSources(&req[0]);
	CPR_MakeTracking(&req[1]);
	CPR_MakeDfreq(&req[2], param);
	CPR_MakeDoffset(&req[3], -param);
	CPR_MakeBurst(&req[4], (int)(seq & 0xff), (int)(seq >> 8));
	CPR_MakeMakestep(&req[5]);
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		FUZZ_CHECK(req[i].length >= CPR_REQUEST_HEADER_LEN && req[i].length <= CPR_MAX_REQUEST_LEN);
		CPR_SetSequence(&req[i], seq, attempt);
		FUZZ_CHECK(be32(req[i].data + 8) == seq && be16(req[i].data + 6) == attempt);
		decode(&req[i], dgram, dlen);
		decode_matched(&req[i], dgram, dlen);
	}

	for (int i = 0; i < 4 && n > 0; i++)
		check_float_encode(fuzz_take64(&p, &n));
	return 0;
}
