"""The Debian package end to end (issue 18), and the man pages.

test_package copies the tree (git ls-files) to a temporary directory, builds
the package there with dpkg-buildpackage, installs it on this machine with
apt-get, checks its files, user and state directory, runs the unit's
ExecStart command line as systemd would (user ward, NOTIFY_SOCKET bound here,
WATCHDOG_USEC set) and asserts READY=1 and WATCHDOG=1, verifies the unit with
systemd-analyze (verify, and an exposure score of at most 2.5), publishes with
mosquitto_pub over mutual TLS with the package's own PKI, upgrades over a
broken configuration (reported, the broker left alone), and purges the
package. It installs software system-wide, so it runs only as root, only in
a plain build (a sanitizer build runs the same tree; once is enough), one at
a time on a machine (a lock), and never over a ward package it did not
install. Whatever happens, the package is purged and the ward it started
stopped before the test ends.

test_man_pages renders the build's ward.1 and ward.conf.5 with groff's
warnings on and checks that every command and every configuration key is
in them."""
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import ROOT, WARD, free_port, wait_port

BUILD_DIR = os.path.dirname(os.path.abspath(WARD))
UNIT = "/lib/systemd/system/ward.service"
CONF = "/etc/ward/ward.conf"
PKI = "/etc/ward/pki"
WAIT = 15.0  # bound on every wait for the broker
LOCK = "/run/lock/ward-test-package.lock"


def sanitizer_build():
    """True when WARD_BIN's build directory was configured with a sanitizer."""
    try:
        with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
            cache = f.read()
    except OSError:
        return False
    return any(re.search(r"^%s:BOOL=(ON|1|TRUE|YES)$" % v, cache, re.M | re.I)
               for v in ("WARD_SANITIZE", "WARD_TSAN", "WARD_FUZZ"))


def run(args, timeout=60, check=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check:
        assert r.returncode == 0, "%s: %d\n%s\n%s" % (args, r.returncode, r.stdout[-3000:],
                                                     r.stderr[-3000:])
    return r


def installed():
    r = run(["dpkg-query", "-W", "-f=${Status}", "ward"], check=False)
    return r.returncode == 0 and "installed" in r.stdout.split()


def copy_tree(dst):
    """The tree as git knows it (the working copy of each tracked file)."""
    files = run(["git", "-C", ROOT, "ls-files", "-z"]).stdout.split("\0")
    for rel in filter(None, files):
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):  # deleted in the working copy
            continue
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dst, rel))


def unit_values(key):
    """Every value of key= in the installed unit, in order."""
    with open(UNIT) as f:
        return [l.split("=", 1)[1].strip() for l in f if l.startswith(key + "=")]


def as_ward():
    """preexec for a child that runs as the unit's User=ward would."""
    import pwd
    pw = pwd.getpwnam("ward")

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return drop


