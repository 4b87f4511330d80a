# SPDX-License-Identifier: BSD-2-Clause
#
# run.py - the real ptp_vmclock driver in a QEMU guest (see vm.py for the
# machine): this build's vmclockd, chronyd and vmclockctl against
# /dev/vmclock0, the page written by vmclock-sim on the host, notifications
# sent as ACPI Notify through PCI hotplug.
#
#   python3 run.py --builddir B --srcdir S --workdir W [--mode test|bench|clock]
#
# test:  the checks of tests/test-guest.sh (see the check() calls below).
# bench: notification-speed recovery: wake-up to chronyd's last handover
#        reply, and vmclockd's CPU with a long timer vs the 62 ms one.
# clock: the guest's own clock through a migration (+2 ms, +30 ppm, one
#        notification), chronyd steering it for real (not -x: only the
#        guest's clock moves), its true error read every 50 ms from the
#        page's PTP clock by tests/clock-error; chrony's PHC refclock alone
#        against vmclockd with the handover's step, in the same run
#        (clock_bench below).
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm  # noqa: E402

PASS = FAIL = 0
DISRUPTIONS = 12
SIM_INTERVAL_MS = 100


def check(desc, ok, detail=""):
    global PASS, FAIL
    if ok:
        PASS += 1
        print("PASS: %s%s" % (desc, " (%s)" % detail if detail else ""), flush=True)
    else:
        FAIL += 1
        print("FAIL: %s%s" % (desc, " (%s)" % detail if detail else ""), flush=True)
    return ok


def fatal(msg):
    print("FAIL: %s" % msg, flush=True)
    print("%d passed, %d failed" % (PASS, FAIL + 1))
    sys.exit(1)


class Sim:
    """vmclock-sim writing the page inside the guest's RAM file."""

    def __init__(self, binary, guest, log, *args):
        self.binary, self.guest, self.logpath = binary, guest, log
        self.log = open(log, "a")
        self.proc = None
        self.restart(*args)

    def restart(self, *args):
        self.stop()
        self.proc = subprocess.Popen([self.binary, self.guest.ram, "--file-offset",
                                      str(self.guest.page_offset), "--interval-ms", str(SIM_INTERVAL_MS)]
                                     + list(args), stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=vm.die_with_parent)
        time.sleep(0.2)
        if self.proc.poll() is not None:
            fatal("vmclock-sim exited at once (see %s)" % self.logpath)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


CHRONY_CONF = """refclock SOCK /run/t/vmc.sock refid VMC poll -3 filter 1 precision 1e-8
bindcmdaddress /run/t/chronyd.sock
cmdport 0
port 0
pidfile /run/chronyd.pid
logdir /tmp
"""


def start_daemons(sh, vmclockd_args="", tag=""):
    sh.out("vmclockd --foreground --config /dev/null --device /dev/vmclock0 "
           "--chrony-sock /run/t/vmc.sock --chrony-cmd /run/t/chronyd.sock "
           "--state-dir /run/vmclockd --state-file /run/vmclockd.state --debug %s "
           ">>/tmp/vmclockd%s.log 2>&1 3>&- & echo $! >/run/vmclockd.pid" % (vmclockd_args, tag))
    sh.out("vmclockctl -d /dev/vmclock0 watch >>/tmp/watch%s.log 2>&1 3>&- & "
           "echo $! >/run/watch.pid" % tag)


def stop_daemons(sh):
    sh.run("kill $(cat /run/vmclockd.pid) $(cat /run/watch.pid); sleep 0.3")


def cpu_s(sh, name):
    """CPU time (s) of the guest process whose pid is in /run/NAME.pid, to
    the nanosecond (schedstat), not the 10 ms steps of utime + stime."""
    out = sh.out("cat /proc/$(cat /run/%s.pid)/schedstat" % name)
    return int(out.split()[0]) * 1e-9


def guest_now(sh):
    return float(sh.out("cat /proc/uptime").split()[0])


def vmc_selected(sh):
    rc, out = sh.run("chronyc -n -h /run/t/chronyd.sock sources")
    return rc == 0 and re.search(r"^#\* VMC", out, re.M) is not None


