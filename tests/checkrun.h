/* SPDX-License-Identifier: BSD-2-Clause
 *
 * checkrun.h - how a tests/check_* program runs its suite.
 */
#ifndef VMCLOCKD_TESTS_CHECKRUN_H
#define VMCLOCKD_TESTS_CHECKRUN_H

#include <check.h>
#include <stdlib.h>

/* Runs s (taken) and gives the program's exit status.  fork: CK_FORK (a
 * process per test: modules' statics start afresh), CK_NOFORK, or
 * CK_FORK_GETENV (as the environment's CK_FORK says: Check's default). */
static inline int CR_Run(Suite *s, enum fork_status fork)
{
	SRunner *sr = srunner_create(s);
	int failed;

	if (fork != CK_FORK_GETENV)
		srunner_set_fork_status(sr, fork);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif /* VMCLOCKD_TESTS_CHECKRUN_H */
