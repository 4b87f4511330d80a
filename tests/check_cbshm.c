/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_cbshm.c - the ClockBound segment (daemon/cbformat.c, cbshm.c): its
 * bytes at the offsets ClockBound's reader maps (little-endian on any host:
 * .ci/arm64 runs this under qemu-user too), what it says for each state
 * vmclockd publishes, the generation protocol, and the file: created by
 * temp file + rename in a directory of ours, a symlink at the path never
 * followed, a directory others may write refused, a segment left by a
 * previous daemon taken over in place, UNKNOWN left on exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "vmclockd-state.h"
#include "../common/timeutil.h"
#include "../daemon/cbformat.h"
#include "../daemon/cbshm.h"
#include "checkrun.h"

#define T0 1800000000000000000ull /* realtime ns */
#define C0 5000123456789ull       /* coarse monotonic ns */

static uint64_t le_at(const uint8_t *p, unsigned width)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < width; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static struct vmclockd_state synced(void)
{
	return (struct vmclockd_state){ .sync_state = VMCLOCKD_SYNC_SYNCHRONIZED,
					.heartbeat_timeout_ms = 3000,
					.heartbeat_realtime_ns = T0,
					.disruption_marker = 0x1122334455667788ull,
					.error_bound_ns = 20000,
					.error_bound_realtime_ns = T0,
					.drift_ppb = 15000 };
}

static const CBF_Now at_t0 = { .realtime_ns = T0, .coarse_ns = C0, .coarse_res_ns = 4000000 };

START_TEST(header_bytes)
{
	uint8_t h[CBF_HEADER_SIZE];
	static const uint8_t want[CBF_HEADER_SIZE] = { 0x4e, 0x5a, 0x4d, 0x41, 0x00, 0x02, 0x42, 0x43,
						       80, 0, 0, 0, 2, 0, 0x34, 0x12 };

	CBF_EncodeHeader(0x1234, h);
	ck_assert_mem_eq(h, want, sizeof(want));
}
END_TEST

START_TEST(body_offsets)
{
	CBF_Bound b = { .as_of_ns = 12000000345ull, .void_after_ns = 15000000006ull,
			.bound_ns = 0x0102030405060708ll, .disruption_marker = 0x8877665544332211ull,
			.drift_ppb = 999999999, .status = CBF_STATUS_DISRUPTED,
			.disruption_support = true };
	uint8_t img[CBF_SIZE];

	memset(img, 0xee, sizeof(img));
	CBF_EncodeBody(&b, img + CBF_HEADER_SIZE);
	/* Offsets in the segment, as the reader's #[repr(C)] structures lay
	 * them out after the 16-byte header. */
	ck_assert_uint_eq(le_at(img + 16, 8), 12);
	ck_assert_uint_eq(le_at(img + 24, 8), 345);
	ck_assert_uint_eq(le_at(img + 32, 8), 15);
	ck_assert_uint_eq(le_at(img + 40, 8), 6);
	ck_assert_uint_eq(le_at(img + 48, 8), 0x0102030405060708ull);
	ck_assert_uint_eq(le_at(img + 56, 8), 0x8877665544332211ull);
	ck_assert_uint_eq(le_at(img + 64, 4), 999999999);
	ck_assert_uint_eq(le_at(img + 68, 4), 3);
	ck_assert_uint_eq(img[72], 1);
	for (unsigned i = 73; i < CBF_SIZE; i++)
		ck_assert_uint_eq(img[i], 0);
}
END_TEST

START_TEST(adopt_checks_the_header)
{
	uint8_t img[CBF_SIZE] = { 0 };
	uint16_t gen = 0;

	CBF_EncodeHeader(41, img);
	ck_assert(CBF_Adopt(img, &gen));
	ck_assert_uint_eq(gen, 41);
	img[12] = 3; /* another version */
	ck_assert(!CBF_Adopt(img, &gen));
	CBF_EncodeHeader(41, img);
	img[8] = 96; /* another size */
	ck_assert(!CBF_Adopt(img, &gen));
	CBF_EncodeHeader(41, img);
	img[0] ^= 1;
	ck_assert(!CBF_Adopt(img, &gen));
}
END_TEST