def wait_selected(sh, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if vmc_selected(sh):
            return True
        time.sleep(0.3)
    return False


def seq_count(sh):
    out = sh.out("vmclockctl -d /dev/vmclock0 status")
    return int(re.search(r"Seq count\s*:\s*(\d+)", out).group(1))


def tsc_check(sh):
    """Device time read in the guest (the guest's TSC through the page the
    host wrote from its own TSC) minus the host's realtime: the narrowest of
    five brackets.  Zero when the guest's TSC is the host's."""
    best = None
    for _ in range(5):
        t0 = time.time()
        out = sh.out("vmclockctl -d /dev/vmclock0 time --json")
        t1 = time.time()
        # UTC: a page keeping TAI says both.
        m = (re.search(r'"utc_sec":(\d+),"utc_nsec":(\d+)', out) or
             re.search(r'"sec":(\d+),"nsec":(\d+)', out))
        dev = int(m.group(1)) + int(m.group(2)) * 1e-9
        if best is None or t1 - t0 < best[1]:
            best = (dev - (t0 + t1) / 2, t1 - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--mode", default="test", choices=("test", "bench", "clock"))
    a = ap.parse_args()
    B, S, W = a.builddir, a.srcdir, a.workdir

    missing = [t for t in ("qemu-system-x86_64", "iasl", "ldd", "apt-get", "dpkg-deb", "xz")
               if not shutil.which(t)]
    for path, pkg in (("/bin/busybox", "busybox-static"), ("/usr/sbin/chronyd", "chrony"),
                      ("/usr/bin/chronyc", "chrony")):
        if not os.access(path, os.X_OK):
            missing.append("%s (%s)" % (path, pkg))
    if missing:
        fatal("missing: %s (.ci/setup installs them)" % ", ".join(missing))
    r = subprocess.run(["ldd", "/bin/busybox"], text=True, capture_output=True)
    if "not a dynamic" not in r.stdout + r.stderr:
        fatal("/bin/busybox is not static: install busybox-static")

    cache = os.path.join(B, "tests", "guest", "cache")
    r = subprocess.run(["sh", os.path.join(S, "tests", "guest", "fetch-kernel.sh"), cache],
                       text=True, capture_output=True)
    if r.returncode != 0:
        fatal("no kernel with the ptp_vmclock driver: %s" % r.stderr.strip())
    kdir = os.path.join(cache, "kernel")
    g = vm.Guest(W, kdir)
    print("kernel: Debian linux %s (%s)" % (g.kernel_version, kdir), flush=True)

    def binary(rel):
        p = os.path.join(B, os.path.dirname(rel), ".libs", os.path.basename(rel))
        return p if os.path.exists(p) else os.path.join(B, rel)

    t_start = time.monotonic()
    sim = None
    try:
        aml = g.derive_dsdt("/bin/busybox")
        print("DSDT derived with the notification in %.1f s" % (time.monotonic() - t_start),
              flush=True)
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(B, "refclock", ".libs"))
        conf = os.path.join(W, "chrony.conf")
        with open(conf, "w") as f:
            f.write(CHRONY_CONF)
        files = {"init": os.path.join(S, "tests", "guest", "init.sh"),
                 "etc/chrony.conf": conf,
                 "usr/share/zoneinfo/right/UTC": "/usr/share/zoneinfo/right/UTC"}
        for name, refclock in CLOCK_REFCLOCKS.items():
            files["etc/chrony-%s.conf" % name] = os.path.join(W, "chrony-%s.conf" % name)
            with open(files["etc/chrony-%s.conf" % name], "w") as f:
                f.write(CLOCK_CHRONY_CONF % refclock)
        initrd = g.build_initrd("/bin/busybox", aml, files,
                                {"bin/vmclockd": binary("daemon/vmclockd"),
                                 "bin/vmclockctl": binary("tools/vmclockctl"),
                                 "bin/chrony-observe": binary("tests/chrony-observe"),
                                 "bin/clock-error": binary("tests/clock-error"),
                                 "bin/verdict-timeline": binary("tests/verdict-timeline"),
                                 "usr/sbin/chronyd": "/usr/sbin/chronyd",
                                 "usr/bin/chronyc": "/usr/bin/chronyc"}, env)
        simbin = os.path.join(B, "tools", "vmclock-sim")
        g.boot(initrd)
        sh = vm.Shell(g)
        sh.hello(60)
        sim = Sim(simbin, g, os.path.join(W, "sim.log"), "--notify",
                  *(CLOCK_SIM_ARGS if a.mode == "clock" else []))
        if a.mode == "clock":
            return clock_bench(g, sh, sim, W)
        if a.mode == "bench":
            return bench(g, sh, sim, simbin, W)
        return test(g, sh, sim, simbin, W)
    except (vm.GuestError, OSError, subprocess.SubprocessError, ValueError,
            AttributeError) as e:
        check("the guest ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if sim:
            sim.stop()
        try:
            save_logs(g, W)
        except Exception:
            pass
        g.stop()
        print("wall time %.0f s" % (time.monotonic() - t_start))
    print("%d passed, %d failed" % (PASS, FAIL))
    return 1


def save_logs(g, W):
    sh = vm.Shell(g)
    if not g.ctl:
        return
    for name in sh.out("ls /tmp").split():
        if name.endswith(".log"):
            with open(os.path.join(W, "guest-" + name), "w") as f:
                f.write(sh.out("cat /tmp/" + name, timeout=10) + "\n")


def setup(g, sh, sim, sim_args, extra=(), chronyd=True):
    """The module, the device, the TSC check, chronyd (-x; not if
    chronyd is False).  The simulator keeps EXTRA arguments (and --notify)
    when it is restarted; SIM_ARGS gets them, and the counter offset.  False
    if the device cannot be used."""
    rc, out = sh.run("insmod /lib/modules/ptp_vmclock.ko && dmesg | grep -i vmclock")
    check("ptp_vmclock binds the ACPI device", rc == 0 and "registered miscdev" in out,
          out.replace("\n", " | ")[-200:])
    rc, out = sh.run("vmclockctl -d /dev/vmclock0 status")
    check("/dev/vmclock0 opens and reads", rc == 0 and "VCLK" in out, out[-200:])
    if rc != 0:
        return False
    # The guest's TSC under TCG is not the host's: measure the difference
    # through the page once, and have the simulator publish counter values
    # in the guest's terms, so the device time inside is the host's.
    delta, width = tsc_check(sh)
    period_ns = float(re.search(r"Counter period\s*:\s*\d+ \(([0-9.]+) ns",
                                sh.out("vmclockctl -d /dev/vmclock0 status")).group(1))
    ticks = int(round(delta * 1e9 / period_ns))
    print("TSC: guest device time - host realtime = %+.3f s (bracket %.1f ms): the guest's "
          "TSC under TCG %s" % (delta, width * 1e3, "is the host's" if abs(delta) < 0.05 else
                                "is not the host's; simulating with --counter-offset %d"
                                % ticks), flush=True)
    if abs(delta) >= 0.05:
        sim.restart("--notify", *extra, "--counter-offset", str(ticks))
        sim_args.extend(list(extra) + ["--counter-offset", str(ticks)])
        delta, width = tsc_check(sh)
        check("with the offset the guest's device time is the host's",
              abs(delta) <= max(0.02, width), "%+.1f ms, bracket %.1f ms"
              % (delta * 1e3, width * 1e3))
    else:
        sim_args.extend(extra)
    if not chronyd:
        return True

    sh.out("chronyd -x -d -u root -f /etc/chrony.conf >/tmp/chronyd.log 2>&1 3>&- &")
    sh.out("i=0; while [ ! -S /run/t/chronyd.sock ] && [ $i -lt 100 ]; do sleep 0.1; "
           "i=$((i+1)); done; test -S /run/t/chronyd.sock")
    return True


# The notification phase.  A disruption reaches the guest in two steps: the
# host writes the page, then the ACPI notification follows (the hotplug
# event's AML runs in the guest: milliseconds, up to ~0.2 s on a loaded
# machine under TCG).  A timer tick of vmclockd's that falls between the two
# sees the new marker first and the disruption counts as detected by the
# timer: the daemon is right, the test is not.  Every disruption starts a
# burst (a tick every burst-interval-ms) and the notified timer ticks every
# notified-interval-ms, so in this phase vmclockd runs with the longest
# notified interval it has (SMP_MAX_TICK_MS, 10 s) and a short burst, and the
# harness disrupts only once the guest shows the burst is over: the state
# file's heartbeat (written on every tick) is later than the burst's end and
# has not moved for longer than a burst interval.  The next tick is then
# ~10 s away, which no notification needs.
NOTIFY_BURST_MS = 1500
NOTIFY_ARGS = "--burst-ms %d --notified-interval-ms 10000" % NOTIFY_BURST_MS
# The guest's shell: until the heartbeat (monotonic ns) is later than a time
# (ms) and still the same QUIET_S later
# (several burst intervals): prints it.  Fails after ~20 s.
QUIET_S = 0.15
WAIT_QUIET = ("hb() { vmclockctl -s /run/vmclockd.state daemon --json | "
              "sed -n 's/.*\"heartbeat_monotonic_ns\": *\\([0-9]*\\).*/\\1/p'; }; "
              "a=$(hb); i=0; while :; do sleep %.2f; b=$(hb); "
              "[ -n \"$b\" ] && [ \"${b%%%%??????}\" -ge %%d ] && [ \"$b\" = \"$a\" ] && break; a=$b; "
              "i=$((i+1)); [ $i -lt 100 ] || exit 1; done; echo $b" % QUIET_S)
# Until vmclockd's log says the handover for a marker is done: prints the
# log (the monotonic time the handover ended is in it).
WAIT_RESET = ("i=0; until grep -q 'chronyd reset after disruption %d;' %s; do sleep 0.05; "
              "i=$((i+1)); [ $i -lt 200 ] || exit 1; done; cat %s")


def handover_done_ns(log, marker):
    """Monotonic ns at which the handover for MARKER ended, from vmclockd's
    log ("done at monotonic" on the line before "after disruption N")."""
    done = None
    for line in log.splitlines():
        m = re.search(r"done at monotonic (\d+)\.(\d{9})", line)
        if m:
            done = int(m.group(1)) * 10**9 + int(m.group(2))
        elif "chronyd reset after disruption %d;" % marker in line:
            return done
    return None


def acpi_gpe1(sh):
    """The guest's count of ACPI GPE 1 events, or None."""
    rc, out = sh.run("cat /sys/firmware/acpi/interrupts/gpe01")
    try:
        return int(out.split()[0]) if rc == 0 else None
    except (ValueError, IndexError):
        return None


def notification_phase(g, sh, sim):
    """DISRUPTIONS migrations, each written by the host and then notified,
    each once the previous one's burst is over.  Returns the log, the watch
    output, the page updates, wall, CPU of vmclockd and watch, and how many
    times chronyd reselected VMC after a handover."""
    log_path = "/tmp/vmclockd-notified.log"
    start_daemons(sh, NOTIFY_ARGS, tag="-notified")
    seq0, marker = g.page_header()
    up0 = guest_now(sh)
    cpu_d0, cpu_w0 = cpu_s(sh, "vmclockd"), cpu_s(sh, "watch")
    after_ns, reselected = 0, 0
    for i in range(DISRUPTIONS):
        rc, _ = sh.run(WAIT_QUIET % (after_ns // 10**6), timeout=40)
        if rc != 0:
            check("vmclockd's burst ended before disruption %d" % (i + 1), False)
        marker += 1
        sim.signal(signal.SIGUSR1)
        if not g.wait_marker(marker):
            fatal("vmclock-sim did not write marker %d" % marker)
        g.notify()
        rc, log = sh.run(WAIT_RESET % (marker, log_path, log_path), timeout=40)
        done = handover_done_ns(log, marker) if rc == 0 else None
        # After the handover chronyd has reset VMC: selected again means
        # reselected on the burst's samples (nothing feeds it after the
        # burst; its reachability outlives the last sample by ~1 s).
        if done is not None and wait_selected(sh, NOTIFY_BURST_MS * 1e-3 + 1.0):
            reselected += 1
        if done is None:
            done = int(guest_now(sh) * 1e9)
        after_ns = done + NOTIFY_BURST_MS * 10**6 + 200 * 10**6
    up1 = guest_now(sh)
    cpu_d1, cpu_w1 = cpu_s(sh, "vmclockd"), cpu_s(sh, "watch")
    updates = (g.page_header()[0] - seq0) // 2
    log = sh.out("cat %s" % log_path, timeout=10)
    watch = sh.out("cat /tmp/watch-notified.log")
    stop_daemons(sh)
    return log, watch, updates, up1 - up0, cpu_d1 - cpu_d0, cpu_w1 - cpu_w0, reselected


def test(g, sh, sim, simbin, W):
    sim_args = []
    if not setup(g, sh, sim, sim_args):
        return finish()
    start_daemons(sh)
    check("chronyd selects VMC fed by vmclockd", wait_selected(sh, 30))
    # The defaults and the recommended refclock line are one decision: a
    # sample in each of chronyd's 125 ms polls on the notifying device too,
    # so after eight polls the reach register is full.
    time.sleep(1.5)
    out = sh.out("chronyc -n -c -h /run/t/chronyd.sock sources")
    row = [r.split(",") for r in out.splitlines() if ",VMC," in r]
    check("chronyd's reach of VMC is 377 with vmclockd's defaults on a notifying device",
          bool(row) and row[0][5] == "377", out.strip()[-200:])
    stop_daemons(sh)
    # With notified-interval-ms 1000 the timer waits a second: the
    # heartbeat's timeout must outlive that wait, or readers take vmclockd
    # for gone at the end of every quiet second.
    start_daemons(sh, "--notified-interval-ms 1000", tag="-long")
    time.sleep(1.0)
    out = sh.out("vmclockctl -s /run/vmclockd.state daemon --json")
    m = re.search(r'"heartbeat_timeout_ms": *(\d+)', out)
    check("the heartbeat timeout covers two 1 s notified ticks",
          m is not None and int(m.group(1)) >= 2000, m.group(0) if m else out[-200:])

    # ---- the host stalls mid-update: read() returns ETIMEDOUT ----------
    log = sh.out("cat /tmp/vmclockd-long.log", timeout=10)
    cpu_d0, cpu_w0 = cpu_s(sh, "vmclockd"), cpu_s(sh, "watch")
    up0 = guest_now(sh)
    for i in range(2):
        sim.signal(signal.SIGHUP)
        time.sleep(0.1)
        g.notify()
        time.sleep(2.0)
    up1 = guest_now(sh)
    cpu_d1, cpu_w1 = cpu_s(sh, "vmclockd"), cpu_s(sh, "watch")
    log2 = sh.out("cat /tmp/vmclockd-long.log", timeout=10)[len(log):]
    # Each timed-out read spins 100 ms in the driver: a handful is the price.
    check("vmclockd meets ETIMEDOUT without spinning", cpu_d1 - cpu_d0 <= 0.25 * (up1 - up0),
          "%.2f s CPU in %.1f s" % (cpu_d1 - cpu_d0, up1 - up0))
    check("vmclockctl watch meets ETIMEDOUT without spinning",
          cpu_w1 - cpu_w0 <= 0.25 * (up1 - up0),
          "%.2f s CPU in %.1f s" % (cpu_w1 - cpu_w0, up1 - up0))
    check("vmclockd says the device read timed out", "the device read timed out" in log2,
          log2.strip().replace("\n", " | ")[-300:])
    stop_daemons(sh)

    # ---- disruptions with notifications --------------------------------
    # The driver answers poll() readable whenever seq_count moved since the
    # last read, so vmclockd's wake-ups alone do not show that a
    # notification came: the ACPI event count does (GPE 1 runs the Notify).
    gpe0 = acpi_gpe1(sh)
    log, watch, updates, wall, cpu_d, cpu_w, reselected = notification_phase(g, sh, sim)
    gpe1 = acpi_gpe1(sh)
    check("the guest took one ACPI GPE 1 event (the Notify) per migration",
          gpe0 is not None and gpe1 is not None and gpe1 - gpe0 >= DISRUPTIONS,
          "%s -> %s for %d" % (gpe0, gpe1, DISRUPTIONS))
    notified = len(re.findall(r"disruption detected via notification", log))
    timer = len(re.findall(r"disruption detected via timer", log))
    resets = len(re.findall(r"chronyd reset: dfreq", log))
    changes = len(re.findall(r"^\S+ change marker=", watch, re.M))
    check(">= 100 page updates seen by the guest", updates >= 100, "%d" % updates)
    check("every disruption detected on a notification wake-up",
          notified == DISRUPTIONS, "%d of %d" % (notified, DISRUPTIONS))
    check("no disruption detected by the timer", timer == 0, "%d" % timer)
    check("no 'always readable' fallback", "always readable" not in log)
    check("the chrony handover completes after each migration", resets == DISRUPTIONS,
          "%d resets" % resets)
    check("chronyd reselects VMC after each migration", reselected == DISRUPTIONS,
          "%d of %d" % (reselected, DISRUPTIONS))
    check("vmclockctl watch reports each change", changes == DISRUPTIONS,
          "%d of %d" % (changes, DISRUPTIONS))
    check("vmclockctl watch sleeps between changes", cpu_w <= 0.02 * wall,
          "%.2f s CPU in %.1f s" % (cpu_w, wall))
    print("vmclockd: %.2f s CPU in %.1f s with notifications (%s)" % (cpu_d, wall, NOTIFY_ARGS))

    # ---- a page without NOTIFICATION_PRESENT: POLLHUP, the timer --------
    sim.restart(*sim_args)
    start_daemons(sh, tag="-nonotify")
    time.sleep(1.0)
    cpu_d0, cpu_w0 = cpu_s(sh, "vmclockd"), cpu_s(sh, "watch")
    up0 = guest_now(sh)
    sim.signal(signal.SIGUSR1)
    time.sleep(3.0)
    up1 = guest_now(sh)
    cpu_d1, cpu_w1 = cpu_s(sh, "vmclockd"), cpu_s(sh, "watch")
    log3 = sh.out("cat /tmp/vmclockd-nonotify.log", timeout=10)
    watch3 = sh.out("cat /tmp/watch-nonotify.log")
    check("without NOTIFICATION_PRESENT vmclockd samples on the timer",
          "no notifications" in log3 and "disruption detected via timer" in log3,
          log3.strip().replace("\n", " | ")[-300:])
    check("without NOTIFICATION_PRESENT vmclockd does not spin",
          cpu_d1 - cpu_d0 <= 0.25 * (up1 - up0),
          "%.2f s CPU in %.1f s" % (cpu_d1 - cpu_d0, up1 - up0))
    check("without NOTIFICATION_PRESENT watch reports the change and sleeps",
          "change marker=" in watch3 and cpu_w1 - cpu_w0 <= 0.1 * (up1 - up0),
          "%.2f s CPU in %.1f s" % (cpu_w1 - cpu_w0, up1 - up0))
    print("counts: page updates %d, notified disruptions %d, timer-detected disruptions %d "
          "(with notifications)" % (updates, notified, timer))
    stop_daemons(sh)
    phc_phase(sh, sim, sim_args)
    return finish()


def time_json(sh):
    out = sh.out("vmclockctl -d /dev/vmclock0 time --json")
    try:
        return json.loads(out)
    except ValueError:
        return {"unparsed": out[-200:]}


def phc_time_json(sh, reads=6):
    """The first of READS reads that took the PTP clock's cross-timestamp
    (uncertainty 1 ns), or the last.  A read may fall back to the bracket
    when the cross-timestamp fails: in the arm64 guest a quarter of the reads
    (10 of 40, their bracketed offsets within 40 ns of the clock's, so not a
    disagreement; most likely the kernel refusing a counter value a timer
    tick overtook, which TCG's slow emulation makes common).  Never taking
    it is the failure."""
    for _ in range(reads):
        j = time_json(sh)
        if j.get("offset_uncertainty_ns") == 1:
            break
    return j


def phc_phase(sh, sim, sim_args, device="AMZNC10C:00"):
    """The driver registers a PTP clock only for a page with unambiguous
    time (TAI, or UTC with a valid TAI offset), at probe: the UTC page so far
    has none, and offsets come from brackets; a TAI page, the driver bound
    again, gets /dev/ptp0, and vmclock_offset() its cross-timestamps.
    DEVICE: the platform device's name (ACPI's, or the device tree's)."""
    j = time_json(sh)
    check("a UTC page without TAI offset: no PTP clock, bracketed offsets",
          j.get("phc_index", 0) is None and j.get("offset_uncertainty_ns", 0) > 1, str(j))
    sim.restart(*(sim_args + ["--tai"]))
    rc, out = sh.run("d=$(dirname $(ls -d /sys/bus/platform/drivers/*/%s)) && "
                     "echo %s >$d/unbind && echo %s >$d/bind && "
                     "ls /sys/class/ptp && cat /sys/class/ptp/ptp0/clock_name"
                     % (device, device, device))
    check("a TAI page, the driver bound again: it registers /dev/ptp0 named vmclock0",
          rc == 0 and out.strip().endswith("vmclock0"), out.replace("\n", " | ")[-200:])
    j = phc_time_json(sh)
    check("vmclock_offset() takes the PTP clock's cross-timestamp (it agreed with the "
          "bracket): phc_index 0, uncertainty 1 ns",
          j.get("phc_index") == 0 and j.get("offset_uncertainty_ns") == 1, str(j))
    # A sandbox (vmclockd's unit) binds in only the name 60-vmclock.rules
    # gives the clock.
    sh.out("mv /dev/ptp0 /dev/ptp_vmclock0")
    j = phc_time_json(sh)
    check("the clock is found as /dev/ptp_vmclock0 too",
          j.get("phc_index") == 0 and j.get("offset_uncertainty_ns") == 1, str(j))
    # vmclockd keeps the clock open for its offsets, unless told not to.
    for args, want in (("", True), ("--cross-timestamps no", False)):
        start_daemons(sh, args, tag="-xts")
        time.sleep(1.0)
        rc, out = sh.run("ls -l /proc/$(cat /run/vmclockd.pid)/fd")
        stop_daemons(sh)
        check("vmclockd %s: %s the PTP clock open" % (args or "(defaults)",
                                                     "holds" if want else "does not hold"),
              rc == 0 and ("-> /dev/ptp" in out) == want, out.replace("\n", " | ")[-300:])


def finish():
    print("%d passed, %d failed" % (PASS, FAIL))
    return 0 if FAIL == 0 else 1


BENCH_DISRUPTIONS = 5
BENCH_SPACING_S = 3.5
BENCH_QUIET_S = 10.0
WAKE_TO_REPLY_GOAL_MS = 5.0
CPU_RATIO_GOAL = 0.2
RESYNC_GOAL_S = 0.6
# chronyd's tracking read every 20 ms by one process (tests/chrony-observe):
# field 5 is the leap status, 3 while unsynchronised (after the reset).
OBSERVE = "chrony-observe -s /run/t/chronyd.sock -i 20 -t %.1f >/tmp/obs 2>&1 3>&- &"
OBSERVE_S = 2.5


def resync_s(obs):
    """From the last synchronised reading before the reset to the first one
    after it (s): an upper bound of reset-to-reselected; None if unseen."""
    rows = []
    for line in obs.splitlines():
        f = line.split()
        if len(f) > 5 and re.match(r"^[0-9.]+$", f[0]):
            rows.append((float(f[0]), int(f[4])))
    for k, (t, leap) in enumerate(rows):
        if leap == 3 and k > 0:
            for t2, leap2 in rows[k:]:
                if leap2 != 3:
                    return t2 - rows[k - 1][0]
            return None
    return None


def bench_run(g, sh, sim, tag, args):
    """One fixed run: BENCH_QUIET_S without disruptions (vmclockd's CPU is
    measured there), then BENCH_DISRUPTIONS notified migrations,
    BENCH_SPACING_S apart.  Returns (CPU s, wall s, [wake->last reply ms],
    [in vmclockd ms], [wake->reselected s], [path])."""
    start_daemons(sh, args, tag)
    if not wait_selected(sh, 30):
        fatal("%s: chronyd never selected VMC" % tag)
    time.sleep(2.0)
    cpu0, up0 = cpu_s(sh, "vmclockd"), guest_now(sh)
    time.sleep(BENCH_QUIET_S)
    cpu1, up1 = cpu_s(sh, "vmclockd"), guest_now(sh)
    reselected = []
    for i in range(BENCH_DISRUPTIONS):
        t = time.monotonic()
        sh.out(OBSERVE % OBSERVE_S)
        time.sleep(0.3)
        marker = g.page_header()[1] + 1
        sim.signal(signal.SIGUSR1)
        if not g.wait_marker(marker):  # the notification after the page, never before
            fatal("vmclock-sim did not write marker %d" % marker)
        g.notify()
        time.sleep(max(0.0, OBSERVE_S + 0.2 - (time.monotonic() - t)))
        reselected.append(resync_s(sh.out("cat /tmp/obs")))
        time.sleep(max(0.0, BENCH_SPACING_S - (time.monotonic() - t)))
    log = sh.out("cat /tmp/vmclockd%s.log" % tag, timeout=10)
    stop_daemons(sh)
    wakes = [(m.group(1), float(m.group(2))) for m in re.finditer(
        r"disruption detected via (\w+): marker \d+ -> \d+ at monotonic ([0-9.]+)", log)]
    dones = [(float(m.group(2)), float(m.group(1))) for m in re.finditer(
        r"chronyd reset: .*datagrams, ([0-9.]+) ms, done at monotonic ([0-9.]+)", log)]
    wake_to_reply, inside, wake_to_sel = [], [], []
    for (path, w), sel in zip(wakes, reselected):
        later = [d for d in dones if d[0] >= w]
        if later:
            wake_to_reply.append((later[0][0] - w) * 1e3)
            # Before the handover's first request: vmclockd's own share.
            inside.append((later[0][0] - w) * 1e3 - later[0][1])
            # Wake-up to the reset, then the reset to reselection (bound).
            wake_to_sel.append(float("inf") if sel is None else later[0][0] - w + sel)
    paths = [p for p, _ in wakes]
    return cpu1 - cpu0, up1 - up0, wake_to_reply, inside, wake_to_sel, paths


def bench(g, sh, sim, simbin, W):
    sim_args = ["--notify"]
    if not setup(g, sh, sim, sim_args):
        return finish()
    rows = {}
    for tag, args in (("-long", "--notified-interval-ms 1000"),
                      ("-timer", "--notified-interval-ms 0 --interval-ms 62")):
        rows[tag] = bench_run(g, sh, sim, tag, args)
        cpu, wall, w2r, ins, w2s, paths = rows[tag]
        print("%-6s vmclockd %s: CPU %.2f s in %.1f s without disruptions; wake->last "
              "handover reply ms: %s (before the first request: %s); wake->VMC reselected s: "
              "%s; woken by: %s" % (
                  tag[1:], args, cpu, wall, " ".join("%.1f" % x for x in w2r),
                  " ".join("%.1f" % x for x in ins), " ".join("%.2f" % x for x in w2s),
                  " ".join(paths)), flush=True)
    cpu_long, wall_long, w2r, ins, w2s, paths = rows["-long"]
    cpu_timer, wall_timer = rows["-timer"][0], rows["-timer"][1]
    ratio = (cpu_long / wall_long) / (cpu_timer / wall_timer) if cpu_timer > 0 else 0.0
    ins_sorted = sorted(ins)
    median = ins_sorted[len(ins_sorted) // 2] if ins_sorted else float("inf")
    w2r_sorted = sorted(w2r)
    total = w2r_sorted[len(w2r_sorted) // 2] if w2r_sorted else float("inf")
    check("every disruption woke the daemon through the notification (1 s timer)",
          paths.count("notification") == BENCH_DISRUPTIONS, " ".join(paths))
    # The four round trips themselves are chronyd's, on an emulated CPU here
    # (about 1 ms on the host, bench-recovery.sh): the goal is judged on
    # vmclockd's part, wake-up to the first handover request; the total is
    # printed beside it.
    check("wake-up to the first handover request <= %.0f ms (median; total to chronyd's "
          "last reply: median %.1f ms under TCG)" % (WAKE_TO_REPLY_GOAL_MS, total),
          median <= WAKE_TO_REPLY_GOAL_MS, "median %.1f ms, max %.1f ms"
          % (median, max(ins) if ins else float("inf")))
    check("vmclockd CPU with the 1 s timer <= %.1fx the 62 ms timer's" % CPU_RATIO_GOAL,
          ratio <= CPU_RATIO_GOAL, "%.3fx" % ratio)
    check("chrony reselects VMC within %.1f s of each disruption (1 s timer)" % RESYNC_GOAL_S,
          bool(w2s) and max(w2s) <= RESYNC_GOAL_S, "max %.2f s" % (max(w2s) if w2s else -1))
    return finish()


# ---- the clock itself (--mode clock) ----------------------------------------
# chrony.conf for the clock benchmark: chronyd steers the guest's clock (no
# -x); the first three updates may step it (the guest boots seconds off),
# later ones only slew, as a deployed chronyd does.  The PHC refclock keeps
# TAI: leapsectz gives chronyd the offset to UTC.
CLOCK_CHRONY_CONF = """%s
bindcmdaddress /run/t/chronyd.sock
cmdport 0
port 0
pidfile /run/chronyd.pid
logdir /tmp
leapsectz right/UTC
makestep 0.0001 3
"""
CLOCK_REFCLOCKS = {
    "phc": "refclock PHC /dev/ptp0 poll 0 tai",
    "vmc": "refclock SOCK /run/t/vmc.sock refid VMC poll -3 filter 1 precision 1e-8",
}
# The configurations, in the order they run: chrony.conf, and vmclockd's
# arguments (None: no vmclockd).  "slew" is what handover-step no costs;
# "bracket" measures the offsets by brackets of counter reads instead of the
# PTP clock's cross-timestamps (the steady error of the two side by side).
CLOCK_PHASES = (("phc", "phc", None), ("vmc", "vmc", ""),
                ("slew", "vmc", "--handover-step no"),
                ("bracket", "vmc", "--cross-timestamps no"))
# An application's loop of vmclock_timestamp() (tests/verdict-timeline)
# through the migration, every 5 ms (every 1 ms loads the emulated CPU).
TRUTH = ("verdict-timeline -d /dev/vmclock0 -s /run/vmclockd.state -i 5 -t %.1f "
         ">/tmp/truth-%s 2>&1 3>&- &")
MIGRATION_S, MIGRATION_PPB = 0.002, 30000
CLOCK_SIM_ARGS = ["--tai", "--migrate-step-ns", str(int(MIGRATION_S * 1e9)),
                  "--migrate-freq-ppb", str(MIGRATION_PPB)]
SAMPLE_MS = 50
BEFORE_S, AFTER_S, STEADY_S = 10.0, 25.0, 10.0
# CI's bench smoke (GUEST_CLOCK_SMOKE=1): the two configurations the goals
# compare, in shorter windows (chrony's PHC refclock alone still has time to
# come within 1 us: about 8.5 s).
if os.environ.get("GUEST_CLOCK_SMOKE") == "1":
    CLOCK_PHASES = CLOCK_PHASES[:2]
    BEFORE_S, AFTER_S, STEADY_S = 6.0, 14.0, 4.0
SETTLE_MAX_S = 150.0
# Goals (docs/performance.md).
WITHIN_1US_GOAL_S = 0.1
SOONER_GOAL = 50.0
SYNCED_OFF_GOAL_S = 0.1
STEADY_RMS_GOAL_NS = 20.0


def rows(text, ncol):
    """Numeric rows of NCOL or more fields from a recorder's output."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= ncol and re.match(r"^[0-9]+\.[0-9]+$", f[0]):
            try:
                out.append([float(x) for x in f[:ncol]])
            except ValueError:
                pass
    return out


def settled_after(err, t0, limit_ns):
    """Seconds from T0 to the first sample after which every sample stays
    within LIMIT_NS (inf if the last one is outside)."""
    after = [(t, e) for t, e in err if t >= t0]
    bad = [i for i, (t, e) in enumerate(after) if abs(e) > limit_ns]
    if not bad:
        return after[0][0] - t0 if after else float("inf")
    if bad[-1] + 1 >= len(after):
        return float("inf")
    return after[bad[-1] + 1][0] - t0


def synced_while_off(err, obs, t0, limit_ns):
    """Seconds after T0 during which chronyd said synchronised (leap status
    not 3, from the nearest tracking reading) while the clock was more than
    LIMIT_NS off: each such sample counts its interval."""
    total, j = 0.0, 0
    for t, e in err:
        if t < t0 or abs(e) <= limit_ns:
            continue
        while j + 1 < len(obs) and abs(obs[j + 1][0] - t) <= abs(obs[j][0] - t):
            j += 1
        if obs and abs(obs[j][0] - t) <= 0.1 and obs[j][1] != 3:
            total += SAMPLE_MS * 1e-3
    return total


def rms(err, t_from, t_to):
    v = [e for t, e in err if t_from <= t < t_to]
    return (sum(e * e for e in v) / len(v)) ** 0.5 if v else float("inf")


def wait_clock_settled(sh, tag):
    """Until the clock has been within 1 us of the page for 2 s in a row
    (the benchmark measures a settled clock); seconds it took, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < SETTLE_MAX_S:
        out = sh.out("clock-error -i %d -t 2" % SAMPLE_MS, timeout=20)
        e = [r[1] for r in rows(out, 3)]
        if len(e) >= 10 and max(abs(x) for x in e) <= 1000:
            return time.monotonic() - t0
    print("%s: the clock never settled within 1 us for 2 s (last: %s ns)"
          % (tag, " ".join("%.0f" % x for x in e[-5:])), flush=True)
    return None


def clock_phase(g, sh, sim, sim_args, tag, conf, vmclockd_args, W, delta):
    """One configuration: chronyd (chrony-CONF.conf) steering the clock,
    with vmclockd (VMCLOCKD_ARGS) unless None; once settled, BEFORE_S
    recorded, the migration (page, then notification), AFTER_S recorded.
    Returns the metrics."""
    sim.restart("--notify", *sim_args)  # a fresh timeline: offset 0, 0 ppm
    sh.out("chronyd -d -u root -f /etc/chrony-%s.conf >/tmp/chronyd-%s.log 2>&1 3>&- &"
           % (conf, tag))
    sh.out("i=0; while [ ! -S /run/t/chronyd.sock ] && [ $i -lt 100 ]; do sleep 0.1; "
           "i=$((i+1)); done; test -S /run/t/chronyd.sock")
    if vmclockd_args is not None:
        start_daemons(sh, vmclockd_args, tag="-clock-" + tag)
    settle = wait_clock_settled(sh, tag)
    total = BEFORE_S + AFTER_S + 1.0
    sh.out("clock-error -i %d -t %.1f >/tmp/err-%s 2>&1 3>&- &" % (SAMPLE_MS, total, tag))
    sh.out("chrony-observe -s /run/t/chronyd.sock -i %d -t %.1f -k >/tmp/obs-%s 2>&1 3>&- &"
           % (SAMPLE_MS, total, tag))
    if vmclockd_args is not None:
        sh.out(TRUTH % (total, tag))
    time.sleep(BEFORE_S)
    marker = g.page_header()[1] + 1
    sim.signal(signal.SIGUSR1)
    if not g.wait_marker(marker):
        fatal("%s: vmclock-sim did not write marker %d" % (tag, marker))
    # The notification in the guest's time: the page's, DELTA off the
    # host's realtime (the TSC check's estimate of the counter offset).
    t_notify = time.time() + delta
    g.notify()
    time.sleep(AFTER_S + 1.5)
    err_out = sh.out("cat /tmp/err-%s" % tag, timeout=20)
    err = [(r[0], r[1]) for r in rows(err_out, 3)]
    absurd = re.search(r"absurd=(\d+)", err_out)
    obs = [(r[0], int(r[4])) for r in rows(sh.out("cat /tmp/obs-%s" % tag, timeout=20), 5)]
    tracking = sh.out("chronyc -n -h /run/t/chronyd.sock tracking")
    truth = sh.out("cat /tmp/truth-%s" % tag, timeout=20) if vmclockd_args is not None else ""
    if vmclockd_args is not None:
        stop_daemons(sh)
    sh.run("kill $(cat /run/chronyd.pid); sleep 0.5")
    m = {
        "settle": settle,
        "n": len(err),
        "within_1us": settled_after(err, t_notify, 1000),
        "within_100us": settled_after(err, t_notify, 100000),
        "synced_off": synced_while_off(err, obs, t_notify, 100000),
        "rms_before": rms(err, t_notify - BEFORE_S + 1.0, t_notify - 0.2),
        "rms_after": rms(err, t_notify + AFTER_S - STEADY_S, t_notify + AFTER_S),
        "worst_after": max([abs(e) for t, e in err if t >= t_notify] or [float("inf")]),
        "truth": truth,
        "absurd": int(absurd.group(1)) if absurd else 0,
    }
    with open(os.path.join(W, "clock-%s.txt" % tag), "w") as f:
        f.write("# notified at %.6f\n" % t_notify)
        for t, e in err:
            f.write("%.6f %.0f\n" % (t, e))
    print("%s: settled in %s s; after the notification: within 1 us %.2f s, within 100 us "
          "%.2f s, chrony synchronised while > 100 us off %.2f s; steady rms %.0f ns before, "
          "%.0f ns after; %d samples (%d absurd device readings left out); chronyd's "
          "tracking after:\n  %s" % (
              tag, "%.0f" % settle if settle is not None else "never", m["within_1us"],
              m["within_100us"], m["synced_off"], m["rms_before"], m["rms_after"], m["n"],
              m["absurd"],
              tracking.strip().replace("\n", "\n  ")), flush=True)
    return m


def clock_bench(g, sh, sim, W):
    sim_args = []
    if not setup(g, sh, sim, sim_args, extra=CLOCK_SIM_ARGS, chronyd=False):
        return finish()
    rc, out = sh.run("ls -l /dev/ptp0 && clock-error -t 0.2")
    if not check("the page's PTP clock /dev/ptp0 reads", rc == 0, out[-200:]):
        return finish()
    delta, width = tsc_check(sh)
    print("the page's time - the host's realtime: %+.1f ms (bracket %.1f ms): the "
          "notification's time in the guest's terms" % (delta * 1e3, width * 1e3), flush=True)
    res = {tag: clock_phase(g, sh, sim, sim_args, tag, conf, args, W, delta)
           for tag, conf, args in CLOCK_PHASES}
    phc, vmc = res["phc"], res["vmc"]
    names = {"phc": "chrony alone, PHC refclock", "slew": "vmclockd, handover-step no",
             "vmc": "vmclockd, with the step",
             "bracket": "vmclockd, with the step, bracketed offsets"}
    order = [t for t in ("phc", "slew", "vmc", "bracket") if t in res]
    cols = [res[t] for t in order]
    print("| after the migration | %s |" % " | ".join(names[t] for t in order))
    print("|---|%s" % ("---|" * len(order)))
    for name, key in (("clock within 1 us", "within_1us"), ("within 100 us", "within_100us"),
                      ("chrony says synchronised while clock > 100 us off", "synced_off")):
        print("| %s | %s |" % (name, " | ".join("%.2f s" % c[key] for c in cols)))
    print("| steady error rms before/after | %s |" % " | ".join(
        "%.0f/%.0f ns" % (c["rms_before"], c["rms_after"]) for c in cols), flush=True)
    for tag, m in [(t, res[t]) for t in ("vmc", "slew", "bracket") if t in res]:
        last = m["truth"].strip().splitlines()[-1:] or [""]
        f = dict(kv.split("=", 1) for kv in last[0].split() if "=" in kv)
        print("%s: vmclock_timestamp() through the migration:\n  %s" % (
            tag, m["truth"].strip().replace("\n", "\n  ")), flush=True)
        check("%s: the page's time inside [earliest, latest] on every SYNCHRONIZED or "
              "FREERUNNING call" % tag,
              int(f.get("checks", 0)) > 0 and f.get("violations") == "0", last[0])
        check("%s: the migration read disrupted, then synchronized again" % tag,
              re.search(r" disrupted .* synchronized ", m["truth"], re.S) is not None)
    check("vmclockd: the clock within 1 us <= %.1f s after the notification" % WITHIN_1US_GOAL_S,
          vmc["within_1us"] <= WITHIN_1US_GOAL_S, "%.2f s" % vmc["within_1us"])
    sooner = phc["within_1us"] / max(vmc["within_1us"], SAMPLE_MS * 1e-3)
    check(">= %.0fx sooner than chrony's PHC refclock alone" % SOONER_GOAL,
          sooner >= SOONER_GOAL, "%.0fx (%.2f s vs %.2f s; the sampling is %d ms)"
          % (sooner, phc["within_1us"], vmc["within_1us"], SAMPLE_MS))
    check("vmclockd: chrony synchronised while the clock > 100 us off <= %.1f s"
          % SYNCED_OFF_GOAL_S, vmc["synced_off"] <= SYNCED_OFF_GOAL_S, "%.2f s" % vmc["synced_off"])
    check("vmclockd: steady error <= %.0f ns rms before and after" % STEADY_RMS_GOAL_NS,
          max(vmc["rms_before"], vmc["rms_after"]) <= STEADY_RMS_GOAL_NS,
          "%.0f / %.0f ns" % (vmc["rms_before"], vmc["rms_after"]))
    return finish()


if __name__ == "__main__":
    # A timeout's SIGTERM runs the finally clauses (QEMU, the simulator).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
