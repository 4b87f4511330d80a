/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_open.c - vmclock_open() on good and bad pages, and reads of a page
 * anchored at the live counter.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmclock.h"
#include "suites.h"
#include "testpage.h"

/* Generous bounds for a page anchored at the live counter: timing accuracy
 * proper is tested against the simulator; these must never flake. */
#define LIVE_OFFSET_TOLERANCE_NS 50000
#define LIVE_UNCERTAINTY_MAX_NS 50000

static char *dir;

static void make_dir(void)
{
	dir = tp_tmpdir();
}

static void remove_dir(void)
{
	tp_rmdir(dir);
	free(dir);
	dir = NULL;
}

/* Write the page and open it: NULL with errno err expected (0: success). */
static void expect_open(const struct testpage *p, int err, const char *what)
{
	char *path = tp_write_file(dir, "page", p);
	vmclock_t *vc;

	errno = 0;
	vc = vmclock_open(path);
	if (err) {
		ck_assert_msg(vc == NULL, "%s: opened", what);
		ck_assert_msg(errno == err, "%s: errno %d (%s), expected %d (%s)", what, errno,
			      strerror(errno), err, strerror(err));
	} else {
		ck_assert_msg(vc != NULL, "%s: errno %d (%s)", what, errno, strerror(errno));
		vmclock_close(vc);
	}
	unlink(path);
	free(path);
}

START_TEST(test_missing)
{
	char *path = tp_path(dir, "absent");

	errno = 0;
	ck_assert_ptr_null(vmclock_open(path));
	ck_assert_int_eq(errno, ENOENT);
	free(path);
}
END_TEST

START_TEST(test_directory)
{
	errno = 0;
	ck_assert_ptr_null(vmclock_open(dir));
	ck_assert_int_eq(errno, ENODEV);
}
END_TEST

START_TEST(test_default_device)
{
	/* NULL names /dev/vmclock0: absent here it is ENOENT, present a device. */
	vmclock_t *vc;

	errno = 0;
	vc = vmclock_open(NULL);
	if (access(VMCLOCK_DEFAULT_DEVICE, F_OK) < 0) {
		ck_assert_ptr_null(vc);
		ck_assert_int_eq(errno, ENOENT);
	} else if (vc) {
		ck_assert(vmclock_is_device(vc));
		vmclock_close(vc);
	}
}
END_TEST

START_TEST(test_char_devices)
{
	vmclock_t *vc;

	/* A character device that cannot be mapped. */
	errno = 0;
	vc = vmclock_open("/dev/null");
	ck_assert_ptr_null(vc);
	ck_assert_int_eq(errno, ENODEV);
	/* One that maps to zeros: no magic. */
	errno = 0;
	vc = vmclock_open("/dev/zero");
	ck_assert_ptr_null(vc);
	ck_assert_int_eq(errno, EBADMSG);
}
END_TEST

START_TEST(test_bad_magic)
{
	static const uint32_t magics[] = { 0, 0x564c434bu /* "KLCV" */, TP_MAGIC_VALUE + 1,
					   TP_MAGIC_VALUE ^ 0x80000000u, UINT32_MAX };
	struct testpage p;

	for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
		tp_init(&p);
		tp_put32(&p, TP_MAGIC, magics[i]);
		expect_open(&p, EBADMSG, "wrong magic");
	}
	tp_init(&p);
	expect_open(&p, 0, "right magic");
}
END_TEST

START_TEST(test_short_file)
{
	struct testpage p;

	tp_init(&p);
	p.len = 50;
	expect_open(&p, EMSGSIZE, "50-byte file");
	p.len = 111;
	expect_open(&p, EMSGSIZE, "111-byte file");
	p.len = 0;
	expect_open(&p, EMSGSIZE, "empty file");
	p.len = 112;
	expect_open(&p, 0, "112-byte file");
}
END_TEST

START_TEST(test_size_field)
{
	struct testpage p;

	tp_init(&p);
	tp_put32(&p, TP_SIZE, 111);
	expect_open(&p, EMSGSIZE, "size 111");
	tp_put32(&p, TP_SIZE, 0);
	expect_open(&p, EMSGSIZE, "size 0");
	tp_put32(&p, TP_SIZE, 113);
	expect_open(&p, EMSGSIZE, "size 113 in a 112-byte file");
	tp_put32(&p, TP_SIZE, UINT32_MAX);
	expect_open(&p, EMSGSIZE, "size 2^32-1");
	/* A page larger than the structure is fine while the file holds it. */
	p.len = 4096;
	tp_put32(&p, TP_SIZE, 4096);
	expect_open(&p, 0, "size 4096 in a 4096-byte file");
	tp_put32(&p, TP_SIZE, 112);
	expect_open(&p, 0, "size 112 in a 4096-byte file");
	tp_put32(&p, TP_SIZE, 4097);
	expect_open(&p, EMSGSIZE, "size 4097 in a 4096-byte file");
}
END_TEST

