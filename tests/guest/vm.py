# SPDX-License-Identifier: BSD-2-Clause
#
# vm.py - boot a real Linux guest under QEMU (TCG) with a vmclock device whose
# page the host writes, and talk to it.
#
# The device: an SSDT (-acpitable) names Device (\_SB.VCLK), _HID AMZNC10C,
# whose one Memory32Fixed resource is the guest-physical page PAGE_ADDR.  The
# guest is told not to use that page (memmap=4K$ADDR) and its RAM is a shared
# file, so the host writes the page at that file offset (vmclock-sim
# --file-offset) and the guest's ptp_vmclock driver maps it.
#
# The notification: QEMU cannot send an ACPI Notify on request, but the guest
# accepts an override DSDT from its initrd (CONFIG_ACPI_TABLE_UPGRADE).  The
# guest's own DSDT (which depends on this command line, so it is dumped by a
# first short boot, cached per command line) gets Notify (\_SB.VCLK, 0x80) at
# the end of \_GPE._E01, the PCI hotplug event; each QMP device_add or
# device_del of a pci-testdev on a pcie-root-port then raises that GPE: one
# notification.
#
# The guest: an initramfs built here (newc, no cpio tool needed) with
# busybox-static, the guest script, this build's programs, chronyd, chronyc
# and every library ldd names.  Its first serial port is the console (a
# file); its second is the control channel (a Unix socket): lines the
# guest writes there are read by the host, lines the host writes are the
# guest's commands.
import base64
import hashlib
import json
import os
import re
import socket
import stat
import struct
import subprocess
import time

PAGE_ADDR = 0x20000000          # 512 MiB: inside a 1 GiB q35 guest's low RAM
RAM_BYTES = 1 << 30
SSDT = """DefinitionBlock ("", "SSDT", 2, "VMCLKT", "VMCLOCK", 0x00000001)
{
    Device (\\_SB.VCLK)
    {
        Name (_HID, "AMZNC10C")
        Name (_CID, "VMCLOCK")
        Name (_UID, Zero)
        Method (_STA, 0, NotSerialized) { Return (0x0F) }
        Name (_CRS, ResourceTemplate ()
        {
            Memory32Fixed (ReadOnly, 0x%08X, 0x00001000, )
        })
    }
}
""" % PAGE_ADDR


class GuestError(Exception):
    pass


