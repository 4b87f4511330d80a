# SPDX-License-Identifier: BSD-2-Clause
#
# fuzz.mk - build and run the libFuzzer targets with clang, outside
# automake's build (which must not need clang).  Called by `make fuzz`,
# `make fuzz-smoke` and `make fuzz-build` in the top Makefile; standalone
# from a source tree:
#   make -f fuzz/fuzz.mk run FUZZ_SECONDS=60
#   make -f fuzz/fuzz.mk run FUZZ_TARGETS=fuzz_page FUZZ_KNOWN_BUGS=1
#
# Each target is compiled in one clang invocation with the sources it
# tests.  The committed seeds in fuzz/corpus/<target>/ are read only: what
# the fuzzer finds goes to $(FUZZ_OUT)/corpus/<target>/, crash inputs to
# $(FUZZ_CRASHES)/<target>-crash-..., the output to $(FUZZ_OUT)/<target>.log.

top_srcdir ?= .
sysconfdir ?= /etc
localstatedir ?= /var
FUZZ_CC ?= clang
# Built apart with the known-bug checks on, so neither build goes stale.
FUZZ_OUT ?= fuzz/bin$(if $(filter 1,$(FUZZ_KNOWN_BUGS)),-known)
FUZZ_CRASHES ?= fuzz/crashes
FUZZ_SECONDS ?= 300
FUZZ_KNOWN_BUGS ?= 0
FUZZ_TARGETS ?= fuzz_page fuzz_config fuzz_chrony_reply fuzz_state
LIBEVENT_CFLAGS ?= $(shell pkg-config --cflags libevent_core)
LIBEVENT_LIBS ?= $(shell pkg-config --libs libevent_core)

FUZZ_SAN = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS ?= -g -O1 -fno-omit-frame-pointer
FUZZ_WARN = -std=c11 -Wall -Wextra -Wno-unused-parameter
FUZZ_CPPFLAGS = -D_GNU_SOURCE -DFUZZ_KNOWN_BUGS=$(FUZZ_KNOWN_BUGS) \
	-I$(top_srcdir)/include -I$(top_srcdir)/refclock -I$(top_srcdir)/daemon \
	-I$(top_srcdir)/fuzz
FUZZ_COMPILE = $(FUZZ_CC) $(FUZZ_WARN) $(FUZZ_CFLAGS) $(FUZZ_SAN) $(FUZZ_CPPFLAGS)

S = $(top_srcdir)
LIB_SOURCES = $(S)/refclock/vmclock.c $(S)/refclock/phc.c $(S)/refclock/convert.c $(S)/refclock/counter.c \
	$(S)/refclock/names.c
LIB_DEPS = $(LIB_SOURCES) $(wildcard $(S)/refclock/*.h $(S)/include/*.h) $(S)/fuzz/fuzz.h

# Longest input each target is given, and extra libFuzzer options.
max_len_fuzz_page = 4096
max_len_fuzz_config = 4096
max_len_fuzz_chrony_reply = 600
max_len_fuzz_state = 512
opts_fuzz_config = -dict=$(S)/fuzz/config.dict

.PHONY: build run
build: $(FUZZ_TARGETS:%=$(FUZZ_OUT)/%)

$(FUZZ_OUT)/fuzz_page: $(S)/fuzz/fuzz_page.c $(LIB_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_COMPILE) -o $@ $(S)/fuzz/fuzz_page.c $(LIB_SOURCES)

$(FUZZ_OUT)/fuzz_state: $(S)/fuzz/fuzz_state.c $(S)/refclock/truth.c $(LIB_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_COMPILE) -o $@ $(S)/fuzz/fuzz_state.c $(S)/refclock/truth.c $(LIB_SOURCES)

# config.c reports its errors through the logging module (which times its
# flood windows with libevent).
$(FUZZ_OUT)/fuzz_config: $(S)/fuzz/fuzz_config.c $(S)/daemon/config.c $(S)/daemon/config.h \
		$(S)/daemon/log.c $(S)/daemon/log.h $(S)/fuzz/fuzz.h
	@mkdir -p $(@D)
	$(FUZZ_COMPILE) -DSYSCONFDIR='"$(sysconfdir)"' -DLOCALSTATEDIR='"$(localstatedir)"' \
		$(LIBEVENT_CFLAGS) -o $@ $(S)/fuzz/fuzz_config.c $(S)/daemon/config.c $(S)/daemon/log.c \
		-lsystemd $(LIBEVENT_LIBS)

$(FUZZ_OUT)/fuzz_chrony_reply: $(S)/fuzz/fuzz_chrony_reply.c $(S)/daemon/chrony_proto.c \
		$(S)/daemon/chrony_proto.h $(S)/fuzz/fuzz.h
	@mkdir -p $(@D)
	$(FUZZ_COMPILE) -o $@ $(S)/fuzz/fuzz_chrony_reply.c $(S)/daemon/chrony_proto.c -lm

# One target after another, FUZZ_SECONDS each; the first failure stops the
# run with the end of its log and where the crash input was kept.
run: build
	@mkdir -p $(FUZZ_CRASHES)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_OUT)/corpus/$$t; \
		case $$t in \
		fuzz_page) len=$(max_len_fuzz_page); opts='' ;; \
		fuzz_config) len=$(max_len_fuzz_config); opts='$(opts_fuzz_config)' ;; \
		fuzz_chrony_reply) len=$(max_len_fuzz_chrony_reply); opts='' ;; \
		*) len=$(max_len_fuzz_state); opts='' ;; \
		esac; \
		echo "  FUZZ     $$t ($(FUZZ_SECONDS) s)"; \
		if ! $(FUZZ_OUT)/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$len -timeout=10 \
			-print_final_stats=1 -artifact_prefix=$(FUZZ_CRASHES)/$$t- $$opts \
			$(FUZZ_OUT)/corpus/$$t $(S)/fuzz/corpus/$$t >$(FUZZ_OUT)/$$t.log 2>&1; then \
			tail -n 60 $(FUZZ_OUT)/$$t.log; \
			echo "$$t FAILED: input kept in $(FUZZ_CRASHES)/, log $(FUZZ_OUT)/$$t.log" >&2; \
			exit 1; \
		fi; \
		awk -v t=$$t '/stat::number_of_executed_units/ { n = $$2 } \
			/stat::average_exec_per_sec/ { r = $$2 } /stat::new_units_added/ { u = $$2 } \
			END { printf "           %s: %d runs, %d/s, %d new inputs, no failure\n", t, n, r, u }' \
			$(FUZZ_OUT)/$$t.log; \
	done