START_TEST(test_version)
{
	static const uint16_t versions[] = { 0, 2, 3, 0x100, UINT16_MAX };
	struct testpage p;

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		tp_init(&p);
		tp_put16(&p, TP_VERSION, versions[i]);
		expect_open(&p, EPROTO, "unknown version");
	}
}
END_TEST

/* Run as nobody in a child: 0 if the 0600 page gave EACCES and the 0644 one
 * opened; otherwise a code saying what went wrong. */
static int child_as_nobody(const char *private_path, const char *public_path)
{
	vmclock_t *vc;

	if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
	    setresuid(65534, 65534, 65534) < 0)
		return 10;
	if (geteuid() != 65534)
		return 11;
	errno = 0;
	vc = vmclock_open(private_path);
	if (vc) {
		vmclock_close(vc);
		return 12;
	}
	if (errno != EACCES)
		return 13;
	vc = vmclock_open(public_path);
	if (!vc)
		return 14;
	vmclock_close(vc);
	return 0;
}

START_TEST(test_permission)
{
	struct testpage p;
	char *private_path, *public_path;
	unsigned char code = 255;
	int fds[2], status;
	pid_t pid;

	tp_init(&p);
	/* The directory must be searchable, so that only the file's mode
	 * stands in the way. */
	ck_assert_int_eq(chmod(dir, 0755), 0);
	private_path = tp_write_file(dir, "private", &p);
	public_path = tp_write_file(dir, "public", &p);
	ck_assert_int_eq(chmod(private_path, 0600), 0);
	ck_assert_int_eq(chmod(public_path, 0644), 0);
	/* The verdict travels through a pipe, not the exit status, which a
	 * tool such as valgrind may override in the child. */
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		code = (unsigned char)child_as_nobody(private_path, public_path);
		free(private_path);
		free(public_path);
		if (write(fds[1], &code, 1) != 1)
			_exit(127);
		_exit(0);
	}
	close(fds[1]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (read(fds[0], &code, 1) != 1)
		code = 255;
	close(fds[0]);
	ck_assert_msg(code != 10, "cannot drop to uid 65534 (setresuid failed)");
	ck_assert_msg(code != 12, "uid 65534 opened a 0600 root page");
	ck_assert_msg(code != 13, "uid 65534 got an errno other than EACCES");
	ck_assert_msg(code != 14, "uid 65534 could not open a 0644 page");
	ck_assert_msg(code == 0, "child gave no verdict (code %u, status %#x)", code, status);
	free(private_path);
	free(public_path);
}
END_TEST

/* What Firecracker 1.15 publishes: only the marker and the generation. */
START_TEST(test_marker_only)
{
	struct testpage p;
	struct vmclock_abi a;
	struct vmclock_time t;
	struct vmclock_offset o;
	char *path;
	vmclock_t *vc;

	tp_init(&p);
	tp_put8(&p, TP_COUNTER_ID, 0xff);
	tp_put8(&p, TP_STATUS, 0);
	tp_put64(&p, TP_FLAGS, VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT |
		 VMCLOCK_FLAG_NOTIFICATION_PRESENT);
	tp_put32(&p, TP_SEQ_COUNT, 4);
	tp_put64(&p, TP_MARKER, 0x0123456789abcdefull);
	tp_put64(&p, TP_GENERATION, 3);
	path = tp_write_file(dir, "page", &p);
	vc = vmclock_open(path);
	ck_assert_ptr_nonnull(vc);
	ck_assert(!vmclock_is_device(vc));
	ck_assert_int_eq(vmclock_snapshot(vc, &a), 0);
	ck_assert_mem_eq(&a, p.b, TP_PAGE_BYTES);
	ck_assert_uint_eq(vmclock_le64(a.disruption_marker), 0x0123456789abcdefull);
	ck_assert_uint_eq(vmclock_le64(a.vm_generation_counter), 3);
	errno = 0;
	ck_assert_int_eq(vmclock_gettime(vc, &t), -1);
	ck_assert_int_eq(errno, ENODATA);
	errno = 0;
	ck_assert_int_eq(vmclock_offset(vc, &o), -1);
	ck_assert_int_eq(errno, ENODATA);
	vmclock_close(vc);
	free(path);
}
END_TEST

