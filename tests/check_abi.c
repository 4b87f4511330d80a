/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_abi.c - the page layout, its constants and their names.
 *
 * Pages are built byte by byte at the offsets of the project's notes (see
 * testpage.h) and read back through struct vmclock_abi and through the
 * library, so a field moved, resized or re-signed in vmclock-abi.h fails here.
 */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "vmclock.h"
#include "suites.h"
#include "testpage.h"

/* Every field of the page: where the notes put it, how wide it is, and how
 * to read it through the structure by name. */
enum field {
	F_MAGIC, F_SIZE, F_VERSION, F_COUNTER_ID, F_TIME_TYPE, F_SEQ, F_MARKER, F_FLAGS,
	F_PAD0, F_PAD1, F_STATUS, F_SMEARING, F_TAI_OFFSET, F_LEAP, F_SHIFT, F_COUNTER,
	F_PERIOD, F_PERIOD_ESTERR, F_PERIOD_MAXERR, F_TIME_SEC, F_TIME_FRAC, F_TIME_ESTERR,
	F_TIME_MAXERR, F_GENERATION, F_COUNT
};

static const struct {
	const char *name;
	size_t off;
	unsigned width;
} fields[F_COUNT] = {
	[F_MAGIC] = { "magic", 0, 4 },
	[F_SIZE] = { "size", 4, 4 },
	[F_VERSION] = { "version", 8, 2 },
	[F_COUNTER_ID] = { "counter_id", 10, 1 },
	[F_TIME_TYPE] = { "time_type", 11, 1 },
	[F_SEQ] = { "seq_count", 12, 4 },
	[F_MARKER] = { "disruption_marker", 16, 8 },
	[F_FLAGS] = { "flags", 24, 8 },
	[F_PAD0] = { "pad[0]", 32, 1 },
	[F_PAD1] = { "pad[1]", 33, 1 },
	[F_STATUS] = { "clock_status", 34, 1 },
	[F_SMEARING] = { "leap_second_smearing_hint", 35, 1 },
	[F_TAI_OFFSET] = { "tai_offset_sec", 36, 2 },
	[F_LEAP] = { "leap_indicator", 38, 1 },
	[F_SHIFT] = { "counter_period_shift", 39, 1 },
	[F_COUNTER] = { "counter_value", 40, 8 },
	[F_PERIOD] = { "counter_period_frac_sec", 48, 8 },
	[F_PERIOD_ESTERR] = { "counter_period_esterror_rate_frac_sec", 56, 8 },
	[F_PERIOD_MAXERR] = { "counter_period_maxerror_rate_frac_sec", 64, 8 },
	[F_TIME_SEC] = { "time_sec", 72, 8 },
	[F_TIME_FRAC] = { "time_frac_sec", 80, 8 },
	[F_TIME_ESTERR] = { "time_esterror_nanosec", 88, 8 },
	[F_TIME_MAXERR] = { "time_maxerror_nanosec", 96, 8 },
	[F_GENERATION] = { "vm_generation_counter", 104, 8 },
};

/* The field read through the structure by its name, as an unsigned value of
 * its width (tai_offset_sec's bits, not its sign). */
static uint64_t by_name(const struct vmclock_abi *a, enum field f)
{
	switch (f) {
	case F_MAGIC: return vmclock_le32(a->magic);
	case F_SIZE: return vmclock_le32(a->size);
	case F_VERSION: return vmclock_le16(a->version);
	case F_COUNTER_ID: return a->counter_id;
	case F_TIME_TYPE: return a->time_type;
	case F_SEQ: return vmclock_le32(a->seq_count);
	case F_MARKER: return vmclock_le64(a->disruption_marker);
	case F_FLAGS: return vmclock_le64(a->flags);
	case F_PAD0: return a->pad[0];
	case F_PAD1: return a->pad[1];
	case F_STATUS: return a->clock_status;
	case F_SMEARING: return a->leap_second_smearing_hint;
	case F_TAI_OFFSET: return vmclock_le16((uint16_t)a->tai_offset_sec);
	case F_LEAP: return a->leap_indicator;
	case F_SHIFT: return a->counter_period_shift;
	case F_COUNTER: return vmclock_le64(a->counter_value);
	case F_PERIOD: return vmclock_le64(a->counter_period_frac_sec);
	case F_PERIOD_ESTERR: return vmclock_le64(a->counter_period_esterror_rate_frac_sec);
	case F_PERIOD_MAXERR: return vmclock_le64(a->counter_period_maxerror_rate_frac_sec);
	case F_TIME_SEC: return vmclock_le64(a->time_sec);
	case F_TIME_FRAC: return vmclock_le64(a->time_frac_sec);
	case F_TIME_ESTERR: return vmclock_le64(a->time_esterror_nanosec);
	case F_TIME_MAXERR: return vmclock_le64(a->time_maxerror_nanosec);
	case F_GENERATION: return vmclock_le64(a->vm_generation_counter);
	case F_COUNT: break;
	}
	abort();
}

