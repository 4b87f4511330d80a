/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_feed.c - the outputs samples go to (daemon/feed.c, feed_sock.c,
 * feed_shm.c), read back the way their readers read them.
 *
 * chrony's SOCK refclock: a datagram socket bound here as chronyd binds
 * its own, each datagram decoded at the byte offsets of chrony's
 * sock_sample on LP64 Linux.  ntpd's SHM refclock: the segment of a unit no
 * NTP daemon here uses, attached read-only and decoded at the offsets of
 * ntpd's shmTime.  Both layouts are written out below independently of the
 * feeders' structures.  Covered: every field, the seconds carried and
 * borrowed, the precision's rounding, the count/valid protocol, a chronyd
 * absent, restarted or not keeping up, segments that are not the daemon's
 * to use (another size, a wider mode, another owner) refused and retried
 * once a second, a segment removed under the feeder, and what each output
 * says while it does not take samples and once it does again.
 *
 * The once-a-second retries are reached by moving the modules' monotonic
 * clock forward (tests/monoskip.h), not by sleeping.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "../daemon/feed.h"
#include "monoskip.h"
#include "testpage.h"
#include "checkrun.h"

/* chrony's sock_sample (refclock_sock.c), LP64: 40 bytes, native order. */
enum {
	SOCK_TV_SEC = 0,   /* time_t */
	SOCK_TV_USEC = 8,  /* suseconds_t */
	SOCK_OFFSET = 16,  /* double, s */
	SOCK_PULSE = 24,   /* int */
	SOCK_LEAP = 28,    /* int */
	SOCK_PAD = 32,     /* int */
	SOCK_MAGIC = 36,   /* int */
	SOCK_BYTES = 40,
};
#define SOCK_MAGIC_VALUE 0x534f434b /* "SOCK" */

/* ntpd's shmTime (ntpd/refclock_shm.c), LP64: 96 bytes, native order. */
enum {
	SHM_MODE = 0,          /* int */
	SHM_COUNT = 4,         /* int */
	SHM_CLOCK_SEC = 8,     /* time_t */
	SHM_CLOCK_USEC = 16,   /* int */
	SHM_RECEIVE_SEC = 24,  /* time_t */
	SHM_RECEIVE_USEC = 32, /* int */
	SHM_LEAP = 36,         /* int */
	SHM_PRECISION = 40,    /* int, log2 s */
	SHM_NSAMPLES = 44,     /* int */
	SHM_VALID = 48,        /* int */
	SHM_CLOCK_NSEC = 52,   /* unsigned */
	SHM_RECEIVE_NSEC = 56, /* unsigned */
	SHM_BYTES = 96,
};
#define SHM_KEY_BASE 0x4e545030 /* "NTP0" */
#define NTP_LEAP_NOTINSYNC 3

#define ONE_S_AND_A_BIT 1100000000ll

static FED_Sample sample(time_t sec, long nsec, int64_t offset_ns, uint64_t bound_ns, FED_Leap leap)
{
	return (FED_Sample){ .system = { .tv_sec = sec, .tv_nsec = nsec },
			     .offset_ns = offset_ns,
			     .uncertainty_ns = 10,
			     .bound_ns = bound_ns,
			     .bound_ppb = 50,
			     .leap = leap };
}

/* ---- chrony's SOCK refclock ------------------------------------------------- */

static char *dir, *sock_path;

static void sock_setup(void)
{
	dir = tp_tmpdir();
	sock_path = tp_path(dir, "refclock.sock");
}

static void sock_teardown(void)
{
	tp_rmdir(dir);
	free(dir);
	free(sock_path);
}

