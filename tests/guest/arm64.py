# SPDX-License-Identifier: BSD-2-Clause
#
# arm64.py - the real ptp_vmclock driver on arm64: Debian's cloud-arm64 kernel
# (the driver built in) under qemu-system-aarch64 (TCG, the virt machine),
# the device described by the device tree, this project's arm64 vmclockd and
# vmclockctl with Debian's arm64 chronyd inside (tests/test-guest-arm64.sh).
#
#   python3 arm64.py --builddir B --srcdir S --workdir W [--arm64-builddir A]
#
# The machine (Guest below; the rest is vm.py's): virt's own device tree,
# dumped (-machine virt,dumpdtb=) for this very command line, gets a node
# compatible "amazon,vmclock" whose reg is the guest-physical page PAGE_ADDR,
# and a /reserved-memory no-map entry for that page, so that the kernel
# leaves it out of its RAM; the machine boots with that tree (-dtb).  Its RAM
# is a shared file, so the host writes the page at PAGE_ADDR - RAM_BASE in
# that file.  The driver is built into the kernel and probes at boot: the
# simulator writes the page before QEMU starts.
#
# The counter: the page names the Arm virtual counter (arm_vcnt).  Under TCG
# the guest's CNTVCT_EL0 is QEMU's virtual clock (the host's CLOCK_MONOTONIC
# from QEMU's start) at the generic timer's frequency, which the guest's
# kernel reports at boot (arch_timer: ... running at 62.50MHz): vmclock-sim
# counts the host's CLOCK_MONOTONIC at that frequency (--counter) and the
# offset to the guest's count is measured once through the page
# (--counter-offset), as run.py does with the x86 guest's TSC.
#
# The notification: the node's interrupt is a PCI INTx line, SPI 5, the one
# virt's interrupt-map gives INTA of slot 2, where a virtio-balloon-pci
# device sits (it has no MSI-X: it interrupts on INTx).  The driver requests
# its interrupt shared, and so does virtio_pci: each QMP "balloon" target
# change raises the balloon's configuration interrupt, which wakes the
# vmclock device's readers too - one notification, as the x86 guest's ACPI
# Notify from a PCI hotplug.
#
# The control channel is a virtio console (/dev/hvc0: virt has one serial
# port, the console), named to init.sh by guest_ctl= on the command line.
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
import run  # noqa: E402
from run import check, fatal  # noqa: E402

RAM_BASE = 0x40000000           # virt's RAM starts at 1 GiB
PAGE_ADDR = RAM_BASE + (512 << 20)
BALLOON_SLOT = 2
BALLOON_SPI = 3 + BALLOON_SLOT % 4   # virt's INTx swizzle: INTA of slot s
TRIPLET = "aarch64-linux-gnu"
VMCLOCK_NODE = """
	vmclock@%(a)x {
		compatible = "amazon,vmclock";
		reg = <0x0 0x%(a)x 0x0 0x1000>;
		interrupts = <0x0 0x%(spi)x 0x4>;
	};

	reserved-memory {
		#address-cells = <0x02>;
		#size-cells = <0x02>;
		ranges;

		vmclock-page@%(a)x {
			reg = <0x0 0x%(a)x 0x0 0x1000>;
			no-map;
		};
	};
""" % {"a": PAGE_ADDR, "spi": BALLOON_SPI}