START_TEST(generation_protocol)
{
	ck_assert_uint_eq(CBF_Begin(0), 1);
	ck_assert_uint_eq(CBF_Begin(2), 3);
	ck_assert_uint_eq(CBF_Begin(41), 41); /* a writer died mid-update */
	ck_assert_uint_eq(CBF_Begin(65534), 65535);
	ck_assert_uint_eq(CBF_Begin(65535), 65535);
	ck_assert_uint_eq(CBF_End(1), 2);
	ck_assert_uint_eq(CBF_End(41), 42);
	ck_assert_uint_eq(CBF_End(65535), 2); /* never 0: "not initialised" */
}
END_TEST

START_TEST(synchronized_bound_grown_to_now)
{
	struct vmclockd_state s = synced();
	CBF_Now now = at_t0;
	CBF_Bound b;

	now.realtime_ns = T0 + 2 * NSEC_PER_SEC;
	b = CBF_FromState(&s, &now);
	ck_assert_int_eq(b.status, CBF_STATUS_SYNCHRONIZED);
	ck_assert_uint_eq(b.as_of_ns, C0);
	ck_assert_uint_eq(b.void_after_ns, C0 + 3000 * NSEC_PER_MSEC);
	/* 20 us, grown 2 s and one coarse tick (4 ms) at 15 ppm, plus 1 ns. */
	ck_assert_int_eq(b.bound_ns, 20000 + 30000 + 60 + 1);
	ck_assert_uint_eq(b.drift_ppb, 15000);
	ck_assert_uint_eq(b.disruption_marker, 0x1122334455667788ull);
	ck_assert(b.disruption_support);
	/* A bound dated after now is not shrunk. */
	now.realtime_ns = T0 - NSEC_PER_SEC;
	b = CBF_FromState(&s, &now);
	ck_assert_int_eq(b.bound_ns, 20000 + 60 + 1);
}
END_TEST

START_TEST(status_per_state)
{
	static const struct {
		uint8_t sync;
		int32_t status;
	} table[] = {
		{ VMCLOCKD_SYNC_SYNCHRONIZED, CBF_STATUS_SYNCHRONIZED },
		{ VMCLOCKD_SYNC_UNSYNCHRONIZED, CBF_STATUS_FREE_RUNNING },
		{ VMCLOCKD_SYNC_DISRUPTED, CBF_STATUS_DISRUPTED },
		{ VMCLOCKD_SYNC_UNKNOWN, CBF_STATUS_UNKNOWN },
		{ 77, CBF_STATUS_UNKNOWN },
	};
	struct vmclockd_state s = synced();

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		s.sync_state = table[i].sync;
		ck_assert_int_eq(CBF_FromState(&s, &at_t0).status, table[i].status);
	}
}
END_TEST

START_TEST(unknown_without_heartbeat_bound_or_drift)
{
	struct vmclockd_state s = synced();
	CBF_Bound b;

	s.heartbeat_realtime_ns = 0; /* the daemon stopped */
	ck_assert_int_eq(CBF_FromState(&s, &at_t0).status, CBF_STATUS_UNKNOWN);
	s = synced();
	s.error_bound_ns = VMCLOCKD_BOUND_UNKNOWN;
	b = CBF_FromState(&s, &at_t0);
	ck_assert_int_eq(b.status, CBF_STATUS_UNKNOWN);
	ck_assert_int_eq(b.bound_ns, CBF_BOUND_MAX_NS); /* readers add it to the time */
	s = synced();
	s.drift_ppb = UINT32_MAX;
	b = CBF_FromState(&s, &at_t0);
	ck_assert_int_eq(b.status, CBF_STATUS_UNKNOWN);
	ck_assert_uint_eq(b.drift_ppb, CBF_DRIFT_MAX_PPB); /* 10^9 up: MALFORMED */
	/* A disruption says so whatever the bound. */
	s = synced();
	s.sync_state = VMCLOCKD_SYNC_DISRUPTED;
	s.error_bound_ns = VMCLOCKD_BOUND_UNKNOWN;
	ck_assert_int_eq(CBF_FromState(&s, &at_t0).status, CBF_STATUS_DISRUPTED);
}
END_TEST

