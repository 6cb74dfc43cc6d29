"""Shared fixtures: run the real `ward` binary on a free loopback port.

WARD_BIN (set by CTest) names the binary; without it, build/ward is used.
Every broker started here is stopped at the end of its test, and a broker
that crashed or logged a sanitizer report fails the test that used it.
"""
import os
import signal
import random
import shutil
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WARD = os.environ.get("WARD_BIN") or os.path.join(ROOT, "build", "ward")


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_next_port = None


def free_port(host="127.0.0.1"):
    """A free port below the kernel's ephemeral range, so a client's own
    outgoing connection can never take it while a test restarts a broker
    on it (seen: "Address already in use" after kill -9)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = _ephemeral_low()
    first = max(1024, low - 12000)
    for _ in range(200):
        # Walked in order from a random start, so one test process never
        # hands out the same port twice (two ports asked for in a row were
        # once the same: nothing holds a port between the check and its use).
        global _next_port
        if _next_port is None or not first <= _next_port < low:
            _next_port = random.randrange(first, low)
        port = _next_port
        _next_port = first if _next_port + 1 >= low else _next_port + 1
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def paho_connack(c, host, port, got, timeout=5.0):
    """Connects the paho client c and runs its network loop until `got`,
    which c.on_connect fills, holds something or `timeout` passed; then
    disconnects. The caller checks `got`."""
    c.connect(host, port)
    c.loop_start()
    deadline = time.monotonic() + timeout
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()


class Ward:
    """One `ward serve` process. `args` are extra command-line arguments."""

    def __init__(self, tmp_path, args=(), workers=2, port=None, listen=True):
        self.tmp = tmp_path
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.log_path = os.path.join(str(tmp_path), "ward-%d.log" % self.port)
        self.args = list(args)
        self.workers = workers
        self.listen = listen
        self.proc = None

    def start(self, wait=True):
        cmd = [WARD, "serve", "--workers", str(self.workers)]
        if self.listen:
            cmd += ["-l", "tcp://%s:%d" % (self.host, self.port)]
        cmd += self.args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if wait and self.listen and not wait_port(self.port, self.host, proc=self.proc):
            self.stop(check=False)
            raise RuntimeError("ward did not start listening:\n" + self.read_log())
        return self

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, needle, timeout=5.0):
        """Waits until `needle` appears in the log; returns the log or raises."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.read_log()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError("%r not in ward's log:\n%s" % (needle, self.read_log()))

    def wait_count(self, needle, n, timeout=10.0):
        """Waits until `needle` is in the log at least n times; returns the
        log. ward's logger thread writes a line a moment after the event
        that logged it, so a count read at once can come up short."""
        deadline = time.monotonic() + timeout
        while self.read_log().count(needle) < n:
            if time.monotonic() >= deadline:
                raise AssertionError("%r not %d times in ward's log:\n%s"
                                     % (needle, n, self.read_log()))
            time.sleep(0.02)
        return self.read_log()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, check=True):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if check:
                    raise AssertionError("ward did not stop on SIGTERM:\n" + self.read_log())
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        text = self.read_log()
        if check:
            assert "Sanitizer" not in text and "runtime error" not in text, text
            assert rc == 0, "ward exited with %s:\n%s" % (rc, text)
        return rc


def stop_all(started):
    """Stops every broker a fixture started; then fails the test with what
    each one that ended badly (a sanitizer report, a bad exit status) left."""
    errors = []
    for w in started:
        try:
            w.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


def serve_conf(ward_factory, tmp_path, text, name="ward.conf", timeout=10.0):
    """`ward serve -c FILE` with a TCP listener on a free loopback port and
    then `text`; returns the Ward once it accepts connections on w.port."""
    port = free_port()
    conf = tmp_path / name
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n%s' % (port, text))
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert wait_port(port, proc=w.proc, timeout=timeout), "ward is not listening:\n" + w.read_log()
    return w


@pytest.fixture
def ward_factory(tmp_path):
    started = []

    def make(*args, **kw):
        w = Ward(tmp_path, *args, **kw)
        started.append(w)
        return w

    yield make
    stop_all(started)


@pytest.fixture
def ward(ward_factory):
    """A running broker with default settings and two workers."""
    return ward_factory().start()


