#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
#
# test-alerts.sh - the metrics and the alerting rules end to end, as an
# operator wires them (vmclockd(8), METRICS), on the loopback only:
# vmclockd feeding a real chronyd (-x, without CAP_SYS_TIME) writes its
# metrics-file; node_exporter (Debian's prometheus-node-exporter, only its
# textfile collector) serves it through a symbolic link in its textfile
# directory; Prometheus (Debian's prometheus, a private configuration and
# storage, 1 s scrape and evaluation) scrapes it and evaluates the shipped
# prometheus/vmclockd-alerts.yml.  (First, a vmclockd of its own shows that
# a disruption is written at once.)  A simulated migration makes
# VmclockDisruption fire, and vmclockd stopped makes VmclockdDown fire, as
# read from Prometheus's HTTP API (/api/v1/alerts, JSON).  The times from
# the migration and from the stop to each alert firing are printed.
. "$(dirname "$0")/lib.sh"
require_chronyd
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || true)}
NODE_EXPORTER=${NODE_EXPORTER:-$(command -v prometheus-node-exporter || true)}
[ -n "$PROMETHEUS" ] || skip_or_fail "prometheus not installed (package prometheus)"
[ -n "$NODE_EXPORTER" ] || skip_or_fail "node_exporter not installed (package prometheus-node-exporter)"

# A port on 127.0.0.1 that is free now (the kernel's choice).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
NE_PORT=$(free_port)
PROM_PORT=$(free_port)
[ "$NE_PORT" != "$PROM_PORT" ] || PROM_PORT=$(free_port)

# api PATH ARGS...: python3 prints, from Prometheus's JSON at PATH, what
# the expression after it selects (no proxy: the loopback only).
api() {
	python3 - "$PROM_PORT" "$@" <<'PY'
import json, sys, urllib.request
port, path, what = sys.argv[1], sys.argv[2], sys.argv[3]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
data = json.load(opener.open(f"http://127.0.0.1:{port}{path}", timeout=2))
assert data["status"] == "success"
if what == "alert":
	# alert NAME STATE: the labels of each alert of that name in that state
	for a in data["data"]["alerts"]:
		if a["labels"]["alertname"] == sys.argv[4] and a["state"] == sys.argv[5]:
			print(json.dumps(a["labels"], sort_keys=True))
elif what == "value":
	# value: the instant query's single value
	r = data["data"]["result"]
	print(r[0]["value"][1] if len(r) == 1 else "")
PY
}
alert_firing() { [ -n "$(api /api/v1/alerts alert "$1" firing)" ]; }
query() { api "/api/v1/query?query=$1" value; }
query_is() { [ "$(query "$1")" = "$2" ]; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# vmclockd's metrics in its own directory, linked from node_exporter's.
mkdir -p "$T/textfile"
ln -s "$T/run/vmclockd.prom" "$T/textfile/vmclockd.prom"

start_sim
# A disruption reaches the file at once, not at the next interval: a
# vmclockd of its own (no chronyd, 10-minute interval) sees a migration.
"$VMCLOCKD" --config /dev/null --device "$T/page" --chrony-sock= --chrony-cmd= \
	--state-dir "$T/once-state" --publish-file "$T/once/state" \
	--metrics-file "$T/once/vmclockd.prom" --metrics-interval-ms 600000 >"$T/once.log" 2>&1 &
ONCE_PID=$!
PIDS="$PIDS $ONCE_PID"
check "first metrics: no disruption" \
	wait_for 10 grep -qx 'vmclock_disruptions_total 0' "$T/once/vmclockd.prom"
kill -USR1 "$SIM_PID"
check "a disruption rewrites the metrics file at once" \
	wait_for 2 grep -qx 'vmclock_disruptions_total 1' "$T/once/vmclockd.prom"
kill "$ONCE_PID"
wait "$ONCE_PID"

write_chrony_conf
start_chronyd || fail "chronyd started"
check "metrics-file without publish-file is a configuration error" \
	test "$("$VMCLOCKD" --config /dev/null --metrics-file "$T/m.prom" --publish-file= \
		--check-config >/dev/null 2>&1; echo $?)" = 1
# Whatever is planted at the temporary name is replaced, never followed.
mkdir -p "$T/run"
echo planted >"$T/target"
ln -s "$T/target" "$T/run/vmclockd.prom.tmp"
start_vmclockd --metrics-file "$T/run/vmclockd.prom"
check "vmclockd writes its metrics file" wait_for 10 test -s "$T/run/vmclockd.prom"
check "a link planted at the temporary name is not followed" test "$(cat "$T/target")" = planted
check "the metrics file holds vmclockctl's families" test \
	"$(grep '^# TYPE' "$T/run/vmclockd.prom")" = \
	"$("$CTL" -d "$T/page" -s "$T/run/state" metrics | grep '^# TYPE')"
check "vmclockd's metrics: its heartbeat fresh" grep -qx 'vmclock_daemon_up 1' "$T/run/vmclockd.prom"

"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NE_PORT" --collector.disable-defaults \
	--collector.textfile --collector.textfile.directory="$T/textfile" >"$T/node_exporter.log" 2>&1 &
PIDS="$PIDS $!"
cat >"$T/prometheus.yml" <<EOF2
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $top_srcdir/prometheus/vmclockd-alerts.yml
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:$NE_PORT']
EOF2
"$PROMETHEUS" --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prometheus.log" 2>&1 &
PIDS="$PIDS $!"

check "VMC selected" wait_for 30 vmc_selected
check "Prometheus scrapes vmclockd's metrics through node_exporter" \
	wait_for 60 query_is vmclock_daemon_up 1
check "no disruption counted yet" query_is vmclock_disruptions_total 0
check "the linked file is read without error" query_is node_textfile_scrape_error 0
check "no alert from a vmclockd at work" test -z "$(api /api/v1/alerts alert VmclockDisruption firing; api /api/v1/alerts alert VmclockdDown pending)"

t0=$(now_ms)
kill -USR1 "$SIM_PID"
check "VmclockDisruption fires after a migration" wait_for 30 alert_firing VmclockDisruption
t1=$(now_ms)
echo "# VmclockDisruption firing $((t1 - t0)) ms after the migration"
check "VmclockDisruption names the node" test "$(api /api/v1/alerts alert VmclockDisruption firing)" = \
	"{\"alertname\": \"VmclockDisruption\", \"instance\": \"127.0.0.1:$NE_PORT\", \"job\": \"node\", \"severity\": \"info\"}"
check "disruption counted in Prometheus" query_is vmclock_disruptions_total 1

t2=$(now_ms)
kill "$VMCLOCKD_PID"
wait "$VMCLOCKD_PID"
check "VmclockdDown fires once vmclockd has stopped" wait_for 120 alert_firing VmclockdDown
t3=$(now_ms)
echo "# VmclockdDown firing $((t3 - t2)) ms after vmclockd stopped"
check "VmclockdDown names vmclockd's file" test "$(api /api/v1/alerts alert VmclockdDown firing)" = \
	"{\"alertname\": \"VmclockdDown\", \"file\": \"$T/textfile/vmclockd.prom\", \"instance\": \"127.0.0.1:$NE_PORT\", \"job\": \"node\", \"severity\": \"critical\"}"
# 30 s stale and 30 s pending, the last write up to metrics-interval-ms
# (5 s) before the stop: not sooner than 55 s.
check "VmclockdDown not before 55 s" test $((t3 - t2)) -ge 55000
finish