/* A value that fills all of a field's width with distinct bytes. */
static uint64_t pattern(enum field f)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < fields[f].width; i++)
		v |= (uint64_t)(1 + ((unsigned)f * 8 + i) % 255) << (8 * i);
	return v;
}

static void put_bytes(struct testpage *p, size_t off, unsigned width, uint64_t v)
{
	/* One byte at a time, least significant first: the wire format. */
	for (unsigned i = 0; i < width; i++)
		p->b[off + i] = (uint8_t)(v >> (8 * i));
}

START_TEST(test_struct_size)
{
	ck_assert_uint_eq(sizeof(struct vmclock_abi), 112);
	ck_assert_uint_eq(VMCLOCK_ABI_SIZE, 112);
	ck_assert_uint_eq(TP_PAGE_BYTES, 112);
	/* The fields tile the structure with no gap and no overlap. */
	size_t end = 0;
	for (int f = 0; f < F_COUNT; f++) {
		ck_assert_msg(fields[f].off == end, "%s at %zu, expected %zu", fields[f].name,
			      fields[f].off, end);
		end += fields[f].width;
	}
	ck_assert_uint_eq(end, 112);
}
END_TEST

/* Each field alone, written at its byte offset: read back by name in full,
 * and every other field still reads zero. */
START_TEST(test_field_offsets)
{
	enum field f = (enum field)_i;
	struct testpage p;
	struct vmclock_abi a;

	memset(&p, 0, sizeof(p));
	put_bytes(&p, fields[f].off, fields[f].width, pattern(f));
	tp_to_abi(&p, &a);
	ck_assert_msg(by_name(&a, f) == pattern(f), "%s: read %#llx, wrote %#llx at %zu",
		      fields[f].name, (unsigned long long)by_name(&a, f),
		      (unsigned long long)pattern(f), fields[f].off);
	for (int g = 0; g < F_COUNT; g++)
		if (g != (int)f)
			ck_assert_msg(by_name(&a, (enum field)g) == 0, "writing %s changed %s",
				      fields[f].name, fields[g].name);
}
END_TEST

START_TEST(test_tai_offset_signed)
{
	struct testpage p;
	struct vmclock_abi a;

	tp_init(&p);
	tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-37);
	tp_to_abi(&p, &a);
	ck_assert_int_eq((int16_t)vmclock_le16((uint16_t)a.tai_offset_sec), -37);
	ck_assert_uint_eq(p.b[36], 0xdb);
	ck_assert_uint_eq(p.b[37], 0xff);
	tp_put16(&p, TP_TAI_OFFSET, 0x7fff);
	tp_to_abi(&p, &a);
	ck_assert_int_eq((int16_t)vmclock_le16((uint16_t)a.tai_offset_sec), 32767);
	tp_put16(&p, TP_TAI_OFFSET, 0x8000);
	tp_to_abi(&p, &a);
	ck_assert_int_eq((int16_t)vmclock_le16((uint16_t)a.tai_offset_sec), -32768);
}
END_TEST

/* A page with every field set differently, written to a file byte by byte
 * and read through the library, comes back byte for byte. */