class Guest(vm.Guest):
    """vm.Guest's control and initramfs on the arm64 virt machine."""

    def __init__(self, workdir, kernel_dir, root):
        self.root = root
        self.dtb = os.path.join(workdir, "virt-vmclock.dtb")
        super().__init__(workdir, kernel_dir)
        self.page_offset = PAGE_ADDR - RAM_BASE

    def qemu_args(self, initrd, append, dump=None):
        machine = "virt,memory-backend=ram0" + (",dumpdtb=" + dump if dump else "")
        args = ["qemu-system-aarch64", "-accel", "tcg", "-nographic", "-no-reboot",
                "-machine", machine, "-cpu", "cortex-a57",
                "-m", str(vm.RAM_BYTES >> 20), "-smp", "1",
                "-object", "memory-backend-file,id=ram0,size=%d,mem-path=%s,share=on"
                % (vm.RAM_BYTES, self.ram),
                "-nic", "none", "-monitor", "none",
                "-serial", "file:" + self.console,
                "-device", "virtio-serial-pci,id=vser",
                "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % self.ctl_path,
                "-device", "virtconsole,chardev=ctl",
                "-device", "virtio-balloon-pci,id=balloon,bus=pcie.0,addr=0x%x" % BALLOON_SLOT,
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
                "-kernel", self.kernel, "-initrd", initrd,
                "-append", "console=ttyAMA0 panic=-1 quiet loglevel=4 guest_ctl=/dev/hvc0 %s"
                % append]
        return args if dump else args + ["-dtb", self.dtb]

    def prepare(self):
        """The machine's device tree with the vmclock node."""
        raw = os.path.join(self.dir, "virt.dtb")
        # Dumping needs no RAM file; QEMU exits once the tree is written.
        vm.run(self.qemu_args("/dev/null", "", dump=raw), stdin=subprocess.DEVNULL,
               timeout=60)
        dts = vm.run(["dtc", "-q", "-I", "dtb", "-O", "dts", raw])
        if "reserved-memory" in dts:
            raise vm.GuestError("virt's device tree already has a /reserved-memory node")
        # The root node's closing brace is the last one.
        end = dts.rstrip().rfind("};")
        dts = dts[:end] + VMCLOCK_NODE + dts[end:]
        with open(os.path.join(self.dir, "virt-vmclock.dts"), "w") as f:
            f.write(dts)
        vm.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", self.dtb,
                os.path.join(self.dir, "virt-vmclock.dts")])

    def notify(self):
        """One notification: a new balloon target (the RAM size or 1 MiB
        less, in turn: the balloon's own queue traffic stays small)."""
        self.testdev = not self.testdev
        self.qmp_cmd("balloon", value=vm.RAM_BYTES - (1 << 20 if self.testdev else 0))

    def libraries(self, binary, env):
        """What the arm64 loader loads for BINARY (run under qemu-aarch64):
        the unpacked packages' libraries first, then this machine's
        multiarch ones."""
        loader = os.path.join(self.root, "lib", "ld-linux-aarch64.so.1")
        path = ":".join(os.path.join(self.root, d, TRIPLET) for d in ("lib", "usr/lib"))
        out = vm.run(["qemu-aarch64", loader, "--library-path",
                      path + ":/usr/lib/" + TRIPLET, "--list", binary])
        if "not found" in out:
            raise vm.GuestError("%s: libraries not found: %s" % (binary, out))
        libs = [("lib/ld-linux-aarch64.so.1", os.path.realpath(loader))]
        for m in re.finditer(r"=>\s*(/\S+)", out):
            libs.append(("lib/%s/%s" % (TRIPLET, os.path.basename(m.group(1))),
                         os.path.realpath(m.group(1))))
        return libs


def vmclock_interrupts(sh):
    """How many interrupts the guest took on the vmclock device's line."""
    return int(sh.out("grep vmclock /proc/interrupts").split()[1])


def counter_hz(sh):
    """The generic timer's frequency, from the guest kernel's boot line."""
    out = sh.out("dmesg | grep -i 'arch_timer:.*running at'")
    m = re.search(r"running at ([0-9.]+)MHz", out)
    if not m:
        raise vm.GuestError("no arch_timer frequency in the guest's dmesg: %s" % out)
    return int(round(float(m.group(1)) * 1e6)), out.strip()