/* A socket bound at the path, as chronyd binds its refclock's. */
static int chronyd_bind(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(sock_path), sizeof(sa.sun_path));
	strcpy(sa.sun_path, sock_path);
	unlink(sock_path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* The one datagram waiting on fd: exactly a sock_sample's size. */
static void receive(int fd, uint8_t b[SOCK_BYTES])
{
	uint8_t buf[SOCK_BYTES + 8];

	ck_assert_int_eq(recv(fd, buf, sizeof(buf), 0), SOCK_BYTES);
	memcpy(b, buf, SOCK_BYTES);
	ck_assert_int_eq(recv(fd, buf, sizeof(buf), 0), -1); /* no second one */
}

START_TEST(sock_datagram_fields)
{
	static const struct {
		time_t sec;
		long nsec;
		int64_t offset_ns;
		FED_Leap leap;
		long usec; /* the system time's microseconds, truncated */
	} cases[] = {
		{ 1700000000, 123456789, 1500, FED_LEAP_INSERT, 123456 },
		{ 1700000001, 999999999, -2500000, FED_LEAP_DELETE, 999999 },
		{ 1700000002, 999, 0, FED_LEAP_NONE, 0 },
		{ 1700000003, 0, -4000000000ll, FED_LEAP_NONE, 0 },
	};
	int fd = chronyd_bind();
	FED_Output out = FED_CreateSock(sock_path);
	uint8_t b[SOCK_BYTES];

	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(FED_Name(out), "chrony-sock");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FED_Sample s = sample(cases[i].sec, cases[i].nsec, cases[i].offset_ns, 1000,
				      cases[i].leap);

		ck_assert_int_eq(FED_Send(out, &s), 0);
		receive(fd, b);
		ck_assert_int_eq(tp_native_i64(b, SOCK_TV_SEC), cases[i].sec);
		ck_assert_int_eq(tp_native_i64(b, SOCK_TV_USEC), cases[i].usec);
		/* The offset as measured, in seconds: not moved to the cut
		 * microsecond. */
		ck_assert_double_eq_tol(tp_native_double(b, SOCK_OFFSET),
					(double)cases[i].offset_ns * 1e-9, 1e-18);
		ck_assert_int_eq(tp_native_i32(b, SOCK_PULSE), 0);
		ck_assert_int_eq(tp_native_i32(b, SOCK_LEAP), (int)cases[i].leap);
		ck_assert_int_eq(tp_native_i32(b, SOCK_PAD), 0);
		ck_assert_int_eq(tp_native_i32(b, SOCK_MAGIC), SOCK_MAGIC_VALUE);
		ck_assert_ptr_null(FED_Problem(out));
	}
	FED_Destroy(out);
	close(fd);
}
END_TEST

/* No chronyd (no socket file, or one nobody reads: chronyd gone): the sample
 * is refused, counted and said; chronyd starting is picked up by the next
 * sample, with no reconnection. */
START_TEST(sock_chronyd_absent_then_back)
{
	FED_Output out = FED_CreateSock(sock_path);
	FED_Sample s = sample(1700000000, 5000, 7, 1000, FED_LEAP_NONE);
	const char *no_file;
	uint8_t b[SOCK_BYTES];
	int fd;

	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_null(FED_Problem(out));
	ck_assert_int_lt(FED_Send(out, &s), 0);
	ck_assert_ptr_nonnull(no_file = FED_Problem(out));

	/* The socket of a chronyd that exited (ECONNREFUSED): the same. */
	fd = chronyd_bind();
	close(fd);
	ck_assert_int_lt(FED_Send(out, &s), 0);
	ck_assert_str_eq(FED_Problem(out), no_file);

	fd = chronyd_bind();
	ck_assert_int_eq(FED_Send(out, &s), 0);
	ck_assert_ptr_null(FED_Problem(out));
	receive(fd, b);
	ck_assert_int_eq(tp_native_i64(b, SOCK_TV_USEC), 5);

	/* chronyd restarted: a new socket at the path takes the next one. */
	close(fd);
	fd = chronyd_bind();
	ck_assert_int_eq(FED_Send(out, &s), 0);
	receive(fd, b);
	ck_assert_int_eq(tp_native_i32(b, SOCK_MAGIC), SOCK_MAGIC_VALUE);
	FED_Destroy(out);
	close(fd);
}
END_TEST

