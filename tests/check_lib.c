/* SPDX-License-Identifier: BSD-2-Clause
 *
 * check_lib.c - run libvmclock's Check suites.
 *
 * CK_FORK=no runs every test in this process (for valgrind); CK_RUN_SUITE and
 * CK_RUN_CASE select a part, as Check documents.
 */
#include <stdlib.h>

#include "suites.h"
#include "testpage.h"

int main(void)
{
	SRunner *sr;
	int failed;

	/* Fix and print the seed before any test forks, so every test of this
	 * run uses (and a failure can replay) the same one. */
	(void)tp_seed();

	sr = srunner_create(abi_suite());
	srunner_add_suite(sr, convert_suite());
	srunner_add_suite(sr, snapshot_suite());
	srunner_add_suite(sr, open_suite());
	srunner_add_suite(sr, truth_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