def setup(g, sh, sim, sim_args):
    """The device bound through the device tree, the Arm counter, the
    counter offset, chronyd.  False if the device cannot be used."""
    rc, out = sh.run("dmesg | grep -i vmclock; ls /dev/vmclock0 && "
                     "cat /sys/bus/platform/drivers/vmclock/*/of_node/compatible; echo")
    check("ptp_vmclock binds the device-tree node (compatible amazon,vmclock): "
          "/dev/vmclock0", rc == 0 and "registered miscdev" in out and "amazon,vmclock" in out,
          out.replace("\n", " | ").replace("\0", "")[-300:])
    rc, out = sh.run("insmod /lib/modules/virtio_balloon.ko && grep vmclock /proc/interrupts")
    check("the node's interrupt is requested (the page has NOTIFICATION_PRESENT), shared "
          "with the balloon's INTx", rc == 0 and "virtio" in out, out.strip()[-200:])
    hz, line = counter_hz(sh)
    print("guest: %s" % line, flush=True)
    rc, out = sh.run("vmclockctl -d /dev/vmclock0 status --json")
    check("/dev/vmclock0 opens and reads; the page names the Arm counter",
          rc == 0 and json.loads(out).get("counter_id") == "arm_vcnt", out[-300:])
    if rc != 0:
        return False
    sim_args[:] = ["--notify", "--counter", "arm_vcnt:%d" % hz]
    sim.restart(*sim_args)
    delta, width = run.tsc_check(sh)
    ticks = int(round(delta * hz))
    print("CNTVCT: guest device time - host realtime = %+.3f s (bracket %.1f ms); "
          "simulating with --counter-offset %d" % (delta, width * 1e3, ticks), flush=True)
    sim_args += ["--counter-offset", str(ticks)]
    sim.restart(*sim_args)
    delta, width = run.tsc_check(sh)
    check("with the offset the guest's device time on CNTVCT is the host's (within the "
          "bracket)", abs(delta) <= max(0.02, width), "%+.2f ms, bracket %.1f ms"
          % (delta * 1e3, width * 1e3))
    sh.out("chronyd -x -d -u root -f /etc/chrony.conf >/tmp/chronyd.log 2>&1 3>&- &")
    sh.out("i=0; while [ ! -S /run/t/chronyd.sock ] && [ $i -lt 100 ]; do sleep 0.1; "
           "i=$((i+1)); done; test -S /run/t/chronyd.sock")
    return True


