/* SPDX-License-Identifier: BSD-2-Clause
 *
 * suites.h - the Check suites that tests/check_lib runs.
 */
#ifndef SUITES_H
#define SUITES_H

#include <check.h>

Suite *abi_suite(void);
Suite *convert_suite(void);
Suite *snapshot_suite(void);
Suite *open_suite(void);
Suite *truth_suite(void);

#endif /* SUITES_H */