/* A chronyd that does not keep up: the send never blocks, the sample is
 * refused with another problem than an absent chronyd's, and the samples
 * flow again once it reads. */
START_TEST(sock_chronyd_not_reading)
{
	int fd = chronyd_bind();
	FED_Output out = FED_CreateSock(sock_path);
	FED_Sample s = sample(1700000000, 0, 7, 1000, FED_LEAP_NONE);
	uint8_t b[SOCK_BYTES + 8];
	unsigned long sent = 0;
	const char *full, *absent;
	int r = 0;

	ck_assert_ptr_nonnull(out);
	while (sent < 100000 && (r = FED_Send(out, &s)) == 0)
		sent++;
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_nonnull(full = FED_Problem(out));
	while (recv(fd, b, sizeof(b), 0) == SOCK_BYTES)
		;
	ck_assert_int_eq(FED_Send(out, &s), 0);
	ck_assert_ptr_null(FED_Problem(out));
	close(fd);
	unlink(sock_path);
	ck_assert_int_lt(FED_Send(out, &s), 0);
	ck_assert_ptr_nonnull(absent = FED_Problem(out));
	ck_assert_str_ne(full, absent);
	FED_Destroy(out);
}
END_TEST

START_TEST(sock_path_too_long)
{
	char path[200];

	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	ck_assert_ptr_null(FED_CreateSock(path));
	/* The longest a sockaddr_un holds is still taken. */
	path[sizeof(((struct sockaddr_un *)0)->sun_path) - 1] = '\0';
	FED_Output out = FED_CreateSock(path);
	ck_assert_ptr_nonnull(out);
	FED_Destroy(out);
	FED_Destroy(NULL);
}
END_TEST

/* ---- ntpd's SHM refclock ---------------------------------------------------- */

static int unit;

/* A unit no NTP daemon (or other test) of this machine uses: one per test
 * process, the first free one from a place its process id picks. */
static void shm_setup(void)
{
	unit = 2000 + (int)(getpid() % 20000);
	while (shmget(SHM_KEY_BASE + unit, 0, 0) >= 0)
		unit++;
}

static void shm_remove(void)
{
	int id = shmget(SHM_KEY_BASE + unit, 0, 0);

	if (id >= 0)
		shmctl(id, IPC_RMID, NULL);
}

/* The unit's segment as ntpd sees it (read-only), or NULL. */
static const uint8_t *ntpd_attach(void)
{
	int id = shmget(SHM_KEY_BASE + unit, 0, 0);
	void *p;

	if (id < 0)
		return NULL;
	p = shmat(id, NULL, SHM_RDONLY);
	ck_assert_ptr_ne(p, (void *)-1);
	return p;
}

static struct shmid_ds shm_stat(void)
{
	struct shmid_ds ds;
	int id = shmget(SHM_KEY_BASE + unit, 0, 0);

	ck_assert_int_ge(id, 0);
	ck_assert_int_eq(shmctl(id, IPC_STAT, &ds), 0);
	return ds;
}