START_TEST(test_snapshot_bytes)
{
	struct testpage p;
	struct vmclock_abi a;
	char *dir = tp_tmpdir(), *path;
	vmclock_t *vc;

	memset(&p, 0, sizeof(p));
	for (int f = 0; f < F_COUNT; f++)
		put_bytes(&p, fields[f].off, fields[f].width, pattern((enum field)f));
	/* The header must stay valid for the library to open it. */
	tp_put32(&p, TP_MAGIC, TP_MAGIC_VALUE);
	tp_put32(&p, TP_SIZE, 112);
	tp_put16(&p, TP_VERSION, 1);
	tp_put32(&p, TP_SEQ_COUNT, 0x12345678);
	p.len = 112;
	path = tp_write_file(dir, "page", &p);
	vc = vmclock_open(path);
	ck_assert_ptr_nonnull(vc);
	ck_assert_int_eq(vmclock_snapshot(vc, &a), 0);
	ck_assert_mem_eq(&a, p.b, 112);
	for (int f = 0; f < F_COUNT; f++) {
		unsigned bits = 8 * fields[f].width;
		uint64_t mask = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;

		ck_assert_msg(by_name(&a, (enum field)f) == (tp_get64(&p, fields[f].off) & mask),
			      "%s", fields[f].name);
	}
	vmclock_close(vc);
	tp_rmdir(dir);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_constants)
{
	ck_assert_uint_eq(VMCLOCK_MAGIC, TP_MAGIC_VALUE);
	/* "VCLK" in memory order. */
	struct testpage p;
	tp_init(&p);
	ck_assert_mem_eq(p.b, "VCLK", 4);
	ck_assert_uint_eq(VMCLOCK_VERSION, 1);
	ck_assert_uint_eq(VMCLOCK_COUNTER_ARM_VCNT, 0);
	ck_assert_uint_eq(VMCLOCK_COUNTER_X86_TSC, 1);
	ck_assert_uint_eq(VMCLOCK_COUNTER_INVALID, 0xff);
	ck_assert_uint_eq(VMCLOCK_TIME_UTC, 0);
	ck_assert_uint_eq(VMCLOCK_TIME_TAI, 1);
	ck_assert_uint_eq(VMCLOCK_TIME_MONOTONIC, 2);
	ck_assert_uint_eq(VMCLOCK_STATUS_UNKNOWN, 0);
	ck_assert_uint_eq(VMCLOCK_STATUS_INITIALIZING, 1);
	ck_assert_uint_eq(VMCLOCK_STATUS_SYNCHRONIZED, 2);
	ck_assert_uint_eq(VMCLOCK_STATUS_FREERUNNING, 3);
	ck_assert_uint_eq(VMCLOCK_STATUS_UNRELIABLE, 4);
	ck_assert_uint_eq(VMCLOCK_SMEARING_STRICT, 0);
	ck_assert_uint_eq(VMCLOCK_SMEARING_NOON_LINEAR, 1);
	ck_assert_uint_eq(VMCLOCK_SMEARING_UTC_SLS, 2);
	ck_assert_uint_eq(VMCLOCK_LEAP_NONE, 0);
	ck_assert_uint_eq(VMCLOCK_LEAP_PRE_POS, 1);
	ck_assert_uint_eq(VMCLOCK_LEAP_PRE_NEG, 2);
	ck_assert_uint_eq(VMCLOCK_LEAP_POS, 3);
	ck_assert_uint_eq(VMCLOCK_LEAP_POST_POS, 4);
	ck_assert_uint_eq(VMCLOCK_LEAP_POST_NEG, 5);
	ck_assert_uint_eq(VMCLOCK_ERROR_UNKNOWN, UINT64_MAX);
}
END_TEST

