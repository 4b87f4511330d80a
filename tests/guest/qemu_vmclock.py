# SPDX-License-Identifier: BSD-2-Clause
#
# qemu_vmclock.py - QEMU's own vmclock device (-device vmclock, QEMU 10.0 and
# later) and real live migrations: the guest of vm.py booted by a newer QEMU
# (unpacked from a Debian 13 root, run through that root's loader and
# libraries), migrated MIGRATIONS times in a row to a fresh QEMU process
# started with -incoming, while this build's vmclockd, chronyd and
# vmclockctl watch run inside.
#
#   python3 qemu_vmclock.py --builddir B --srcdir S --workdir W --qemu-root R
#
# R holds (at least) usr/bin/qemu-system-x86_64, usr/lib64 (the loader),
# usr/lib/x86_64-linux-gnu and usr/share/{qemu,seabios} of the newer root.
#
# QEMU's page carries the marker only (counter invalid, status unknown, no
# flags, no notification); QEMU adds one to disruption_marker whenever a
# migration stream is loaded.  vmclockd feeds nothing from it, so chronyd's
# reset is seen on an NTP source: a second chronyd in the guest serving its
# local clock on loopback, whose reachability register chronyd clears on
# `reset sources` (chronyc -c sources).  Everything is counted from
# structured output: the published state (vmclockctl daemon --json), the page
# (vmclockctl status --json), vmclockctl watch --json, chronyc -c, and
# vmclockd's stderr by the log module's level prefix only.
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm  # noqa: E402
import run  # noqa: E402  (its check(), counters and save_logs())

MIGRATIONS = 3
RAM_MB = 512
# vmclockd's timer (no notifications on QEMU's device): long beside the
# 31 ms burst interval, so that a burst shows in the tick rate.
INTERVAL_MS = 250
BURST_INTERVAL_MS = 31          # vmclockd's default burst-interval-ms
BURST_MS = 4000                 # and burst-ms
# A tick rate above this many times the timer's is a burst.
BURST_FACTOR = 2.5
# chronyd's NTP source polls every 2^NTP_POLL s; the reachability register
# is full (0o377) after eight polls: 8 s after a reset, many times the
# observer's period (0.3 to 1.3 s under TCG, with ASan), so that no reset
# goes unseen; two resets closer than that period are seen as one.
NTP_POLL = 0
REACH_FULL = 0o377
NTP_PORT = 11123
# vmclockd's stderr lines: "vmclockd: <level prefix>text" (daemon/log.c).
WARNING_LINE = re.compile(r"^vmclockd: (warning|error|fatal): ")
UNKNOWN_U32 = 4294967295