def test(g, sh, sim):
    sim_args = []  # what setup() restarts the simulator with
    if not setup(g, sh, sim, sim_args):
        return run.finish()
    run.start_daemons(sh)
    check("chronyd selects VMC fed by vmclockd", run.wait_selected(sh, 40))
    _, marker = g.page_header()
    sim.signal(signal.SIGUSR1)
    if not g.wait_marker(marker + 1):
        fatal("vmclock-sim did not write marker %d" % (marker + 1))
    g.notify()
    rc, log = sh.run(run.WAIT_RESET % (marker + 1, "/tmp/vmclockd.log", "/tmp/vmclockd.log"),
                     timeout=40)
    check("a migration: vmclockd detects it and hands chronyd over",
          rc == 0 and "disruption detected via" in log,
          log.strip().replace("\n", " | ")[-300:])
    check("chronyd selects VMC again after the migration", run.wait_selected(sh, 20))
    watch = sh.out("cat /tmp/watch.log")
    check("vmclockctl watch reports the change", "change marker=%d" % (marker + 1) in watch,
          watch.strip().replace("\n", " | ")[-200:])
    run.stop_daemons(sh)

    # ---- notifications: the device tree's interrupt ---------------------
    irq0 = vmclock_interrupts(sh)
    log, watch, updates, wall, cpu_d, cpu_w, reselected = run.notification_phase(g, sh, sim)
    irq1 = vmclock_interrupts(sh)
    # The interrupt count, not vmclockd's log, says the notifications
    # arrived: with none, vmclockd still logs its wake-ups as notified.  The
    # line is shared: the balloon's own queue interrupts come on it too.
    check("the guest took the notifications' interrupts on the vmclock line",
          irq1 - irq0 >= run.DISRUPTIONS, "%d interrupts for %d notifications"
          % (irq1 - irq0, run.DISRUPTIONS))
    notified = len(re.findall(r"disruption detected via notification", log))
    timer = len(re.findall(r"disruption detected via timer", log))
    resets = len(re.findall(r"chronyd reset: dfreq", log))
    changes = len(re.findall(r"^\S+ change marker=", watch, re.M))
    n = run.DISRUPTIONS
    # "via notification" is vmclockd's word for "the device was readable",
    # which any page update makes it (docs/internals.md): the interrupts
    # above are the notifications' evidence, this is the daemon's part.
    check("every disruption detected on a device wake-up, none by the timer",
          notified == n and timer == 0, "%d of %d, %d by the timer" % (notified, n, timer))
    check("the chrony handover completes after each migration, chronyd reselects VMC",
          resets == n and reselected == n, "%d resets, %d reselections of %d"
          % (resets, reselected, n))
    check("vmclockctl watch reports each change and sleeps between them",
          changes == n and cpu_w <= 0.02 * wall, "%d of %d; %.2f s CPU in %.1f s"
          % (changes, n, cpu_w, wall))
    print("vmclockd: %.2f s CPU in %.1f s with notifications (%s); %d page updates"
          % (cpu_d, wall, run.NOTIFY_ARGS, updates), flush=True)
    # The PTP clock: its cross-timestamps pair the page's time with the
    # system clock's reading of the Arm counter (CSID_ARM_ARCH_COUNTER).
    run.phc_phase(sh, sim, sim_args, "%x.vmclock" % PAGE_ADDR)
    return run.finish()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--arm64-builddir", default=None,
                    help="the arm64 build's tree (.ci/arm64: build-ci-arm64/obj)")
    a = ap.parse_args()
    B, S, W = a.builddir, a.srcdir, a.workdir
    A = a.arm64_builddir or os.path.join(S, "build-ci-arm64", "obj")

    missing = [t for t in ("qemu-system-aarch64", "qemu-aarch64", "dtc", "apt-get",
                           "dpkg-deb", "xz") if not shutil.which(t)]
    if not os.path.exists("/lib/ld-linux-aarch64.so.1"):
        missing.append("libc6:arm64")
    if missing:
        fatal("missing: %s (.ci/setup installs them)" % ", ".join(missing))
    progs = {"bin/vmclockd": os.path.join(A, "daemon", "vmclockd"),
             "bin/vmclockctl": os.path.join(A, "tools", "vmclockctl")}
    for p in progs.values():
        if not os.path.exists(p):
            fatal("no arm64 build of %s (.ci/arm64 builds it; --arm64-builddir)" % p)
    cache = os.path.join(B, "tests", "guest", "cache")
    for script, args in (("fetch-kernel.sh", ["arm64", "virtio_balloon"]), ("fetch-arm64-userland.sh", [])):
        r = subprocess.run(["sh", os.path.join(S, "tests", "guest", script), cache] + args,
                           text=True, capture_output=True)
        if r.returncode != 0:
            fatal("%s: %s" % (script, r.stderr.strip()))
    kdir = os.path.join(cache, "kernel-arm64")
    root = os.path.join(cache, "arm64-root")
    t_start = time.monotonic()
    sim = None
    g = Guest(W, kdir, root)
    print("kernel: Debian linux %s (%s)" % (g.kernel_version, kdir), flush=True)
    try:
        conf = os.path.join(W, "chrony.conf")
        with open(conf, "w") as f:
            f.write(run.CHRONY_CONF)
        initrd = g.build_initrd(os.path.join(root, "bin", "busybox"), None,
                                {"init": os.path.join(S, "tests", "guest", "init.sh"),
                                 "etc/chrony.conf": conf,
                                 "lib/modules/virtio_balloon.ko":
                                     os.path.join(kdir, "virtio_balloon.ko")},
                                dict(progs, **{
                                    "usr/sbin/chronyd": os.path.join(root, "usr/sbin/chronyd"),
                                    "usr/bin/chronyc": os.path.join(root, "usr/bin/chronyc")}))
        # The driver probes at boot: the page is there before the machine.
        with open(g.ram, "wb") as f:
            f.truncate(vm.RAM_BYTES)
        sim = run.Sim(os.path.join(B, "tools", "vmclock-sim"), g, os.path.join(W, "sim.log"),
                      "--notify", "--counter", "arm_vcnt:62500000")
        g.boot(initrd)
        sh = vm.Shell(g)
        print("guest: Linux %s" % sh.hello(120), flush=True)
        return test(g, sh, sim)
    except (vm.GuestError, OSError, subprocess.SubprocessError, ValueError,
            AttributeError) as e:
        check("the guest ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if sim:
            sim.stop()
        try:
            run.save_logs(g, W)
        except Exception:
            pass
        g.stop()
        print("wall time %.0f s" % (time.monotonic() - t_start))
    return run.finish()


if __name__ == "__main__":
    # A timeout's SIGTERM runs the finally clauses (QEMU, the simulator).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