START_TEST(disruption_support_needs_the_page)
{
	struct vmclockd_state s = synced();

	for (uint8_t r = 0; r < VMCLOCKD_STATE_REASONS; r++) {
		s.withhold_reason = r;
		ck_assert_int_eq(CBF_FromState(&s, &at_t0).disruption_support,
				 r != VMCLOCKD_REASON_NO_DEVICE && r != VMCLOCKD_REASON_BAD_PAGE);
	}
}
END_TEST

/* ---- the file ----------------------------------------------------------- */

static char dir[64], path[112];
static CNF_Settings settings;

static void file_setup(void)
{
	strcpy(dir, "/tmp/check_cbshm.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/cb/shm0", dir);
	memset(&settings, 0, sizeof(settings));
	settings.clockbound_shm = path;
}

static void file_teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static bool read_segment(uint8_t img[CBF_SIZE])
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW);
	bool ok = fd >= 0 && pread(fd, img, CBF_SIZE, 0) == CBF_SIZE;

	if (fd >= 0)
		close(fd);
	return ok;
}

START_TEST(created_then_updated_in_place)
{
	struct vmclockd_state s = synced();
	uint8_t img[CBF_SIZE];
	uint16_t gen;
	struct stat st, st2;
	char tmp[128];

	CBS_Initialise(&settings);
	CBS_Publish(&s);
	ck_assert(read_segment(img));
	ck_assert(CBF_Adopt(img, &gen));
	ck_assert_uint_eq(gen % 2, 0);
	ck_assert_uint_ne(gen, 0);
	ck_assert_int_eq(le_at(img + 68, 4), CBF_STATUS_SYNCHRONIZED);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_size, CBF_SIZE);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	/* The next update: the same file, the generation two further. */
	s.sync_state = VMCLOCKD_SYNC_UNSYNCHRONIZED;
	CBS_Publish(&s);
	ck_assert(read_segment(img));
	ck_assert_int_eq(stat(path, &st2), 0);
	ck_assert_uint_eq(st2.st_ino, st.st_ino);
	ck_assert(CBF_Adopt(img, &gen));
	ck_assert_int_eq(le_at(img + 68, 4), CBF_STATUS_FREE_RUNNING);
	{
		uint16_t before = gen;

		CBS_Publish(&s);
		ck_assert(read_segment(img));
		ck_assert(CBF_Adopt(img, &gen));
		ck_assert_uint_eq(gen, (uint16_t)(before + 2));
	}
	/* On exit: UNKNOWN at once. */
	CBS_Finalise();
	ck_assert(read_segment(img));
	ck_assert_int_eq(le_at(img + 68, 4), CBF_STATUS_UNKNOWN);
}
END_TEST

START_TEST(left_segment_taken_over)
{
	struct vmclockd_state s = synced();
	uint8_t img[CBF_SIZE] = { 0 };
	struct stat st, st2;
	uint16_t gen;
	char sub[96];
	int fd;

	snprintf(sub, sizeof(sub), "%s/cb", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	CBF_EncodeHeader(41, img); /* a writer died mid-update */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, img, sizeof(img)), sizeof(img));
	close(fd);
	ck_assert_int_eq(stat(path, &st), 0);
	CBS_Initialise(&settings);
	CBS_Publish(&s);
	ck_assert_int_eq(stat(path, &st2), 0);
	ck_assert_uint_eq(st2.st_ino, st.st_ino); /* readers map it: kept */
	ck_assert(read_segment(img));
	ck_assert(CBF_Adopt(img, &gen));
	ck_assert_uint_eq(gen, 42);
	CBS_Finalise();
}
END_TEST