class Mosquitto:
    """Debian's mosquitto on a free loopback port, as an independent reference
    implementation for the same tests. `extra` lines go into its config."""

    def __init__(self, tmp_path, extra=""):
        self.port = free_port()
        self.host = "127.0.0.1"
        conf = os.path.join(str(tmp_path), "mosquitto-%d.conf" % self.port)
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n%s\n"
                    % (self.port, extra))
        self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        if not wait_port(self.port, proc=self.proc):
            self.stop()
            raise RuntimeError("mosquitto did not start")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def mosquitto_factory(tmp_path):
    started = []

    def make(extra=""):
        m = Mosquitto(tmp_path, extra)
        started.append(m)
        return m

    yield make
    for m in started:
        m.stop()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "mosquitto_deviates(reason): mosquitto breaks the statement tested; the "
        "test runs on ward only and the reason says how mosquitto deviates")
    config.addinivalue_line(
        "markers", "ward_bug(reason): a known ward bug; the ward run is a strict xfail")


@pytest.fixture(params=["ward", "mosquitto"])
def mk(request, tmp_path):
    """Differential runs: the test runs once against ward and once against
    Debian's mosquitto 2.0, an independent reference. Calling
    `mk(ward=[args], mosq="config lines")` starts a broker of the current
    kind with those settings; it has .port, .name ("ward" or "mosquitto")
    and .alive(). A test marked mosquitto_deviates runs on ward only; one
    marked ward_bug is a strict xfail on ward (it fails loudly once fixed)."""
    name = request.param
    deviates = request.node.get_closest_marker("mosquitto_deviates")
    if name == "mosquitto" and deviates:
        pytest.skip("mosquitto deviates: " + deviates.args[0])
    bug = request.node.get_closest_marker("ward_bug")
    if name == "ward" and bug:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason="ward: " + bug.args[0]))
    started = []

    def make(ward=(), mosq=""):
        if name == "ward":
            b = request.getfixturevalue("ward_factory")(list(ward)).start()
        else:
            b = Mosquitto(tmp_path, mosq)
            started.append(b)
        b.name = name
        return b

    yield make
    for m in started:
        m.stop()


@pytest.fixture
def broker(mk):
    """ward, then mosquitto (see `mk`), with default settings. A test that
    passes on mosquitto and fails on ward shows a ward bug."""
    return mk()


# ---- NATS (issue 13) -------------------------------------------------------

_WARD_NATS = []


def ward_speaks_nats():
    """Whether this ward binary serves NATS: `ward serve -l nats://...` on a
    free loopback port sends an INFO line. Probed once per session, so the
    NATS tests switch themselves on when the listener lands."""
    if _WARD_NATS:
        return _WARD_NATS[0]
    ok = False
    if os.path.exists(WARD):
        port = free_port()
        p = subprocess.Popen([WARD, "serve", "--workers", "1", "-l", "nats://127.0.0.1:%d" % port],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
        try:
            if wait_port(port, proc=p, timeout=5):
                with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                    ok = s.recv(5) == b"INFO "
        except OSError:
            ok = False
        finally:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    _WARD_NATS.append(ok)
    return ok


NO_WARD_NATS = "this ward does not serve NATS yet (no INFO on -l nats://)"


class NatsServer:
    """Debian's nats-server 2.9 on a free loopback port, the reference for
    the NATS tests. `conf` is nats-server configuration text added after
    the listen line."""

    kind = "nats-server"

    def __init__(self, tmp_path, conf="", port=None):
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.tmp = str(tmp_path)
        self.conf_path = os.path.join(self.tmp, "nats-%d.conf" % self.port)
        self.log_path = os.path.join(self.tmp, "nats-%d.log" % self.port)
        with open(self.conf_path, "w") as f:
            f.write("listen: 127.0.0.1:%d\n%s\n" % (self.port, conf))
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["nats-server", "-c", self.conf_path], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not wait_port(self.port, proc=self.proc):
            self.stop()
            raise RuntimeError("nats-server did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, check=True):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def nats_params():
    """The two kinds of NATS server a differential test runs against."""
    return ["nats-server", pytest.param("ward", marks=pytest.mark.skipif(
        not ward_speaks_nats(), reason=NO_WARD_NATS))]


@pytest.fixture(params=nats_params())
def nk(request, tmp_path):
    """Differential NATS runs: once against Debian's nats-server 2.9, once
    against ward (skipped until ward answers NATS). `nk(ns="conf text",
    ward=[args], ward_conf="text", scheme="nats")` starts a server of the
    current kind: nats-server with that configuration; ward with
    `-l SCHEME://127.0.0.1:PORT` and the args, or with `ward_conf` (which
    then holds its own `listeners.nats { bind = "127.0.0.1:{port}" ... }`,
    {port} filled in) as a configuration file; `port` reuses a port (a
    restart). The result has .port, .kind, .stop(),
    .alive(), .signal(), .read_log(). A test marked ward_bug is a strict
    xfail on ward."""
    kind = request.param
    bug = request.node.get_closest_marker("ward_bug")
    if kind == "ward" and bug:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason="ward: " + bug.args[0]))
    started = []

    def make(ns="", ward=(), ward_conf=None, scheme="nats", port=None):
        port = port or free_port()
        if kind == "nats-server":
            b = NatsServer(tmp_path, ns, port=port)
            started.append(b)
        else:
            if ward_conf is not None:
                conf = tmp_path / ("ward-nats-%d.conf" % port)
                conf.write_text(ward_conf.replace("{port}", str(port)))
                args = ["-c", str(conf)] + list(ward)
            else:
                args = ["-l", "%s://127.0.0.1:%d" % (scheme, port)] + list(ward)
            b = request.getfixturevalue("ward_factory")(args, port=port, listen=False)
            b.start(wait=False)
            assert wait_port(port, proc=b.proc, timeout=15), (
                "ward is not listening:\n" + b.read_log())
            b.port = port
        b.kind = kind
        return b

    make.kind = kind
    yield make
    for b in started:
        b.stop()