START_TEST(test_handle)
{
	struct testpage p;
	char *path;
	vmclock_t *vc;
	int fd, fl;

	tp_init(&p);
	path = tp_write_file(dir, "page", &p);
	vc = vmclock_open(path);
	ck_assert_ptr_nonnull(vc);
	ck_assert(!vmclock_is_device(vc));
	fd = vmclock_fd(vc);
	ck_assert_int_ge(fd, 0);
	fl = fcntl(fd, F_GETFD);
	ck_assert_int_ge(fl, 0);
	ck_assert(fl & FD_CLOEXEC);
	vmclock_close(vc);
	/* The descriptor is gone with the handle. */
	errno = 0;
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	vmclock_close(NULL);
	free(path);
}
END_TEST

/* A page that goes bad after it was opened fails every read. */
START_TEST(test_page_goes_bad)
{
	struct testpage p;
	struct vmclock_abi a;
	struct vmclock_time t;
	char *path;
	vmclock_t *vc;
	int fd;

	tp_init(&p);
	path = tp_write_file(dir, "page", &p);
	vc = vmclock_open(path);
	ck_assert_ptr_nonnull(vc);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "XXXX", 4, TP_MAGIC), 4);
	errno = 0;
	ck_assert_int_eq(vmclock_snapshot(vc, &a), -1);
	ck_assert_int_eq(errno, EBADMSG);
	errno = 0;
	ck_assert_int_eq(vmclock_gettime(vc, &t), -1);
	ck_assert_int_eq(errno, EBADMSG);
	ck_assert_int_eq(pwrite(fd, p.b, 4, TP_MAGIC), 4);
	ck_assert_int_eq(vmclock_snapshot(vc, &a), 0);
	ck_assert_int_eq(pwrite(fd, "\x02\x00", 2, TP_VERSION), 2);
	errno = 0;
	ck_assert_int_eq(vmclock_snapshot(vc, &a), -1);
	ck_assert_int_eq(errno, EPROTO);
	close(fd);
	vmclock_close(vc);
	free(path);
}
END_TEST

/* A page left mid-update (seq_count odd for good, a writer that died):
 * vmclock_snapshot() waits its bound and times out; vmclock_snapshot_once()
 * says EAGAIN at once, and copies the page as soon as it is even again. */