START_TEST(shm_fields)
{
	static const struct {
		time_t sec;
		long nsec;
		int64_t offset_ns;
		FED_Leap leap;
		int64_t clock_sec; /* reference time: system + offset */
		long clock_nsec;
	} cases[] = {
		{ 1700000000, 999999999, 2, FED_LEAP_DELETE, 1700000001, 1 }, /* carried */
		{ 100, 200, -500, FED_LEAP_INSERT, 99, 999999700 },           /* borrowed */
		{ 100, 0, -3500000000ll, FED_LEAP_NONE, 96, 500000000 },      /* seconds back */
		{ 100, 999000, 7000000000ll, FED_LEAP_NONE, 107, 999000 },    /* seconds on */
	};
	FED_Output out = FED_CreateShm(unit, 0600);
	const uint8_t *shm;
	struct shmid_ds ds;

	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(FED_Name(out), "ntp-shm");
	ck_assert_ptr_null(FED_Problem(out));
	ck_assert_ptr_nonnull(shm = ntpd_attach());
	ds = shm_stat();
	ck_assert_uint_eq(ds.shm_segsz, SHM_BYTES);
	ck_assert_uint_eq(ds.shm_perm.mode & 0777, 0600);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FED_Sample s =
			sample(cases[i].sec, cases[i].nsec, cases[i].offset_ns, 1, cases[i].leap);

		ck_assert_int_eq(FED_Send(out, &s), 0);
		ck_assert_int_eq(tp_native_i32(shm, SHM_MODE), 1);
		ck_assert_int_eq(tp_native_i64(shm, SHM_CLOCK_SEC), cases[i].clock_sec);
		ck_assert_int_eq((uint32_t)tp_native_i32(shm, SHM_CLOCK_NSEC), cases[i].clock_nsec);
		ck_assert_int_eq(tp_native_i32(shm, SHM_CLOCK_USEC), cases[i].clock_nsec / 1000);
		ck_assert_int_eq(tp_native_i64(shm, SHM_RECEIVE_SEC), cases[i].sec);
		ck_assert_int_eq((uint32_t)tp_native_i32(shm, SHM_RECEIVE_NSEC), cases[i].nsec);
		ck_assert_int_eq(tp_native_i32(shm, SHM_RECEIVE_USEC), cases[i].nsec / 1000);
		ck_assert_int_eq(tp_native_i32(shm, SHM_LEAP), (int)cases[i].leap);
		ck_assert_int_eq(tp_native_i32(shm, SHM_PRECISION), -29); /* 1 ns: 2^-29 s */
		ck_assert_int_eq(tp_native_i32(shm, SHM_NSAMPLES), 0);
		ck_assert_int_eq(tp_native_i32(shm, SHM_VALID), 1);
	}
	FED_Destroy(out);
	/* The segment stays for ntpd, saying there is nothing new. */
	ck_assert_int_eq(tp_native_i32(shm, SHM_VALID), 0);
	ck_assert_int_eq(tp_native_i32(shm, SHM_LEAP), NTP_LEAP_NOTINSYNC);
	shmdt(shm);
	shm_remove();
}
END_TEST

/* Mode 1's protocol as ntpd reads it: the count moves on by two (even: not
 * being written) with every sample, valid is set again after a reader
 * cleared it, and a count found in the segment carries on. */
START_TEST(shm_count_and_valid)
{
	int id = shmget(SHM_KEY_BASE + unit, SHM_BYTES, IPC_CREAT | IPC_EXCL | 0600);
	FED_Output out;
	uint8_t *shm;
	FED_Sample s = sample(1700000000, 0, 0, 1000, FED_LEAP_NONE);

	ck_assert_int_ge(id, 0);
	shm = shmat(id, NULL, 0);
	ck_assert_ptr_ne(shm, (void *)-1);
	memcpy(shm + SHM_COUNT, &(int32_t){ 40 }, 4);
	out = FED_CreateShm(unit, 0600);
	ck_assert_ptr_nonnull(out);
	shmctl(id, IPC_RMID, NULL); /* goes when both detach */
	ck_assert_ptr_null(FED_Problem(out));
	for (int i = 1; i <= 3; i++) {
		s.system.tv_sec++;
		ck_assert_int_eq(FED_Send(out, &s), 0);
		ck_assert_int_eq(tp_native_i32(shm, SHM_COUNT), 40 + 2 * i);
		ck_assert_int_eq(tp_native_i32(shm, SHM_VALID), 1);
		ck_assert_int_eq(tp_native_i64(shm, SHM_RECEIVE_SEC), s.system.tv_sec);
		/* ntpd took it. */
		memcpy(shm + SHM_VALID, &(int32_t){ 0 }, 4);
	}
	FED_Destroy(out);
	shmdt(shm);
}
END_TEST

/* The bound as log2 seconds, rounded up: 2^-30 s at the finest, 1 s at the
 * coarsest. */