@pytest.fixture
def nats_ward(ward_factory):
    """ward-only NATS tests: `nats_ward(args)` starts ward with
    `-l nats://127.0.0.1:NPORT -l tcp://127.0.0.1:MPORT` plus args; the result
    has .nats_port and .port (MQTT)."""
    if not ward_speaks_nats():
        pytest.skip(NO_WARD_NATS)

    def make(args=()):
        nport = free_port()
        w = ward_factory(["-l", "nats://127.0.0.1:%d" % nport] + list(args)).start()
        assert wait_port(nport, proc=w.proc, timeout=15), "no NATS listener:\n" + w.read_log()
        w.nats_port = nport
        return w

    return make


NATS_PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nats")


@pytest.fixture(scope="session")
def nats_build(tmp_path_factory):
    """`nats_build("goclient.go")` builds a program of tests/integration/nats
    into a temporary directory once per session and returns its path: Go
    against Debian's nats.go (GO111MODULE=off, GOPATH=/usr/share/gocode), C
    against Debian's libnats."""
    out = tmp_path_factory.mktemp("nats-bin")
    built = {}

    def build(name):
        if name in built:
            return built[name]
        src = os.path.join(NATS_PROGRAMS, name)
        exe = str(out / os.path.splitext(name)[0])
        if name.endswith(".go"):
            env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
                       GOCACHE=str(out / "gocache"), GOFLAGS="")
            cmd = ["go", "build", "-o", exe, src]
        else:
            env = os.environ
            cmd = ["cc", "-O1", "-Wall", "-Wextra", "-Werror", "-o", exe, src, "-lnats"]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, "building %s failed:\n%s%s" % (name, r.stdout, r.stderr)
        built[name] = exe
        return exe

    return build


NPM_TIMEOUT = 180


def npm_install(tmp_path_factory, src_dir, what):
    """Copies the package.json, lockfile and .mjs scripts of src_dir into a
    fresh directory and runs `npm ci` there (a failed install fails the
    test: the JavaScript clients are required independent clients).
    Returns (node, directory)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "%s needs Node.js and npm (Debian: nodejs, npm)" % what
    d = tmp_path_factory.mktemp(os.path.basename(src_dir.rstrip("/")) or "js")
    for name in os.listdir(src_dir):
        if name.endswith((".json", ".mjs")):
            shutil.copy(os.path.join(src_dir, name), str(d / name))
    env = dict(os.environ, npm_config_update_notifier="false")
    try:
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=str(d), env=env,
                           capture_output=True, text=True, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail("npm ci did not finish in %d s:\n%s%s" % (NPM_TIMEOUT, e.stdout, e.stderr))
    if r.returncode != 0:
        pytest.fail("npm ci failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
    return node, d


# The reference brokers a differential test also runs against (mosquitto,
# nats-server) behave the same whatever ward was built with: under the
# sanitizer builds (WARD_SANITIZED, set by tests/CMakeLists.txt) only ward's
# runs are worth their time, the plain pass having run the references.
REFERENCE_KINDS = {"mosquitto", "nats-server"}


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("WARD_SANITIZED"):
        return
    skip = pytest.mark.skip(reason="a reference broker's run: done in the plain pass")
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(isinstance(v, str) and v in REFERENCE_KINDS for v in params.values()):
            item.add_marker(skip)