START_TEST(test_stuck_odd)
{
	struct testpage p;
	struct vmclock_abi a;
	char *path;
	vmclock_t *vc;
	int fd;

	tp_init(&p);
	tp_put64(&p, TP_MARKER, 7);
	path = tp_write_file(dir, "stuck", &p);
	vc = vmclock_open(path);
	ck_assert_ptr_nonnull(vc);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "\x01\x00\x00\x00", 4, TP_SEQ_COUNT), 4);
	errno = 0;
	ck_assert_int_eq(vmclock_snapshot(vc, &a), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	/* EAGAIN, not the wait's ETIMEDOUT: one attempt, no wait. */
	errno = 0;
	ck_assert_int_eq(vmclock_snapshot_once(vc, &a), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(pwrite(fd, "\x02\x00\x00\x00", 4, TP_SEQ_COUNT), 4);
	memset(&a, 0, sizeof(a));
	ck_assert_int_eq(vmclock_snapshot_once(vc, &a), 0);
	ck_assert_uint_eq(vmclock_le64(a.disruption_marker), 7);
	ck_assert_uint_eq(vmclock_le32(a.seq_count), 2);
	/* Validated like vmclock_snapshot(). */
	ck_assert_int_eq(pwrite(fd, "XXXX", 4, TP_MAGIC), 4);
	errno = 0;
	ck_assert_int_eq(vmclock_snapshot_once(vc, &a), -1);
	ck_assert_int_eq(errno, EBADMSG);
	close(fd);
	vmclock_close(vc);
	free(path);
}
END_TEST

/* ---- pages anchored at the live counter ---------------------------------- */

static uint64_t live_period;
#define LIVE_SHIFT 16

static int64_t abs64(int64_t v)
{
	return v < 0 ? -v : v;
}

static vmclock_t *open_live(struct testpage *p, const char *what)
{
	char *path = tp_write_file(dir, what, p);
	vmclock_t *vc = vmclock_open(path);

	ck_assert_msg(vc != NULL, "%s: errno %d", what, errno);
	free(path);
	return vc;
}

static void calibrate(void)
{
	uint8_t id = tp_native_counter();

	make_dir();
	if (id != VMCLOCK_COUNTER_INVALID && !live_period)
		live_period = tp_calibrate_period(id, LIVE_SHIFT, 100);
}

static void check_offset(vmclock_t *vc, int64_t injected, const char *what)
{
	struct vmclock_offset o;
	struct timespec now;
	int64_t err, again;

	ck_assert_msg(vmclock_offset(vc, &o) == 0, "%s: errno %d", what, errno);
	clock_gettime(CLOCK_REALTIME, &now);
	err = o.offset_ns - injected;
	fprintf(stderr, "%s: offset %+" PRId64 " ns from the injected one, uncertainty %" PRIu64
		" ns\n", what, err, o.uncertainty_ns);
	ck_assert_msg(abs64(err) < LIVE_OFFSET_TOLERANCE_NS, "%s: offset off by %" PRId64 " ns",
		      what, err);
	ck_assert_msg(o.uncertainty_ns < LIVE_UNCERTAINTY_MAX_NS, "%s: uncertainty %" PRIu64,
		      what, o.uncertainty_ns);
	/* The fields agree with each other. */
	ck_assert(o.time.utc_valid);
	again = (o.time.utc_sec - (int64_t)o.system.tv_sec) * 1000000000 +
		((int64_t)o.time.utc_nsec - o.system.tv_nsec);
	ck_assert_int_eq(again, o.offset_ns);
	ck_assert_int_le(abs64((now.tv_sec - o.system.tv_sec) * 1000000000 +
			       (now.tv_nsec - o.system.tv_nsec)), 1000000000);
}

START_TEST(test_live_offset)
{
	static const int64_t injected[] = { 0, 1234567, -2500000000ll, 86400000000000ll };
	uint8_t id = tp_native_counter();

	ck_assert_msg(id != VMCLOCK_COUNTER_INVALID, "no counter on this CPU");
	for (size_t i = 0; i < sizeof(injected) / sizeof(injected[0]); i++) {
		struct testpage p;
		vmclock_t *vc;

		tp_init_live(&p, id, live_period, LIVE_SHIFT, injected[i]);
		vc = open_live(&p, "utc");
		check_offset(vc, injected[i], "utc page");
		vmclock_close(vc);
	}
}
END_TEST

START_TEST(test_live_tai)
{
	uint8_t id = tp_native_counter();
	struct testpage p;
	struct vmclock_offset o;
	vmclock_t *vc;

	/* A TAI page 37 s ahead of UTC with its offset: same offset as UTC. */
	tp_init_live(&p, id, live_period, LIVE_SHIFT, 37000000000ll + 5000000);
	tp_put8(&p, TP_TIME_TYPE, VMCLOCK_TIME_TAI);
	tp_put16(&p, TP_TAI_OFFSET, (uint16_t)-37);
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) | VMCLOCK_FLAG_TAI_OFFSET_VALID);
	vc = open_live(&p, "tai");
	check_offset(vc, 5000000, "tai page");
	vmclock_close(vc);

	/* Without the offset there is no UTC to compare. */
	tp_put64(&p, TP_FLAGS, tp_get64(&p, TP_FLAGS) & ~VMCLOCK_FLAG_TAI_OFFSET_VALID);
	vc = open_live(&p, "tai-nooffset");
	errno = 0;
	ck_assert_int_eq(vmclock_offset(vc, &o), -1);
	ck_assert_int_eq(errno, ENODATA);
	vmclock_close(vc);

	tp_put8(&p, TP_TIME_TYPE, VMCLOCK_TIME_MONOTONIC);
	vc = open_live(&p, "monotonic");
	errno = 0;
	ck_assert_int_eq(vmclock_offset(vc, &o), -1);
	ck_assert_int_eq(errno, ENODATA);
	vmclock_close(vc);
}
END_TEST