START_TEST(shm_precision)
{
	static const struct {
		uint64_t bound_ns;
		int precision;
	} cases[] = {
		{ 0, -30 },         { 1, -29 },          { 2, -28 },
		{ 1030, -19 },      { 953, -20 },        { 954, -19 },
		{ 500000000, -1 },  { 500000001, 0 },    { 999999999, 0 },
		{ 1000000000, 0 },  { 3600000000000, 0 }, { UINT64_MAX, 0 },
	};
	FED_Output out = FED_CreateShm(unit, 0600);
	const uint8_t *shm;

	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(shm = ntpd_attach());
	shm_remove();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		FED_Sample s = sample(1700000000, 0, 0, cases[i].bound_ns, FED_LEAP_NONE);

		ck_assert_int_eq(FED_Send(out, &s), 0);
		ck_assert_msg(tp_native_i32(shm, SHM_PRECISION) == cases[i].precision,
			      "bound %llu ns: precision %d, want %d",
			      (unsigned long long)cases[i].bound_ns, tp_native_i32(shm, SHM_PRECISION),
			      cases[i].precision);
	}
	FED_Destroy(out);
	shmdt(shm);
}
END_TEST

/* Segments at the key that are not the daemon's to feed. */
enum { WRONG_SIZE, WIDER_MODE, OTHER_OWNER, N_REFUSED };

/* Makes the unit's segment as another program would have left it: filled
 * with a pattern the feeder must leave alone. */
static int make_refused(int which)
{
	size_t size = which == WRONG_SIZE ? 64 : SHM_BYTES;
	int mode = which == WIDER_MODE ? 0666 : 0600;
	int id = shmget(SHM_KEY_BASE + unit, size, IPC_CREAT | IPC_EXCL | mode);
	struct shmid_ds ds;
	void *p;

	ck_assert_int_ge(id, 0);
	ck_assert_ptr_ne(p = shmat(id, NULL, 0), (void *)-1);
	memset(p, 0x5a, size);
	shmdt(p);
	if (which == OTHER_OWNER) {
		/* The owner may hand it to anyone (ipc(7)): now it is uid 4242's. */
		ck_assert_int_eq(shmctl(id, IPC_STAT, &ds), 0);
		ds.shm_perm.uid = 4242;
		ck_assert_int_eq(shmctl(id, IPC_SET, &ds), 0);
	}
	return id;
}

static void untouched(int id)
{
	struct shmid_ds ds;
	const uint8_t *p;

	ck_assert_int_eq(shmctl(id, IPC_STAT, &ds), 0);
	ck_assert_ptr_ne(p = shmat(id, NULL, SHM_RDONLY), (void *)-1);
	for (size_t i = 0; i < ds.shm_segsz; i++)
		ck_assert_uint_eq(p[i], 0x5a);
	shmdt(p);
}

/* Refused at creation, refused at each send, retried once a second (not at
 * every send), and fed once the key names a fit segment. */
START_TEST(shm_refused_then_retried)
{
	int id = make_refused(_i);
	FED_Output out = FED_CreateShm(unit, 0600);
	FED_Sample s = sample(1700000000, 0, 0, 1000, FED_LEAP_NONE);
	const uint8_t *shm;

	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(FED_Problem(out));
	ck_assert_int_lt(FED_Send(out, &s), 0);
	ck_assert_int_lt(FED_Send(out, &s), 0);
	untouched(id);

	/* Removed by its owner: not looked for again within the second. */
	ck_assert_int_eq(shmctl(id, IPC_RMID, NULL), 0);
	ck_assert_int_lt(FED_Send(out, &s), 0);
	ck_assert_int_lt(shmget(SHM_KEY_BASE + unit, 0, 0), 0);
	MSK_Advance(ONE_S_AND_A_BIT);
	ck_assert_int_eq(FED_Send(out, &s), 0);
	ck_assert_ptr_null(FED_Problem(out));
	ck_assert_uint_eq(shm_stat().shm_perm.mode & 0777, 0600);
	ck_assert_ptr_nonnull(shm = ntpd_attach());
	ck_assert_int_eq(tp_native_i32(shm, SHM_VALID), 1);
	ck_assert_int_eq(tp_native_i64(shm, SHM_RECEIVE_SEC), 1700000000);
	FED_Destroy(out);
	shmdt(shm);
	shm_remove();
}
END_TEST