START_TEST(test_flag_bits)
{
	/* The kernel's numbering; the spec's 7/8 for the last two is an erratum. */
	ck_assert_uint_eq(VMCLOCK_FLAG_TAI_OFFSET_VALID, TP_FLAG(0));
	ck_assert_uint_eq(VMCLOCK_FLAG_DISRUPTION_SOON, TP_FLAG(1));
	ck_assert_uint_eq(VMCLOCK_FLAG_DISRUPTION_IMMINENT, TP_FLAG(2));
	ck_assert_uint_eq(VMCLOCK_FLAG_PERIOD_ESTERROR_VALID, TP_FLAG(3));
	ck_assert_uint_eq(VMCLOCK_FLAG_PERIOD_MAXERROR_VALID, TP_FLAG(4));
	ck_assert_uint_eq(VMCLOCK_FLAG_TIME_ESTERROR_VALID, TP_FLAG(5));
	ck_assert_uint_eq(VMCLOCK_FLAG_TIME_MAXERROR_VALID, TP_FLAG(6));
	ck_assert_uint_eq(VMCLOCK_FLAG_TIME_MONOTONIC, TP_FLAG(7));
	ck_assert_uint_eq(VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT, TP_FLAG(8));
	ck_assert_uint_eq(VMCLOCK_FLAG_NOTIFICATION_PRESENT, TP_FLAG(9));
	ck_assert_int_eq(VMCLOCK_FLAG_COUNT, 10);
}
END_TEST

/* A flag written as bit n of the little-endian u64 at offset 24 is the
 * VMCLOCK_FLAG_ constant's bit when read through the structure. */
START_TEST(test_flag_bytes)
{
	static const uint64_t flag[] = {
		VMCLOCK_FLAG_TAI_OFFSET_VALID, VMCLOCK_FLAG_DISRUPTION_SOON,
		VMCLOCK_FLAG_DISRUPTION_IMMINENT, VMCLOCK_FLAG_PERIOD_ESTERROR_VALID,
		VMCLOCK_FLAG_PERIOD_MAXERROR_VALID, VMCLOCK_FLAG_TIME_ESTERROR_VALID,
		VMCLOCK_FLAG_TIME_MAXERROR_VALID, VMCLOCK_FLAG_TIME_MONOTONIC,
		VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT, VMCLOCK_FLAG_NOTIFICATION_PRESENT,
	};
	struct testpage p;
	struct vmclock_abi a;

	for (unsigned bit = 0; bit < 10; bit++) {
		memset(&p, 0, sizeof(p));
		p.b[24 + bit / 8] = (uint8_t)(1u << (bit % 8));
		tp_to_abi(&p, &a);
		ck_assert_msg(vmclock_le64(a.flags) == flag[bit], "flag bit %u", bit);
	}
}
END_TEST

static void assert_lowercase(const char *s)
{
	ck_assert_ptr_nonnull(s);
	ck_assert(*s);
	for (; *s; s++)
		ck_assert_msg(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_',
			      "name character '%c'", *s);
}

START_TEST(test_enum_names)
{
	ck_assert_str_eq(vmclock_counter_name(0), "arm_vcnt");
	ck_assert_str_eq(vmclock_counter_name(1), "x86_tsc");
	ck_assert_str_eq(vmclock_counter_name(0xff), "invalid");
	ck_assert_str_eq(vmclock_time_type_name(0), "utc");
	ck_assert_str_eq(vmclock_time_type_name(1), "tai");
	ck_assert_str_eq(vmclock_time_type_name(2), "monotonic");
	ck_assert_str_eq(vmclock_status_name(0), "unknown");
	ck_assert_str_eq(vmclock_status_name(1), "initializing");
	ck_assert_str_eq(vmclock_status_name(2), "synchronized");
	ck_assert_str_eq(vmclock_status_name(3), "freerunning");
	ck_assert_str_eq(vmclock_status_name(4), "unreliable");
	ck_assert_str_eq(vmclock_leap_name(0), "none");
	ck_assert_str_eq(vmclock_leap_name(1), "pre_pos");
	ck_assert_str_eq(vmclock_leap_name(2), "pre_neg");
	ck_assert_str_eq(vmclock_leap_name(3), "pos");
	ck_assert_str_eq(vmclock_leap_name(4), "post_pos");
	ck_assert_str_eq(vmclock_leap_name(5), "post_neg");
	ck_assert_str_eq(vmclock_smearing_name(0), "strict");
	ck_assert_str_eq(vmclock_smearing_name(1), "noon_linear");
	ck_assert_str_eq(vmclock_smearing_name(2), "utc_sls");
}
END_TEST

