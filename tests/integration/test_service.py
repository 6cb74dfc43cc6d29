"""Running under systemd (issue 18): `ward serve` started the way a
Type=notify unit with WatchdogSec= starts it, with NOTIFY_SOCKET bound here,
tells READY=1 only once its listener accepts, pings WATCHDOG=1, brackets a
SIGHUP reload with RELOADING=1 and READY=1, and says STOPPING=1 on SIGTERM
before exiting 0. Started without NOTIFY_SOCKET, or with one nobody listens
on, it serves all the same. And `ward --version` reports the OpenSSL and
SQLite that `openssl version` and `sqlite3 --version` report."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import WARD, wait_port

WAIT = 10.0  # bound on every wait for a notification


@pytest.fixture
def notify(tmp_path, monkeypatch):
    """A unix datagram socket as systemd's notification socket, named in
    NOTIFY_SOCKET for the brokers this test starts."""
    path = os.path.join(str(tmp_path), "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(WAIT)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield s
    s.close()


def next_msg(sock, skip_watchdog=False):
    """The next notification as a dict (at most WAIT seconds away)."""
    deadline = time.monotonic() + WAIT
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(4096).decode()
        fields = dict(line.split("=", 1) for line in data.split("\n") if line)
        if not (skip_watchdog and fields == {"WATCHDOG": "1"}):
            return fields


def waiting(sock):
    """The notifications already queued, without waiting for more."""
    sock.setblocking(False)
    got = []
    try:
        for _ in range(10000):
            got.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(WAIT)
    return got


def test_notify_lifecycle(ward_factory, notify, monkeypatch, tmp_path):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    w = ward_factory(["--data", str(tmp_path / "data")]).start(wait=False)

    # READY=1 comes first, and when it does the listener already accepts.
    ready = next_msg(notify)
    assert ready.get("READY") == "1", ready
    socket.create_connection((w.host, w.port), timeout=5).close()
    assert ready.get("STATUS") == "serving 1 listener"

    # WATCHDOG=1, again and again (every 100 ms for a 200 ms interval).
    for _ in range(3):
        assert next_msg(notify) == {"WATCHDOG": "1"}
    w.wait_log("watchdog: WATCHDOG=1 every 100 ms")

    # SIGHUP: RELOADING=1 with the monotonic time, then READY=1 again.
    before = time.monotonic()
    w.signal(signal.SIGHUP)
    reloading = next_msg(notify, skip_watchdog=True)
    after = time.monotonic()
    assert reloading.get("RELOADING") == "1", reloading
    usec = int(reloading["MONOTONIC_USEC"])
    assert before * 1e6 - 1000 <= usec <= after * 1e6 + 1000  # CLOCK_MONOTONIC in µs
    again = next_msg(notify, skip_watchdog=True)
    assert again.get("READY") == "1", again
    w.wait_log("reload: ")

    # SIGTERM: STOPPING=1, then exit 0 (stop() checks the status).
    w.signal(signal.SIGTERM)
    stopping = next_msg(notify, skip_watchdog=True)
    assert stopping.get("STOPPING") == "1", stopping
    assert w.stop() == 0
    # Gone: after STOPPING=1 at most a last ping or two, sent before the
    # watchdog thread was stopped.
    assert set(waiting(notify)) <= {"WATCHDOG=1"}
    assert "withheld" not in w.read_log()


def test_start_line_names_the_versions(ward):
    text = ward.wait_log(" serving with ")
    line = next(l for l in text.splitlines() if " serving with " in l)
    assert re.search(r" NOTICE ward \S+ \(git \S+; OpenSSL \S+ .*, SQLite \S+, libsystemd \S+\) "
                     r"serving with 2 workers$", line), line


def test_no_notify_socket_no_watchdog(ward_factory, monkeypatch):
    """Without NOTIFY_SOCKET (WATCHDOG_USEC alone is meaningless) ward
    serves, reloads and stops as always."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    w = ward_factory().start()
    w.signal(signal.SIGHUP)
    w.wait_log("reload: ")
    socket.create_connection((w.host, w.port), timeout=5).close()
    assert w.stop() == 0
    log = w.read_log()
    assert "systemd:" not in log and "watchdog:" not in log, log