class MigratingGuest(vm.Guest):
    """vm.Guest on the newer QEMU with its vmclock device, no page of ours
    and no notification: each QEMU process of the guest's life has its own
    QMP socket, control-channel socket and console file (instance N); a
    migration starts instance N+1 with -incoming, connects to its control
    channel before the move (a socket chardev with no client drops what the
    guest writes) and migrates instance N into it."""

    def __init__(self, workdir, kernel_dir, qemu_root):
        super().__init__(workdir, kernel_dir)
        self.root = qemu_root
        self.instance = 0
        self.incoming = None
        self._paths(0)

    def _paths(self, n):
        self.instance = n
        self.qmp_path = os.path.join(self.dir, "qmp-%d.sock" % n)
        self.ctl_path = os.path.join(self.dir, "ctl-%d.sock" % n)
        self.console = os.path.join(self.dir, "console-%d.log" % n)

    def qemu_command(self):
        """The newer QEMU, through its own root's loader and libraries, its
        modules and firmware from that root only."""
        lib = os.path.join(self.root, "usr/lib/x86_64-linux-gnu")
        return ["env", "QEMU_MODULE_DIR=" + os.path.join(lib, "qemu"),
                os.path.join(self.root, "usr/lib64/ld-linux-x86-64.so.2"), "--library-path", lib,
                os.path.join(self.root, "usr/bin/qemu-system-x86_64"),
                "-L", os.path.join(self.root, "usr/share/qemu"),
                "-L", os.path.join(self.root, "usr/share/seabios")]

    def qemu_args(self, initrd, append):
        args = self.qemu_command() + [
            "-accel", "tcg", "-display", "none", "-nodefaults", "-no-reboot",
            "-m", str(RAM_MB), "-smp", "1",
            "-machine", "q35", "-device", "vmclock",
            "-serial", "file:" + self.console,
            "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % self.ctl_path,
            "-device", "isa-serial,chardev=ctl",
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
            "-kernel", self.kernel, "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 quiet loglevel=4 " + append]
        if self.incoming:
            args += ["-incoming", self.incoming]
        return args

    def version(self):
        return vm.run(self.qemu_command() + ["--version"]).splitlines()[0]

    def _take(self):
        return (self.proc, self.qmp, self.qmp_file, self.ctl, self.instance)

    def _put(self, t):
        self.proc, self.qmp, self.qmp_file, self.ctl, n = t
        self._paths(n)

    def migrate(self, initrd, timeout=120):
        """Live-migrates the running guest into a new QEMU process; returns
        (seconds QMP took from migrate to completed, downtime ms QEMU
        reports).  The guest's control line buffer carries over."""
        old = self._take()
        n = self.instance + 1
        uri = "unix:" + os.path.join(self.dir, "migrate-%d.sock" % n)
        self._put((None, None, None, None, n))
        self.incoming = uri
        try:
            self._boot(initrd, "")
        except Exception:
            self.stop()
            self._put(old)
            raise
        finally:
            self.incoming = None
        new = self._take()
        self._put(old)
        try:
            # Not the default 128 MiB/s: the guest's few hundred MiB on a
            # Unix socket move in a second.
            self.qmp_cmd("migrate-set-parameters", **{"max-bandwidth": 4 << 30})
            t0 = time.monotonic()
            self.qmp_cmd("migrate", uri=uri)
            deadline = t0 + timeout
            while True:
                info = self.qmp_cmd("query-migrate")
                status = info.get("status")
                if status == "completed":
                    break
                if status in ("failed", "cancelled") or time.monotonic() > deadline:
                    raise vm.GuestError("migration %d: %s" % (n, info))
                time.sleep(0.05)
        except Exception:
            # The guest stays where it was; the new process goes.
            self._put(new)
            self.stop()
            self._put(old)
            raise
        took = time.monotonic() - t0
        downtime = info.get("downtime")
        self.stop()
        self._put(new)
        deadline = time.monotonic() + 30
        while self.qmp_cmd("query-status").get("status") != "running":
            if time.monotonic() > deadline:
                raise vm.GuestError("migration %d: the new QEMU never ran the guest" % n)
            time.sleep(0.05)
        return took, downtime


CLIENT_CONF = """refclock SOCK /run/t/vmc.sock refid VMC poll -3 filter 1 precision 1e-8
server 127.0.0.1 port %d minpoll %d maxpoll %d iburst
bindcmdaddress /run/t/chronyd.sock
cmdport 0
port 0
pidfile /run/chronyd.pid
logdir /tmp
""" % (NTP_PORT, NTP_POLL, NTP_POLL)
SERVER_CONF = """local stratum 3
allow 127.0.0.1
bindaddress 127.0.0.1
port %d
cmdport 0
bindcmdaddress /run/t/server.sock
pidfile /run/chronyd-server.pid
""" % NTP_PORT

CHRONYC = "chronyc -c -n -h /run/t/chronyd.sock"
PAGE = "vmclockctl -d /dev/vmclock0 status --json 2>/dev/null"


def observation(page):
    """One observation as a guest command: four lines, the guest's uptime,
    the NTP source's reachability (octal, as chronyc prints it), the page as
    the guest reads it (if PAGE) and the state vmclockd publishes; "-" for
    what could not be read."""
    return ("read u _ </proc/uptime; "
            "r=$(%s sources 2>/dev/null | awk -F, '$3 == \"127.0.0.1\" { print $6 }'); "
            "p=$(%s); d=$(vmclockctl -s /run/vmclockd.state daemon --json 2>/dev/null); "
            "echo \"$u\"; echo \"${r:--}\"; echo \"${p:--}\"; echo \"${d:--}\""
            % (CHRONYC, PAGE if page else "true"))