/* A segment narrower than ntp-shm-mode is ours to use. */
START_TEST(shm_narrower_mode_used)
{
	int id = shmget(SHM_KEY_BASE + unit, SHM_BYTES, IPC_CREAT | IPC_EXCL | 0600);
	FED_Output out;
	FED_Sample s = sample(1700000000, 0, 0, 1000, FED_LEAP_NONE);

	ck_assert_int_ge(id, 0);
	out = FED_CreateShm(unit, 0644);
	ck_assert_ptr_null(FED_Problem(out));
	ck_assert_int_eq(FED_Send(out, &s), 0);
	FED_Destroy(out);
	shmctl(id, IPC_RMID, NULL);
}
END_TEST

/* The segment removed under the feeder (only root can): noticed within a
 * second, a new one made and fed; one made by somebody else in its place
 * is refused. */
START_TEST(shm_removed_under_us)
{
	FED_Output out = FED_CreateShm(unit, 0600);
	FED_Sample s = sample(1700000000, 0, 0, 1000, FED_LEAP_NONE);
	const uint8_t *shm;
	int first, id;

	ck_assert_ptr_nonnull(out);
	ck_assert_int_ge(first = shmget(SHM_KEY_BASE + unit, 0, 0), 0);
	ck_assert_int_eq(FED_Send(out, &s), 0);
	ck_assert_int_eq(shmctl(first, IPC_RMID, NULL), 0);
	MSK_Advance(ONE_S_AND_A_BIT);
	s.system.tv_sec++;
	ck_assert_int_eq(FED_Send(out, &s), 0);
	ck_assert_ptr_null(FED_Problem(out));
	ck_assert_int_ge(id = shmget(SHM_KEY_BASE + unit, 0, 0), 0);
	ck_assert_int_ne(id, first);
	ck_assert_ptr_nonnull(shm = ntpd_attach());
	ck_assert_int_eq(tp_native_i64(shm, SHM_RECEIVE_SEC), 1700000001);
	ck_assert_int_eq(tp_native_i32(shm, SHM_VALID), 1);
	shmdt(shm);

	/* Replaced by a segment of another program's size. */
	ck_assert_int_eq(shmctl(id, IPC_RMID, NULL), 0);
	id = make_refused(WRONG_SIZE);
	MSK_Advance(ONE_S_AND_A_BIT);
	ck_assert_int_lt(FED_Send(out, &s), 0);
	ck_assert_ptr_nonnull(FED_Problem(out));
	untouched(id);
	FED_Destroy(out);
	shmctl(id, IPC_RMID, NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("feed");
	TCase *tc;

	tc = tcase_create("chrony-sock");
	tcase_add_checked_fixture(tc, sock_setup, sock_teardown);
	tcase_add_test(tc, sock_datagram_fields);
	tcase_add_test(tc, sock_chronyd_absent_then_back);
	tcase_add_test(tc, sock_chronyd_not_reading);
	tcase_add_test(tc, sock_path_too_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("ntp-shm");
	tcase_add_checked_fixture(tc, shm_setup, shm_remove);
	tcase_add_test(tc, shm_fields);
	tcase_add_test(tc, shm_count_and_valid);
	tcase_add_test(tc, shm_precision);
	tcase_add_loop_test(tc, shm_refused_then_retried, 0, N_REFUSED);
	tcase_add_test(tc, shm_narrower_mode_used);
	tcase_add_test(tc, shm_removed_under_us);
	suite_add_tcase(s, tc);

	/* Each test in its own process: the monotonic clock each moves on. */
	return CR_Run(s, CK_FORK);
}