def die_with_parent():
    """Popen preexec_fn: the child is killed when the harness dies, however
    it dies (a timeout's SIGKILL included): no QEMU or simulator is left."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw).stdout


def libraries(binary, env=None):
    """Every library ldd names for BINARY, with the loader."""
    out = run(["ldd", binary], env=env)
    libs = []
    for line in out.splitlines():
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:
            libs.append(m.group(1))
    return libs


class Cpio:
    """A newc archive, written without the cpio tool."""

    def __init__(self):
        self.data = bytearray()
        self.ino = 1
        self.names = set()

    def _entry(self, name, mode, body=b"", nlink=1):
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(body), 0, 0, 0, 0, len(name) + 1, 0))
        self.ino += 1
        self.data += hdr.encode() + name.encode() + b"\0"
        self.data += b"\0" * (-len(self.data) % 4)
        self.data += body
        self.data += b"\0" * (-len(self.data) % 4)

    def dir(self, name):
        name = name.strip("/")
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.names:
                self.names.add(d)
                self._entry(d, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name, body, mode=0o644):
        name = name.strip("/")
        self.dir(os.path.dirname(name))
        if name in self.names:
            return
        self.names.add(name)
        self._entry(name, stat.S_IFREG | mode, body)

    def copy(self, name, path, mode=None):
        with open(path, "rb") as f:
            body = f.read()
        if mode is None:
            mode = os.stat(path).st_mode & 0o777
        self.file(name, body, mode)

    def symlink(self, name, target):
        name = name.strip("/")
        self.dir(os.path.dirname(name))
        self.names.add(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def bytes(self):
        self._entry("TRAILER!!!", 0)
        self.data += b"\0" * (-len(self.data) % 512)
        return bytes(self.data)


class Guest:
    def __init__(self, workdir, kernel_dir, log=print):
        self.dir = workdir
        self.kernel = os.path.join(kernel_dir, "vmlinuz")
        self.module = os.path.join(kernel_dir, "ptp_vmclock.ko")
        with open(os.path.join(kernel_dir, "version")) as f:
            self.kernel_version = f.read().strip()
        self.ram = os.path.join(workdir, "ram")
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        self.ctl_path = os.path.join(workdir, "ctl.sock")
        self.console = os.path.join(workdir, "console.log")
        self.log = log
        self.proc = None
        self.qmp = None
        self.ctl = None
        self.ctl_buf = b""
        self.transcript = open(os.path.join(workdir, "ctl.log"), "a")
        self.testdev = False
        # Where the page is in the RAM file (here its guest-physical
        # address: q35's RAM starts at 0).
        self.page_offset = PAGE_ADDR
        self.prepare()

    def prepare(self):
        """What the machine's command line needs: the SSDT."""
        with open(os.path.join(self.dir, "ssdt.asl"), "w") as f:
            f.write(SSDT)
        run(["iasl", "-p", os.path.join(self.dir, "ssdt"), os.path.join(self.dir, "ssdt.asl")])

    # ---- the command line and the DSDT -------------------------------------
    def qemu_args(self, initrd, append):
        return ["qemu-system-x86_64", "-accel", "tcg", "-nographic", "-no-reboot",
                "-m", str(RAM_BYTES >> 20), "-smp", "1",
                "-object", "memory-backend-file,id=ram0,size=%d,mem-path=%s,share=on"
                % (RAM_BYTES, self.ram),
                "-machine", "q35,memory-backend=ram0",
                "-acpitable", "file=" + os.path.join(self.dir, "ssdt.aml"),
                "-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1",
                "-nic", "none", "-vga", "none", "-monitor", "none",
                "-serial", "file:" + self.console,
                "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % self.ctl_path,
                "-device", "isa-serial,chardev=ctl",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
                "-kernel", self.kernel, "-initrd", initrd,
                "-append", "console=ttyS0 panic=-1 memmap=4K$0x%X quiet loglevel=4 %s"
                % (PAGE_ADDR, append)]

    def derive_dsdt(self, busybox):
        """The guest's own DSDT with Notify (\\_SB.VCLK, 0x80) in \\_GPE._E01."""
        key = hashlib.sha256(repr(self.qemu_args("X", "")).encode()).hexdigest()[:16]
        aml = os.path.join(self.dir, "dsdt-%s.aml" % key)
        if os.path.exists(aml):
            return aml
        init = ("#!/bin/busybox sh\n/bin/busybox mkdir -p /sys\n"
                "/bin/busybox mount -t sysfs sysfs /sys\n"
                "echo @@dsdt-begin\n/bin/busybox base64 /sys/firmware/acpi/tables/DSDT\n"
                "echo @@dsdt-end\n/bin/busybox poweroff -f\n")
        c = Cpio()
        c.copy("bin/busybox", busybox, 0o755)
        c.file("init", init.encode(), 0o755)
        initrd = os.path.join(self.dir, "dump.cpio")
        with open(initrd, "wb") as f:
            f.write(c.bytes())
        self._boot(initrd, "", wait_ctl=False)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.stop()
            raise GuestError("the DSDT-dump boot did not finish in 60 s")
        text = open(self.console, errors="replace").read()
        m = re.search(r"@@dsdt-begin\s*\n(.*?)@@dsdt-end", text, re.S)
        if not m:
            raise GuestError("the guest did not print its DSDT (console: %s)" % self.console)
        raw = base64.b64decode("".join(m.group(1).split()))
        dat = os.path.join(self.dir, "dsdt.dat")
        with open(dat, "wb") as f:
            f.write(raw)
        run(["iasl", "-d", dat], cwd=self.dir)
        dsl = open(os.path.join(self.dir, "dsdt.dsl")).read()
        # Bump the OEM revision: the kernel upgrades a table only to a newer one.
        dsl, n = re.subn(r'(DefinitionBlock\s*\([^,]*,\s*"DSDT",[^)]*?,\s*)0x([0-9A-Fa-f]+)(\s*\))',
                         lambda mm: "%s0x%08X%s" % (mm.group(1), int(mm.group(2), 16) + 1,
                                                    mm.group(3)), dsl, count=1)
        if n != 1:
            raise GuestError("no DefinitionBlock revision in the guest's DSDT")
        dsl = re.sub(r"(DefinitionBlock[^{]*\{)", r"\1\n    External (\\_SB.VCLK, DeviceObj)",
                     dsl, count=1)
        m = re.search(r"Method \(_E01, 0, NotSerialized\)[^{]*\{", dsl)
        if not m:
            raise GuestError("the guest's DSDT has no \\_GPE._E01 (PCI hotplug) method")
        # The method's closing brace: count braces from its opening one.
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(dsl[i], 0)
            i += 1
        dsl = dsl[:i - 1] + "    Notify (\\_SB.VCLK, 0x80)\n        " + dsl[i - 1:]
        with open(os.path.join(self.dir, "dsdt-vclk.dsl"), "w") as f:
            f.write(dsl)
        run(["iasl", "-p", os.path.join(self.dir, "dsdt-vclk"),
             os.path.join(self.dir, "dsdt-vclk.dsl")])
        os.replace(os.path.join(self.dir, "dsdt-vclk.aml"), aml)
        return aml

    # ---- the initramfs ------------------------------------------------------
    def build_initrd(self, busybox, dsdt_aml, files, binaries, lib_env=None):
        """FILES: {guest path: host path}; BINARIES: {guest path: host path},
        each with the libraries it loads.  DSDT_AML: None for no DSDT
        upgrade; no ptp_vmclock.ko where the kernel has the driver built in."""
        early = Cpio()
        if dsdt_aml:
            with open(dsdt_aml, "rb") as f:
                early.file("kernel/firmware/acpi/dsdt.aml", f.read())
        c = Cpio()
        c.copy("bin/busybox", busybox, 0o755)
        if os.path.exists(self.module):
            c.copy("lib/modules/ptp_vmclock.ko", self.module, 0o644)
        for g, h in files.items():
            c.copy(g, h, 0o755 if g == "init" else 0o644)
        for g, h in binaries.items():
            c.copy(g, h, 0o755)
            for dest, lib in self.libraries(h, lib_env):
                c.copy(dest, lib, 0o755)
        c.file("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
        c.file("etc/group", b"root:x:0:\n")
        initrd = os.path.join(self.dir, "initrd.cpio")
        with open(initrd, "wb") as f:
            f.write((early.bytes() if early.names else b"") + c.bytes())
        return initrd

    def libraries(self, binary, env):
        """(guest path, host file) of each library BINARY loads."""
        # The loader where the programs name it; the rest in the one
        # directory init.sh puts on LD_LIBRARY_PATH.
        return [(lib if "/ld-linux" in lib else "lib/x86_64-linux-gnu/" + os.path.basename(lib),
                 os.path.realpath(lib)) for lib in libraries(binary, env=env)]

    # ---- running ------------------------------------------------------------
    def _boot(self, initrd, append, wait_ctl=True):
        for p in (self.console, self.qmp_path, self.ctl_path):
            if os.path.exists(p):
                os.unlink(p)
        self.proc = subprocess.Popen(self.qemu_args(initrd, append),
                                     stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
                                     stdout=open(os.path.join(self.dir, "qemu.log"), "a"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not (os.path.exists(self.qmp_path) and os.path.exists(self.ctl_path)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise GuestError("qemu did not start (see %s/qemu.log)" % self.dir)
            time.sleep(0.02)
        self.qmp = self._connect(self.qmp_path, deadline)
        self.qmp_file = self.qmp.makefile("rw")
        self.qmp_file.readline()
        self.qmp_cmd("qmp_capabilities")
        if wait_ctl:
            self.ctl = self._connect(self.ctl_path, deadline)

    def _connect(self, path, deadline):
        """QEMU binds its sockets a moment before it listens on them."""
        while True:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                return s
            except (ConnectionRefusedError, FileNotFoundError):
                s.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise GuestError("cannot connect to qemu's %s" % path)
                time.sleep(0.02)

    def boot(self, initrd, append=""):
        self._boot(initrd, append)

    def qmp_cmd(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.qmp_file.write(json.dumps(msg) + "\n")
        self.qmp_file.flush()
        while True:
            reply = json.loads(self.qmp_file.readline())
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise GuestError("QMP %s: %s" % (cmd, reply["error"]))

    def page_header(self):
        """(seq_count, disruption_marker) of the page as the host wrote it,
        read from the guest's RAM file (the ABI's offsets 12 and 16)."""
        fd = os.open(self.ram, os.O_RDONLY | os.O_CLOEXEC)
        try:
            head = os.pread(fd, 24, self.page_offset)
        finally:
            os.close(fd)
        return struct.unpack_from("<I", head, 12)[0], struct.unpack_from("<Q", head, 16)[0]

    def wait_marker(self, marker, timeout=5.0):
        """Until the host's page carries MARKER with an even seq_count (the
        simulator finished writing it): False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seq, m = self.page_header()
            if m == marker and seq % 2 == 0:
                return True
            time.sleep(0.005)
        return False

    def notify(self):
        """One ACPI notification of the vmclock device: hotplug or unplug a
        pci-testdev on rp1."""
        if self.testdev:
            self.qmp_cmd("device_del", id="td")
        else:
            self.qmp_cmd("device_add", driver="pci-testdev", id="td", bus="rp1")
        self.testdev = not self.testdev

    def send(self, line):
        self.transcript.write("> %s\n" % line)
        self.transcript.flush()
        self.ctl.sendall(line.encode() + b"\n")

    def readline(self, timeout):
        """The guest's next control line (stripped), or None on timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.ctl_buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.ctl.settimeout(left)
            try:
                chunk = self.ctl.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise GuestError("the guest's control channel closed")
            self.ctl_buf += chunk
        line, self.ctl_buf = self.ctl_buf.split(b"\n", 1)
        line = line.decode(errors="replace").rstrip("\r")
        self.transcript.write("< %s\n" % line)
        self.transcript.flush()
        return line

    def expect(self, prefix, timeout):
        """Read lines until one starts with PREFIX (a string, or a tuple of
        them); return (it, lines before)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise GuestError("timed out waiting for %r from the guest" % (prefix,))
            if line.startswith(prefix):
                return line, seen
            seen.append(line)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.qmp_cmd("quit")
            except Exception:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for s in (self.qmp, self.ctl):
            if s:
                s.close()
        self.qmp = self.ctl = None


# How often a command line the guest got garbled is sent.
GARBLED_TRIES = 3


class Shell:
    """The guest's command channel (tests/guest/init.sh)."""

    def __init__(self, guest):
        self.g = guest

    def hello(self, timeout=60):
        """The guest's kernel release, once its init is up; its command
        loop is checked first: a line that lost bytes is refused, and one
        that does not parse fails without ending init."""
        line, _ = self.g.expect("@@hello", timeout)
        self.g.send("99:true")
        garbled, _ = self.g.expect(("@@rc ", "@@garbled"), 10)
        rc, _ = self.run("echo 'unterminated", 10)
        if garbled != "@@garbled" or rc != 2 or self.run("true", 10)[0] != 0:
            raise GuestError("the guest's command loop: %r to a garbled line, exit %d for one "
                             "that does not parse" % (garbled, rc))
        return line.split(None, 1)[1] if " " in line else ""

    def run(self, cmd, timeout=30):
        """(rc, output) of one shell command line in the guest.  The line
        goes with its length (init.sh); one the guest got garbled is sent
        again, a few times."""
        assert "\n" not in cmd, "one command line at a time"
        for attempt in range(1, GARBLED_TRIES + 1):
            self.g.send("%d:%s" % (len(cmd.encode("ascii")), cmd))
            line, seen = self.g.expect(("@@rc ", "@@garbled"), timeout)
            if line.startswith("@@rc "):
                return int(line.split()[1]), "\n".join(s[1:] for s in seen if s.startswith("|"))
            print("control channel: the guest got command line %r garbled (try %d of %d)"
                  % (cmd[:60], attempt, GARBLED_TRIES), flush=True)
        raise GuestError("guest: %s: garbled on the control channel %d times" % (cmd, GARBLED_TRIES))

    def out(self, cmd, timeout=30):
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError("guest: %s: exit %d: %s" % (cmd, rc, out[-500:]))
        return out