# Observations without the page, every 0.1 s in the background, for as
# long as /run/observing exists (no signal: the loop ends itself).
OBSERVER = ("touch /run/observing; (while [ -e /run/observing ]; do %s; sleep 0.1; done; "
            "touch /run/observed) >/tmp/observe.log 2>&1 3>&- &" % observation(False))
STOP_OBSERVER = ("rm /run/observing; i=0; while [ ! -e /run/observed ] && [ $i -lt 100 ]; do "
                 "sleep 0.1; i=$((i+1)); done; test -e /run/observed")
# The published state read every 50 ms or so (each read takes tens of ms under
# TCG), started before a migration, until STATE_READS readings after the
# published marker moved from the one given (at most STATE_SPIN readings in
# all), to /tmp/state-K.log: chronyd's resync after its reset may be shorter
# than the observer's period.  Not back to back: the guest's one emulated
# CPU is chronyd's too, and vmclockd waits 100 ms for its replies.
STATE_READS = 60
STATE_SPIN = 1000
DENSE = ("n=0; i=0; while [ $n -lt %d ] && [ $i -lt %d ]; do "
         "d=$(vmclockctl -s /run/vmclockd.state daemon --json 2>&1); echo \"$d\"; "
         "case $d in *'\"disruption_marker\":%%d,'*) ;; *) n=$((n+1));; esac; i=$((i+1)); "
         "sleep 0.05; done >/tmp/state-%%d.log 2>&1 3>&- &" % (STATE_READS, STATE_SPIN))


def parse_observations(text):
    """[(uptime s, reach or None, page dict or None, state dict or None)]."""
    lines = text.splitlines()
    out = []
    for i in range(0, len(lines) - 3, 4):
        try:
            up = float(lines[i])
        except ValueError:
            continue

        def js(s):
            try:
                return json.loads(s)
            except ValueError:
                return None
        reach = int(lines[i + 1], 8) if re.match(r"^[0-7]+$", lines[i + 1]) else None
        out.append((up, reach, js(lines[i + 2]), js(lines[i + 3])))
    return out


class Observations:
    """Every observation the host asked for, beside the background ones."""

    def __init__(self):
        self.seen = []

    def take(self, sh):
        obs = parse_observations(sh.out(observation(True)))
        if not obs:
            raise vm.GuestError("no observation from the guest")
        self.seen.append(obs[0])
        return obs[0]


def ticks(state):
    """vmclockd's ticks: every sample is either fed or withheld for a reason."""
    return state["samples_fed"] + sum(state["withheld"].values())


def resets(reaches):
    """chronyd's `reset sources` clears the reachability register: a fall
    to a register holding only the newest polls (0, 1, 3, 7, ...).  A lost
    poll shifts a zero in and is not one."""
    n, prev = 0, None
    for r in reaches:
        if r is None:
            continue
        if prev is not None and r < prev and r & (r + 1) == 0:
            n += 1
        prev = r
    return n


def wait_steady(sh, obs, since_handled, timeout=60):
    """Until chronyd's NTP source is fully reachable, vmclockd has handled
    the page's marker and (SINCE_HANDLED: guest uptime) any burst after it
    is over.  Returns the observation."""
    deadline = time.monotonic() + timeout
    while True:
        up, reach, page, state = obs.take(sh)
        if (reach == REACH_FULL and page and state and
                state["disruption_marker"] == page["disruption_marker"] and
                up >= since_handled + (BURST_MS + 2 * INTERVAL_MS) / 1000.0):
            return up, reach, page, state
        if time.monotonic() > deadline:
            raise vm.GuestError("not steady after %d s: reach %s, page %s, state %s" % (
                timeout, None if reach is None else "%o" % reach,
                page and page.get("disruption_marker"), state and state.get("disruption_marker")))
        time.sleep(0.3)