def test_notify_socket_nobody_listens_on(ward_factory, monkeypatch, tmp_path):
    """A NOTIFY_SOCKET that cannot be reached is logged, never fatal."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "absent"))
    w = ward_factory().start()
    w.wait_log("systemd: cannot send READY=1")
    socket.create_connection((w.host, w.port), timeout=5).close()
    assert w.stop() == 0


def test_no_ready_when_start_fails(notify, ward_factory):
    """A broker that cannot listen exits non-zero without READY=1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        w = ward_factory(port=taken.getsockname()[1]).start(wait=False)
        rc = w.proc.wait(timeout=WAIT)
        assert rc != 0, w.read_log()
        w.proc = None
        w.log.close()
    assert waiting(notify) == []


def passing_sockets(socks, names):
    """A preexec_fn putting socks at fd 3, 4, ... with LISTEN_* set, as
    systemd does just before it starts the service."""
    def as_systemd_would():  # in the child, just before exec
        for i, sk in enumerate(socks):
            os.dup2(sk.fileno(), 3 + i)
        os.environ.update(LISTEN_FDS=str(len(socks)), LISTEN_PID=str(os.getpid()),
                          LISTEN_FDNAMES=":".join(names))
    return as_systemd_would


def test_socket_activation_uses_the_passed_socket(tmp_path):
    """A socket systemd bound and passed (LISTEN_FDS) is the listener with
    its address: ward does not bind it again (which would fail: the port is
    taken) and serves MQTT on it."""
    with socket.socket() as passed:
        passed.bind(("127.0.0.1", 0))
        passed.listen(16)
        port = passed.getsockname()[1]
        p = subprocess.Popen([WARD, "serve", "-l", "tcp://127.0.0.1:%d" % port],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             close_fds=False, preexec_fn=passing_sockets([passed], ["ward.socket"]))
    try:
        lines = []
        for line in p.stderr:  # bounded: ward logs the listener or exits
            lines.append(line)
            if "serving with" in line or "listening on" in line and "systemd" in line:
                break
        assert any("listening on tcp://127.0.0.1:%d (a socket systemd passed)" % port in l
                   for l in lines), lines
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "t",
                            "-m", "m", "-q", "1"], capture_output=True, text=True, timeout=WAIT)
        assert r.returncode == 0, r
    finally:
        p.terminate()
        p.wait(timeout=WAIT)


def test_socket_activation_unknown_socket_refused(tmp_path):
    """A passed socket no listener has the address of is refused by name:
    systemd would otherwise hold connections on it that nobody accepts."""
    with socket.socket() as passed, socket.socket() as mine:
        passed.bind(("127.0.0.1", 0))
        passed.listen(1)
        port = passed.getsockname()[1]
        mine.bind(("127.0.0.1", 0))
        other = mine.getsockname()[1]
        mine.close()
        r = subprocess.run([WARD, "serve", "-l", "tcp://127.0.0.1:%d" % other],
                           capture_output=True, text=True, timeout=WAIT, close_fds=False,
                           preexec_fn=passing_sockets([passed], ["ward.socket"]))
    assert r.returncode == 1, r
    assert ("ward serve: systemd passed socket no listener of the configuration has the address "
            "of; add the listener or remove it from the .socket unit: fd 3 (ward.socket): "
            "127.0.0.1:%d, listening\n" % port) in r.stderr, r.stderr


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT, check=True).stdout


def test_version_reports_linked_libraries():
    out = run(WARD, "--version")
    assert run(WARD, "version") == out
    lines = out.splitlines()
    assert re.fullmatch(r"ward \d+\.\d+\.\d+ \(git \S+\)", lines[0]), out
    assert out.split()[0] == "ward"

    # `openssl version`: "OpenSSL 3.0.x DATE (Library: OpenSSL 3.0.x DATE)"
    # when the tool and the library differ in how they say it; the library
    # is what ward links.
    ossl = run("openssl", "version").strip()
    m = re.search(r"\(Library: (.*)\)$", ossl)
    assert lines[1] == (m.group(1) if m else ossl), (out, ossl)

    sqlite = run("sqlite3", "--version").split()[0]
    assert lines[2] == "SQLite " + sqlite, (out, sqlite)
    assert re.fullmatch(r"libsystemd \d+", lines[3]), out
    assert len(lines) == 4


def test_version_rejects_nothing_else():
    """`ward --versions` is not --version: an unknown command, status 2."""
    r = subprocess.run([WARD, "--versions"], capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 2 and "unknown command '--versions'" in r.stderr