START_TEST(symlink_not_followed)
{
	struct vmclockd_state s = synced();
	uint8_t img[CBF_SIZE];
	char sub[96], victim[96];
	struct stat st;
	int fd;

	snprintf(sub, sizeof(sub), "%s/cb", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(symlink(victim, path), 0);
	CBS_Initialise(&settings);
	CBS_Publish(&s);
	ck_assert_int_eq(stat(victim, &st), 0);
	ck_assert_uint_eq(st.st_size, 0); /* untouched */
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode)); /* the link replaced by our segment */
	ck_assert(read_segment(img));
	CBS_Finalise();
}
END_TEST

START_TEST(directory_others_may_write_refused)
{
	struct vmclockd_state s = synced();
	char sub[96];

	snprintf(sub, sizeof(sub), "%s/cb", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	ck_assert_int_eq(chmod(sub, 0777), 0);
	CBS_Initialise(&settings);
	CBS_Publish(&s);
	ck_assert_int_eq(access(path, F_OK), -1);
	CBS_Finalise();
}
END_TEST

START_TEST(removed_segment_made_afresh)
{
	struct vmclockd_state s = synced();
	uint8_t img[CBF_SIZE];

	CBS_Initialise(&settings);
	CBS_Publish(&s);
	ck_assert_int_eq(unlink(path), 0);
	sleep(1); /* the path is checked once a second */
	CBS_Publish(&s);
	ck_assert(read_segment(img));
	CBS_Finalise();
}
END_TEST

START_TEST(reload_to_another_path)
{
	struct vmclockd_state s = synced();
	CNF_Settings fresh = settings;
	char other[112];
	uint8_t img[CBF_SIZE];

	snprintf(other, sizeof(other), "%s/cb2/shm0", dir);
	fresh.clockbound_shm = other;
	CBS_Initialise(&settings);
	CBS_Publish(&s);
	/* As main.c does: Reconfigure, then the settings replaced. */
	CBS_Reconfigure(&fresh);
	settings = fresh;
	ck_assert(read_segment(img));
	ck_assert_int_eq(le_at(img + 68, 4), CBF_STATUS_UNKNOWN); /* the old one told */
	CBS_Publish(&s);
	strcpy(path, other);
	ck_assert(read_segment(img));
	ck_assert_int_eq(le_at(img + 68, 4), CBF_STATUS_SYNCHRONIZED);
	CBS_Finalise();
}
END_TEST

START_TEST(off_by_default)
{
	struct vmclockd_state s = synced();

	settings.clockbound_shm = "";
	CBS_Initialise(&settings);
	CBS_Publish(&s);
	CBS_Finalise();
	settings.clockbound_shm = path;
	ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cbshm");
	TCase *tc = tcase_create("format"), *tf = tcase_create("file");

	tcase_add_test(tc, header_bytes);
	tcase_add_test(tc, body_offsets);
	tcase_add_test(tc, adopt_checks_the_header);
	tcase_add_test(tc, generation_protocol);
	tcase_add_test(tc, synchronized_bound_grown_to_now);
	tcase_add_test(tc, status_per_state);
	tcase_add_test(tc, unknown_without_heartbeat_bound_or_drift);
	tcase_add_test(tc, disruption_support_needs_the_page);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tf, file_setup, file_teardown);
	tcase_add_test(tf, created_then_updated_in_place);
	tcase_add_test(tf, left_segment_taken_over);
	tcase_add_test(tf, symlink_not_followed);
	tcase_add_test(tf, directory_others_may_write_refused);
	tcase_add_test(tf, removed_segment_made_afresh);
	tcase_add_test(tf, reload_to_another_path);
	tcase_add_test(tf, off_by_default);
	suite_add_tcase(s, tf);
	return CR_Run(s, CK_FORK_GETENV);
}
