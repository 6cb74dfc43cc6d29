"""Shared fixtures: run the real `ward` binary on a free loopback port.

WARD_BIN (set by CTest) names the binary; without it, build/ward is used.
Every broker started here is stopped at the end of its test, and a broker
that crashed or logged a sanitizer report fails the test that used it.
"""
import os
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WARD = os.environ.get("WARD_BIN") or os.path.join(ROOT, "build", "ward")


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
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


@pytest.fixture
def ward_factory(tmp_path):
    started = []

    def make(*args, **kw):
        w = Ward(tmp_path, *args, **kw)
        started.append(w)
        return w

    yield make
    errors = []
    for w in started:
        try:
            w.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


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