START_TEST(test_live_gettime)
{
	uint8_t id = tp_native_counter();
	struct testpage p;
	struct vmclock_time t;
	struct timespec before, after;
	int64_t lo, hi, dev;
	vmclock_t *vc;

	tp_init_live(&p, id, live_period, LIVE_SHIFT, 0);
	tp_put64(&p, TP_TIME_ESTERR, 100);
	tp_put64(&p, TP_TIME_MAXERR, 1000);
	tp_put64(&p, TP_PERIOD_ESTERR, live_period / 10000000); /* 0.1 ppm */
	tp_put64(&p, TP_PERIOD_MAXERR, live_period / 1000000);  /* 1 ppm */
	vc = open_live(&p, "gettime");
	clock_gettime(CLOCK_REALTIME, &before);
	ck_assert_int_eq(vmclock_gettime(vc, &t), 0);
	clock_gettime(CLOCK_REALTIME, &after);
	lo = (int64_t)before.tv_sec * 1000000000 + before.tv_nsec;
	hi = (int64_t)after.tv_sec * 1000000000 + after.tv_nsec;
	dev = t.sec * 1000000000 + t.nsec;
	ck_assert_msg(dev > lo - LIVE_OFFSET_TOLERANCE_NS && dev < hi + LIVE_OFFSET_TOLERANCE_NS,
		      "device time %" PRId64 " outside [%" PRId64 ", %" PRId64 "]", dev, lo, hi);
	ck_assert(t.utc_valid);
	ck_assert_int_eq(t.utc_sec, t.sec);
	ck_assert_uint_eq(t.time_type, VMCLOCK_TIME_UTC);
	ck_assert_uint_eq(t.counter_period_frac_sec, live_period);
	ck_assert_uint_eq(t.counter_period_shift, LIVE_SHIFT);
	/* The bounds have grown a little from the page's, not a lot. */
	ck_assert_uint_ge(t.esterror_ns, 100);
	ck_assert_uint_lt(t.esterror_ns, 100 + 1000);
	ck_assert_uint_ge(t.maxerror_ns, 1000);
	ck_assert_uint_lt(t.maxerror_ns, 1000 + 10000);
	vmclock_close(vc);

	/* Unreliable: no time. */
	tp_put8(&p, TP_STATUS, VMCLOCK_STATUS_UNRELIABLE);
	vc = open_live(&p, "unreliable");
	errno = 0;
	ck_assert_int_eq(vmclock_gettime(vc, &t), -1);
	ck_assert_int_eq(errno, ENODATA);
	vmclock_close(vc);

	/* The other architecture's counter cannot be read here. */
	tp_put8(&p, TP_STATUS, VMCLOCK_STATUS_SYNCHRONIZED);
	tp_put8(&p, TP_COUNTER_ID, id == VMCLOCK_COUNTER_X86_TSC ? VMCLOCK_COUNTER_ARM_VCNT :
		VMCLOCK_COUNTER_X86_TSC);
	vc = open_live(&p, "foreign");
	errno = 0;
	ck_assert_int_eq(vmclock_gettime(vc, &t), -1);
	ck_assert_int_eq(errno, EOPNOTSUPP);
	vmclock_close(vc);
}
END_TEST

/* A FIFO is neither a device nor a page file: ENODEV, without blocking in
 * open(2) for a writer that never comes. */
START_TEST(test_fifo)
{
	char *path = tp_path(dir, "fifo");
	pid_t pid;
	int status;

	ck_assert_int_eq(mkfifo(path, 0600), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		vmclock_t *vc;

		/* Check may have its own SIGALRM handler: the default kills. */
		signal(SIGALRM, SIG_DFL);
		alarm(2);
		int ok;

		errno = 0;
		vc = vmclock_open(path);
		ok = vc == NULL && errno == ENODEV;
		free(path); /* _exit() skips it: valgrind would count a leak */
		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(!WIFSIGNALED(status), "vmclock_open() blocked on a FIFO");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "FIFO: not ENODEV");
	free(path);
}
END_TEST

Suite *open_suite(void)
{
	Suite *s = suite_create("open");
	TCase *tc = tcase_create("errors");

	tcase_add_checked_fixture(tc, make_dir, remove_dir);
	tcase_add_test(tc, test_missing);
	tcase_add_test(tc, test_stuck_odd);
	tcase_add_test(tc, test_directory);
	tcase_add_test(tc, test_default_device);
	tcase_add_test(tc, test_char_devices);
	tcase_add_test(tc, test_bad_magic);
	tcase_add_test(tc, test_short_file);
	tcase_add_test(tc, test_size_field);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_permission);
	tcase_add_test(tc, test_marker_only);
	tcase_add_test(tc, test_handle);
	tcase_add_test(tc, test_page_goes_bad);
	tcase_add_test(tc, test_fifo);
	suite_add_tcase(s, tc);

	tc = tcase_create("live");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, calibrate, remove_dir);
	tcase_add_test(tc, test_live_offset);
	tcase_add_test(tc, test_live_tai);
	tcase_add_test(tc, test_live_gettime);
	suite_add_tcase(s, tc);
	return s;
}
