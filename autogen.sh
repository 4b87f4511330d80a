#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Generate ./configure from a clean clone.
set -e
cd "$(dirname "$0")"
mkdir -p m4
autoreconf --install --force