def wait_handled(sh, obs, marker, timeout=30):
    """Until the published state says vmclockd handled MARKER: the observation."""
    deadline = time.monotonic() + timeout
    while True:
        o = obs.take(sh)
        if o[3] and o[3]["disruption_marker"] >= marker:
            return o
        if time.monotonic() > deadline:
            raise vm.GuestError("vmclockd did not handle marker %d in %d s" % (marker, timeout))
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--qemu-root", required=True)
    a = ap.parse_args()
    B, S, W = a.builddir, a.srcdir, a.workdir
    t_start = time.monotonic()

    cache = os.path.join(B, "tests", "guest", "cache")
    r = subprocess.run(["sh", os.path.join(S, "tests", "guest", "fetch-kernel.sh"), cache],
                       text=True, capture_output=True)
    if r.returncode != 0:
        run.fatal("no kernel with the ptp_vmclock driver: %s" % r.stderr.strip())
    g = MigratingGuest(W, os.path.join(cache, "kernel"), a.qemu_root)

    def binary(rel):
        p = os.path.join(B, os.path.dirname(rel), ".libs", os.path.basename(rel))
        return p if os.path.exists(p) else os.path.join(B, rel)

    try:
        print("kernel: Debian linux %s; %s" % (g.kernel_version, g.version()), flush=True)
        files = {"init": os.path.join(S, "tests", "guest", "init.sh")}
        for name, text in (("client.conf", CLIENT_CONF), ("server.conf", SERVER_CONF)):
            path = os.path.join(W, name)
            with open(path, "w") as f:
                f.write(text)
            files["etc/" + name] = path
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(B, "refclock", ".libs"))
        initrd = g.build_initrd("/bin/busybox", None, files,
                                {"bin/vmclockd": binary("daemon/vmclockd"),
                                 "bin/vmclockctl": binary("tools/vmclockctl"),
                                 "usr/sbin/chronyd": "/usr/sbin/chronyd",
                                 "usr/bin/chronyc": "/usr/bin/chronyc"}, env)
        g.boot(initrd)
        sh = vm.Shell(g)
        sh.hello(90)
        print("booted in %.1f s" % (time.monotonic() - t_start), flush=True)
        test(g, sh, initrd, W)
    except (vm.GuestError, OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError,
            TypeError) as e:
        run.check("the guest ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        shut_down(g, W)
    print("wall time %.0f s" % (time.monotonic() - t_start))
    print("%d passed, %d failed" % (run.PASS, run.FAIL))
    return 0 if run.FAIL == 0 else 1


def shut_down(g, W):
    """The guest's logs into W (whatever state it is in), then QEMU goes."""
    try:
        if g.ctl:
            vm.Shell(g).run("dmesg >/tmp/kernel.log")
        run.save_logs(g, W)
    except (vm.GuestError, OSError):
        pass
    g.stop()


def test(g, sh, initrd, W):
    rc, out = sh.run("insmod /lib/modules/ptp_vmclock.ko && ls -l /dev/vmclock0")
    run.check("ptp_vmclock binds QEMU's vmclock device as /dev/vmclock0", rc == 0, out[-200:])
    page = json.loads(sh.out("vmclockctl -d /dev/vmclock0 status --json"))
    run.check("QEMU's page carries the marker only (counter invalid, status unknown, no flags)",
              page["counter_id"] == "invalid" and page["clock_status"] == "unknown"
              and not page["flags"], "counter %s, status %s, flags %s" % (
                  page["counter_id"], page["clock_status"], page["flags"]))

    sh.out("ifconfig lo 127.0.0.1 up")
    sh.out("chronyd -x -d -u root -f /etc/server.conf >/tmp/chronyd-server.log 2>&1 3>&- &")
    sh.out("chronyd -x -d -u root -f /etc/client.conf >/tmp/chronyd.log 2>&1 3>&- &")
    sh.out("i=0; while [ ! -S /run/t/chronyd.sock ] && [ $i -lt 100 ]; do sleep 0.1; "
           "i=$((i+1)); done; test -S /run/t/chronyd.sock")
    sh.out("vmclockd --foreground --config /dev/null --device /dev/vmclock0 "
           "--interval-ms %d --burst-interval-ms %d --burst-ms %d "
           "--chrony-sock /run/t/vmc.sock --chrony-cmd /run/t/chronyd.sock "
           "--state-dir /run/vmclockd --state-file /run/vmclockd.state "
           ">/tmp/vmclockd.log 2>&1 3>&- &" % (INTERVAL_MS, BURST_INTERVAL_MS, BURST_MS))
    sh.out("vmclockctl -d /dev/vmclock0 watch --json --interval-ms 100 "
           ">/tmp/watch-json.log 2>/tmp/watch.log 3>&- &")
    sh.out(OBSERVER)

    # Steady: synchronised to the NTP source, the marker handled (at start:
    # recorded), no burst.
    obs = Observations()
    t0 = time.monotonic()
    steady = wait_steady(sh, obs, 0.0, timeout=90)
    print("steady in %.1f s: page marker %d" % (time.monotonic() - t0,
                                                 steady[2]["disruption_marker"]), flush=True)
    marks = []              # per migration: guest uptime just before it
    log_lines = []          # and the lines of vmclockd's stderr by then
    for k in range(1, MIGRATIONS + 1):
        up, _, page, state = steady
        marker = page["disruption_marker"]
        marks.append(up)
        log_lines.append(int(sh.out("wc -l </tmp/vmclockd.log")))
        sh.out(DENSE % (marker, k))
        took, downtime = g.migrate(initrd)
        print("migration %d: %.2f s (QEMU's downtime %s ms), now QEMU process %d" % (
            k, took, downtime, g.instance), flush=True)
        o = wait_handled(sh, obs, marker + 1)
        run.check("migration %d: the page's marker moved by one" % k,
                  o[2] is not None and o[2]["disruption_marker"] == marker + 1,
                  "%d -> %s" % (marker, o[2] and o[2]["disruption_marker"]))
        steady = wait_steady(sh, obs, o[0])
        run.check("migration %d: vmclockd's handled marker is QEMU's page marker" % k,
                  steady[3]["disruption_marker"] == steady[2]["disruption_marker"] == marker + 1,
                  "state %d, page %d" % (steady[3]["disruption_marker"],
                                         steady[2]["disruption_marker"]))
    marks.append(steady[0])
    log_lines.append(int(sh.out("wc -l </tmp/vmclockd.log")))
    sh.out(STOP_OBSERVER)
    background = parse_observations(sh.out("cat /tmp/observe.log", timeout=30))
    dense = [[json.loads(l) for l in sh.out("cat /tmp/state-%d.log" % k, timeout=30).splitlines()
              if l.startswith("{")] for k in range(1, MIGRATIONS + 1)]
    analyse(background, sorted(background + obs.seen, key=lambda o: o[0]), dense, marks,
            sh.out("cat /tmp/vmclockd.log", timeout=30).splitlines(), log_lines,
            [json.loads(l) for l in sh.out("cat /tmp/watch-json.log").splitlines() if l.strip()])


def tick_rate(states):
    """vmclockd's ticks per second from the first of STATES to the last."""
    if len(states) < 2:
        return 0.0, float("inf")
    dt = (states[-1]["heartbeat_monotonic_ns"] - states[0]["heartbeat_monotonic_ns"]) * 1e-9
    return dt, (ticks(states[-1]) - ticks(states[0])) / dt if dt > 0 else float("inf")


def analyse(background, obs, dense, marks, log, log_lines, watch):
    """BACKGROUND: the background observer's observations, one at a time
    (reachability is counted there only: two observations taken at once may
    read chronyd in the other order than their uptimes); OBS: every
    observation in uptime order; DENSE: per migration, the state read back
    to back around it; MARKS: the guest's uptime before each migration and
    at the end; LOG: vmclockd's stderr, LOG_LINES its length at the marks;
    WATCH: vmclockctl watch --json's events."""
    def within(seq, k):
        return [o for o in seq if marks[k - 1] <= o[0] < marks[k]]

    first = [o for o in background if o[0] < marks[0]]
    run.check("before any migration: no reset of chronyd's sources seen",
              len(first) > 0 and resets([o[1] for o in first]) == 0,
              "%d observations" % len(first))
    dt, rate = tick_rate([o[3] for o in first if o[3]])
    print("vmclockd's tick rate without disruptions: %.1f/s over %.1f s (timer %d ms)"
          % (rate, dt, INTERVAL_MS), flush=True)

    for k in range(1, MIGRATIONS + 1):
        states = [o[3] for o in within(obs, k) if o[3]]
        m0 = states[0]["disruption_marker"] if states else -1
        markers = sorted(set(s["disruption_marker"] for s in states))
        counts = [s["disruptions"] for s in states]
        run.check("migration %d: vmclockd handled it once (published marker %d -> %d, "
                  "disruptions +1)" % (k, m0, m0 + 1),
                  markers == [m0, m0 + 1] and bool(counts) and counts[-1] - counts[0] == 1,
                  "markers %s, disruptions %s -> %s" % (markers, counts[:1], counts[-1:]))
        seen = within(background, k)
        n = resets([o[1] for o in seen])
        run.check("migration %d: chronyd's sources were reset once (reachability of its NTP "
                  "source cleared)" % k, n == 1,
                  "%d resets seen in %d observations" % (n, len(seen)))
        changes = [w for w in watch if w.get("event") == "change" and
                   w.get("disruption_marker") == m0 + 1]
        run.check("migration %d: vmclockctl watch --json reports the change once" % k,
                  len(changes) == 1 and "disruption_marker" in changes[0]["changed"],
                  "%d change events for marker %d" % (len(changes), m0 + 1))
        # Issue 18: the warning a marker-only page is met with at start came
        # again after every migration.  Any warning-level line said before
        # is a repetition (a disruption's own names its markers).
        before = set(l for l in log[:log_lines[k - 1]] if WARNING_LINE.match(l))
        again = []
        for line in log[log_lines[k - 1]:log_lines[k]]:
            if WARNING_LINE.match(line):
                if line in before:
                    again.append(line)
                before.add(line)
        run.check("migration %d: vmclockd repeats no warning-level line after it" % k,
                  not again, " | ".join(again)[-400:])
        # One DISRUPTION record for it (vmclockd's stderr carries the
        # journal fields), covering one marker change, and no field a page
        # without time cannot give.
        records = [l for l in log[log_lines[k - 1]:log_lines[k]]
                   if WARNING_LINE.match(l) and " MARKER_CHANGES=" in l]
        mine = [l for l in records if " NEW_MARKER=%d " % (m0 + 1) in l + " "]
        run.check("migration %d: one disruption record, NEW_MARKER=%d MARKER_CHANGES=1, no "
                  "unknown field" % (k, m0 + 1),
                  len(records) == 1 and len(mine) == 1 and
                  re.search(r" MARKER_CHANGES=1( |$)", mine[0]) is not None and
                  not re.search(r" (STEP_NS|FREQ_CHANGE_PPM|COUNTER_PERIOD_\w+)=", mine[0]),
                  " | ".join(records)[-400:])
        moved = [d for d in dense[k - 1] if d["disruption_marker"] != m0]
        run.check("migration %d: the published state was read closely as it was handled" % k,
                  0 < len(moved) < len(dense[k - 1]), "%d readings, %d after the "
                  "published marker moved" % (len(dense[k - 1]), len(moved)))
        # The tick rate from the handled marker's publication on, for most
        # of a burst's length.
        after = sorted((s for s in states + dense[k - 1] if s["disruption_marker"] == m0 + 1),
                       key=lambda s: s["heartbeat_monotonic_ns"])
        dt, rate = tick_rate([s for s in after if s["heartbeat_monotonic_ns"] -
                              after[0]["heartbeat_monotonic_ns"] <= (BURST_MS - 500) * 10**6])
        run.check("migration %d: no burst of ticks when nothing can be fed (<= %.1fx the %d "
                  "ms timer's rate)" % (k, BURST_FACTOR, INTERVAL_MS),
                  rate <= BURST_FACTOR * 1000.0 / INTERVAL_MS,
                  "%.1f ticks/s over %.1f s after the disruption was handled" % (rate, dt))
        check_drift("migration %d:" % k, states + dense[k - 1])
    check_drift("from start to end:", [o[3] for o in obs if o[3]] + sum(dense, []))
    total = [w for w in watch if w.get("event") == "change"]
    run.check("vmclockctl watch --json reports %d changes in all" % MIGRATIONS,
              len(total) == MIGRATIONS, "%d" % len(total))


def check_drift(when, states):
    """drift_ppb is a number below 2^32 - 1 or null in every one of STATES."""
    drifts = [s.get("drift_ppb", "absent") for s in states]
    bad = [d for d in drifts if d == UNKNOWN_U32 or d == "absent"]
    run.check("%s vmclockctl daemon --json never prints drift_ppb %d (null when unknown)"
              % (when, UNKNOWN_U32), bool(drifts) and not bad,
              "%d of %d readings: %s" % (len(bad), len(drifts), sorted(set(map(str, bad)))))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