START_TEST(test_flag_names)
{
	static const char *const expect[10] = {
		"tai_offset_valid", "disruption_soon", "disruption_imminent",
		"period_esterror_valid", "period_maxerror_valid", "time_esterror_valid",
		"time_maxerror_valid", "time_monotonic", "vm_gen_counter_present",
		"notification_present",
	};

	for (unsigned bit = 0; bit < 10; bit++)
		ck_assert_str_eq(vmclock_flag_name(bit), expect[bit]);
	ck_assert_ptr_null(vmclock_flag_name(10));
	ck_assert_ptr_null(vmclock_flag_name(63));
	ck_assert_ptr_null(vmclock_flag_name(64));
	ck_assert_ptr_null(vmclock_flag_name(UINT_MAX));
}
END_TEST

/* Outside the ABI every name is NULL; inside it every name is lowercase
 * and distinct from the others of its kind. */
START_TEST(test_names_out_of_range)
{
	const char *(*const fn[])(uint8_t) = {
		vmclock_counter_name, vmclock_time_type_name, vmclock_status_name,
		vmclock_leap_name, vmclock_smearing_name,
	};
	const unsigned expect[] = { 3, 3, 5, 6, 3 };

	for (size_t k = 0; k < sizeof(fn) / sizeof(fn[0]); k++) {
		unsigned named = 0;

		for (unsigned v = 0; v < 256; v++) {
			const char *n = fn[k]((uint8_t)v);

			if (!n)
				continue;
			named++;
			assert_lowercase(n);
			for (unsigned w = 0; w < v; w++) {
				const char *m = fn[k]((uint8_t)w);

				ck_assert_msg(!m || strcmp(m, n) != 0, "%u and %u both '%s'", v, w, n);
			}
		}
		ck_assert_msg(named == expect[k], "table %zu names %u values", k, named);
	}
	ck_assert_ptr_null(vmclock_counter_name(2));
	ck_assert_ptr_null(vmclock_counter_name(0xfe));
	ck_assert_ptr_null(vmclock_time_type_name(3));
	ck_assert_ptr_null(vmclock_status_name(5));
	ck_assert_ptr_null(vmclock_leap_name(6));
	ck_assert_ptr_null(vmclock_smearing_name(3));
}
END_TEST

START_TEST(test_reverse_names)
{
	for (unsigned v = 0; v < 256; v++) {
		const char *s = vmclock_status_name((uint8_t)v);
		const char *l = vmclock_leap_name((uint8_t)v);

		if (s)
			ck_assert_int_eq(vmclock_status_from_name(s), (int)v);
		if (l)
			ck_assert_int_eq(vmclock_leap_from_name(l), (int)v);
	}
	ck_assert_int_eq(vmclock_status_from_name("synchronized"), VMCLOCK_STATUS_SYNCHRONIZED);
	ck_assert_int_eq(vmclock_status_from_name("unreliable"), VMCLOCK_STATUS_UNRELIABLE);
	ck_assert_int_eq(vmclock_leap_from_name("pre_neg"), VMCLOCK_LEAP_PRE_NEG);
	ck_assert_int_eq(vmclock_status_from_name(""), -1);
	ck_assert_int_eq(vmclock_status_from_name("synchron"), -1);
	ck_assert_int_eq(vmclock_status_from_name("synchronizedx"), -1);
	ck_assert_int_eq(vmclock_status_from_name("none"), -1);
	ck_assert_int_eq(vmclock_leap_from_name("unknown"), -1);
	ck_assert_int_eq(vmclock_leap_from_name(""), -1);
	ck_assert_int_eq(vmclock_leap_from_name("pre"), -1);
}
END_TEST

Suite *abi_suite(void)
{
	Suite *s = suite_create("abi");
	TCase *tc = tcase_create("layout");

	tcase_add_test(tc, test_struct_size);
	tcase_add_loop_test(tc, test_field_offsets, 0, F_COUNT);
	tcase_add_test(tc, test_tai_offset_signed);
	tcase_add_test(tc, test_snapshot_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("constants");
	tcase_add_test(tc, test_constants);
	tcase_add_test(tc, test_flag_bits);
	tcase_add_test(tc, test_flag_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_test(tc, test_enum_names);
	tcase_add_test(tc, test_flag_names);
	tcase_add_test(tc, test_names_out_of_range);
	tcase_add_test(tc, test_reverse_names);
	suite_add_tcase(s, tc);
	return s;
}