class Notify:
    """systemd's notification socket, writable by user ward, read all the
    time as systemd reads it (an unread socket fills after a few datagrams,
    and then the broker's next notification would wait)."""

    def __init__(self, dirpath):
        os.chmod(os.path.dirname(dirpath), 0o711)
        os.mkdir(dirpath, 0o755)
        self.path = os.path.join(dirpath, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.settimeout(0.1)
        self.got = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.done.is_set():
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            self.got.append(dict(l.split("=", 1) for l in data.split("\n") if "=" in l))

    def wait(self, pred, count=1, timeout=WAIT):
        """True once count notifications satisfy pred (at most timeout s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for f in list(self.got) if pred(f)) >= count:
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self.done.set()
        self.thread.join(timeout=5)
        self.sock.close()


def local_ports(text, ports):
    """The packaged configuration on loopback ports this test chose (tests
    use loopback only, and the machine is shared)."""
    for old, new in ports.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def mosquitto(tool, port, *args, cert=True, timeout=20):
    base = [tool, "-h", "localhost", "-p", str(port), "--cafile", PKI + "/ca.crt", "-V", "mqttv5"]
    if cert:
        base += ["--cert", PKI + "/client.crt", "--key", PKI + "/client.key"]
    return run(base + list(args), timeout=timeout, check=False)


def check_files():
    for path in ("/usr/bin/ward", UNIT, "/usr/share/man/man1/ward.1.gz",
                 "/usr/share/man/man5/ward.conf.5.gz", "/usr/lib/sysusers.d/ward.conf",
                 "/usr/share/doc/ward/examples/ward.conf", CONF, PKI + "/ca.crt"):
        assert os.path.exists(path), path
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "ward"]).stdout
    assert CONF in conffiles
    import grp
    import pwd
    pw = pwd.getpwnam("ward")
    assert pw.pw_shell in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
    assert pw.pw_uid < 1000  # a system user
    st = os.stat("/var/lib/ward")
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
    assert st.st_mode & 0o007 == 0
    key = os.stat(PKI + "/server.key")
    assert key.st_gid == grp.getgrnam("ward").gr_gid and key.st_mode & 0o777 == 0o640
    # The CA's key is root's alone.
    for name in os.listdir(PKI + "/private"):
        assert os.stat(os.path.join(PKI, "private", name)).st_uid == 0
    assert os.stat(PKI + "/private").st_mode & 0o077 == 0
    # enabled: the [Install] symlink deb-systemd-helper made
    assert os.path.islink("/etc/systemd/system/multi-user.target.wants/ward.service")


def check_unit():
    assert unit_values("Type") == ["notify"]
    assert unit_values("ExecStart") == ["/usr/bin/ward serve -c " + CONF]
    assert unit_values("ExecReload") == ["/usr/bin/ward check -q -c " + CONF,
                                         "/bin/kill -HUP $MAINPID"]
    assert unit_values("User") == ["ward"]
    r = run(["systemd-analyze", "verify", UNIT])
    assert r.stderr.strip() == "", r.stderr
    r = run(["systemd-analyze", "security", "--offline=yes", "--threshold=25", UNIT],
            check=False)
    m = re.search(r"Overall exposure level for ward.service: (\d+\.\d+) (\w+)", r.stdout)
    assert m, r.stdout[-2000:]
    assert float(m.group(1)) <= 2.5 and m.group(2) == "OK", m.group(0)
    assert r.returncode == 0, m.group(0)


def check_broker(proc, ports):
    """Connections as a client of the packaged broker would make them."""
    mtls, tls = ports["0.0.0.0:8884"].split(":")[1], ports["0.0.0.0:8883"].split(":")[1]
    # mutual TLS with the package's client certificate: a retained message
    # published, then read back by a subscriber.
    r = mosquitto("mosquitto_pub", mtls, "-t", "pkg/test", "-m", "hello", "-q", "1", "-r")
    assert r.returncode == 0, r.stderr
    r = mosquitto("mosquitto_sub", mtls, "-t", "pkg/test", "-C", "1", "-W", "10")
    assert r.returncode == 0 and r.stdout.strip() == "hello", (r.returncode, r.stdout, r.stderr)
    # negative: no certificate on the mTLS port; no credentials on the TLS
    # port, where the packaged file refuses anonymous clients.
    r = mosquitto("mosquitto_pub", mtls, "-t", "pkg/test", "-m", "x", cert=False)
    assert r.returncode != 0
    r = mosquitto("mosquitto_pub", tls, "-t", "pkg/test", "-m", "x", cert=False)
    assert r.returncode != 0
    assert proc.poll() is None
    # The store lives in the state directory, owned by ward.
    db = "/var/lib/ward/ward.db"
    assert os.path.exists(db) and os.stat(db).st_uid == os.stat("/var/lib/ward").st_uid


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=WAIT)


@pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: needs root")
@pytest.mark.skipif(shutil.which("dpkg-buildpackage") is None, reason="no dpkg-buildpackage")
@pytest.mark.skipif(sanitizer_build(), reason="the plain build runs it (once is enough)")
def test_package():
    started = time.monotonic()
    for tool in ("mosquitto_pub", "systemd-analyze", "apt-get", "git"):
        assert shutil.which(tool), "%s is missing (make deps)" % tool
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # another run of this test on the machine
    work = tempfile.mkdtemp(prefix="ward-pkg-")
    proc = notify = None
    ours = False
    try:
        assert not installed(), "a ward package is installed; this test will not replace it " \
            "(apt-get purge -y ward, if it is a leftover)"
        src = os.path.join(work, "ward")
        copy_tree(src)
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2")
        run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, timeout=600)
        built = time.monotonic()
        debs = [f for f in os.listdir(work) if re.match(r"ward_.*\.deb$", f)]
        assert len(debs) == 1, os.listdir(work)
        ours = True
        run(["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=120", "./" + debs[0]],
            cwd=work, timeout=300,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        assert installed()
        check_files()
        check_unit()

        # The packaged file, on loopback ports of this test's choosing, and
        # checked as ExecReload checks it (as user ward).
        ports = {"0.0.0.0:8883": "127.0.0.1:%d" % free_port(),
                 "0.0.0.0:8884": "127.0.0.1:%d" % free_port(),
                 "127.0.0.1:8081": "127.0.0.1:%d" % free_port()}
        with open(CONF) as f:
            text = local_ports(f.read(), ports)
        with open(CONF, "w") as f:
            f.write(text)
        r = run(unit_values("ExecReload")[0].split(), preexec_fn=as_ward(), cwd="/")
        assert r.stdout == "" and r.stderr == ""  # -q: the journal gets errors only

        # ExecStart as systemd runs it: user ward, cwd /, NOTIFY_SOCKET and
        # WATCHDOG_USEC (WatchdogSec= in microseconds; 1 s here).
        notify = Notify(os.path.join(work, "run"))
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "NOTIFY_SOCKET": notify.path,
               "WATCHDOG_USEC": "1000000", "HOME": "/var/lib/ward", "USER": "ward"}
        log = open(os.path.join(work, "ward.log"), "w")
        proc = subprocess.Popen(unit_values("ExecStart")[0].split(), env=env, cwd="/",
                                preexec_fn=as_ward(), stdout=log, stderr=subprocess.STDOUT)
        assert wait_port(int(ports["0.0.0.0:8884"].split(":")[1]), timeout=WAIT, proc=proc), \
            open(os.path.join(work, "ward.log")).read()
        check_broker(proc, ports)

        # Type=notify: READY=1 once serving, then WATCHDOG=1 every
        # WATCHDOG_USEC/2 (two pings within a few intervals).
        assert notify.wait(lambda f: f.get("READY") == "1"), "no READY=1: %s" % notify.got
        assert notify.wait(lambda f: f.get("WATCHDOG") == "1", count=2), \
            "no WATCHDOG=1: %s" % notify.got

        # An upgrade (the same package again) over a configuration the new
        # ward refuses: reported, the package still configured, the broker
        # untouched.
        with open(CONF, "a") as f:
            f.write("\nmqtt.max_qos = 7\n")
        r = run(["dpkg", "-i", "--force-confold", debs[0]], cwd=work, timeout=120)
        assert "ward.service was NOT restarted" in r.stderr, r.stderr
        assert "mqtt.max_qos: 7 is out of range" in r.stderr, r.stderr
        assert installed() and proc.poll() is None
        stop(proc)
        assert proc.returncode == 0, open(os.path.join(work, "ward.log")).read()

        run(["apt-get", "purge", "-y", "-o", "DPkg::Lock::Timeout=120", "ward"], timeout=300,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        ours = False
        r = run(["getent", "passwd", "ward"], check=False)
        assert r.returncode != 0, r.stdout
        assert run(["getent", "group", "ward"], check=False).returncode != 0
        for gone in ("/var/lib/ward", "/etc/ward", UNIT, "/usr/bin/ward",
                     "/etc/systemd/system/multi-user.target.wants/ward.service"):
            assert not os.path.lexists(gone), gone
        print("package test: build %.1f s, install to purge %.1f s"
              % (built - started, time.monotonic() - built))
    finally:
        stop(proc)
        if notify:
            notify.close()
        if ours:
            subprocess.run(["apt-get", "purge", "-y", "-o", "DPkg::Lock::Timeout=120", "ward"],
                           capture_output=True, timeout=300,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        shutil.rmtree(work, ignore_errors=True)
        lock.close()


def schema_keys():
    r = run([WARD, "check", "--print-reference"])
    return re.findall(r"^\| `([^`]+)` \|", r.stdout, re.M)


def commands():
    r = run([WARD, "help"])
    names = re.findall(r"^  (\w+) ", r.stdout.split("commands:", 1)[1], re.M)
    return [n for n in names if n != "version"]  # no options: in COMMANDS only


@pytest.mark.parametrize("page", ["ward.1", "ward.conf.5"])
def test_man_pages(page):
    """The pages the build made render without a groff warning, and hold
    every command (ward.1) or every configuration key (ward.conf.5)."""
    path = os.path.join(BUILD_DIR, "man", page)
    assert os.path.exists(path), "the build writes %s" % path
    r = run(["groff", "-man", "-Tutf8", "-ww", "-z", path])
    assert r.stderr == "", r.stderr
    r = run(["man", "-l", "--warnings", "-Tutf8", path], env=dict(os.environ, MANWIDTH="100"))
    assert r.stderr == "", r.stderr
    with open(path) as f:
        roff = f.read()
    if page == "ward.1":
        names = commands()
        assert len(names) >= 9 and "serve" in names
        for c in names:
            assert '\n.SS "ward %s"\n' % c in roff, c
        # and every option each command's --help lists
        for c in names:
            h = run([WARD, c, "--help"])
            for opt in re.findall(r"^  (?:-\w, |    )?--([\w-]+)", h.stdout, re.M):
                assert "\\fB\\-\\-%s\\fR" % opt.replace("-", "\\-") in roff, (c, opt)
    else:
        keys = schema_keys()
        assert len(keys) > 100
        for k in keys:
            assert "\n.TP\n\\fB%s\\fR (" % k.replace("\\", "\\e") in roff, k
    # the page is what the binary prints now (the build keeps it current)
    args = ["help", "--man"] if page == "ward.1" else ["check", "--print-reference", "--man"]
    assert run([WARD] + args).stdout == roff
