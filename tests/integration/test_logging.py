"""log { } (issue 18): the file sink with size rotation and SIGUSR1 reopen,
JSON lines, syslog datagrams read from a socket the test binds, and a
stalled standard error that costs dropped lines, never a stalled broker."""
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import time
import urllib.request

import pytest

from conftest import WARD, free_port, serve_conf, wait_port

EVIL = b"ev\x1b[31m\nil\x07"  # a client id with an escape sequence, a newline, a bell


def mqtt_connect(port, client_id, timeout=5.0):
    """One MQTT 3.1.1 CONNECT / CONNACK / DISCONNECT; returns the CONNACK."""
    vh = b"\x00\x04MQTT\x04\x02\x00\x3c"
    rem = vh + struct.pack("!H", len(client_id)) + client_id
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(bytes([0x10, len(rem)]) + rem)
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            if not chunk:
                break
            ack += chunk
        if ack[:2] == b"\x20\x02":
            s.sendall(b"\xe0\x00")
        return ack


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_json_lines_escape_what_the_peer_chose(ward_factory, tmp_path):
    log = tmp_path / "w.log"
    w = serve_conf(ward_factory, tmp_path,
                   'log { to = [file, console], dir = "%s", file = "w.log", format = json }\n'
                   % tmp_path)
    assert mqtt_connect(w.port, EVIL)[:2] == b"\x20\x02"
    data = wait_for(lambda: b"disconnected" in read(log) and read(log), what="the disconnect line")
    # No raw control character but the line ends.
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", data), data
    records = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    for r in records:
        assert set(r) == {"time", "level", "msg"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"])
    assert any(r["level"] == "notice" and "serving" in r["msg"] for r in records)
    # The client id comes back exactly as sent once the JSON is decoded.
    assert any(EVIL.decode() in r["msg"] and "connected" in r["msg"] for r in records), records
    assert b"\\u001b[31m\\u000ail\\u0007" in data


def test_rotation_by_size_keeps_count_files(ward_factory, tmp_path):
    log = tmp_path / "w.log"
    w = serve_conf(ward_factory, tmp_path,
                   'log { to = file, file = "%s", rotation { size = 2KB, count = 2 } }\n' % log)
    # About 230 bytes a connection: 2 KB files fill in a few dozen.
    for i in range(60):
        assert mqtt_connect(w.port, b"rot-%02d" % i)[:2] == b"\x20\x02"
    wait_for(lambda: b"rot-59' (" in read(log) and b"disconnected" in read(log).split(b"rot-59")[-1],
             what="the last client's lines")
    for name in ("w.log", "w.log.1", "w.log.2"):
        data = read(tmp_path / name)
        assert 0 < len(data) <= 2048 and data.endswith(b"\n"), (name, len(data))
    assert not (tmp_path / "w.log.3").exists()
    assert b"rot-59" in read(log) and b"rot-00" not in read(log)
    # Nothing went to standard error but the startup before the logger ran.
    assert "rot-" not in w.read_log()


def test_sigusr1_reopens_after_a_rename(ward_factory, tmp_path):
    log = tmp_path / "w.log"
    w = serve_conf(ward_factory, tmp_path, 'log { to = file, file = "%s" }\n' % log)
    wait_for(lambda: b"serving" in read(log), what="the start line")
    os.rename(log, tmp_path / "w.log.moved")  # what logrotate does
    w.signal(signal.SIGUSR1)
    wait_for(lambda: b"log: reopened " in read(log), what="the reopened file")
    assert mqtt_connect(w.port, b"after-reopen")[:2] == b"\x20\x02"
    wait_for(lambda: b"after-reopen" in read(log), what="a line in the new file")
    moved = read(tmp_path / "w.log.moved")
    assert b"serving" in moved and b"after-reopen" not in moved


def test_failed_reopen_keeps_the_old_file(ward_factory, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    w = serve_conf(ward_factory, tmp_path,
                   'log { to = [file, console], dir = "%s", file = "w.log" }\n' % logs)
    os.rename(logs, tmp_path / "gone")
    w.signal(signal.SIGUSR1)
    w.wait_log("log: cannot reopen %s/w.log" % logs)
    assert w.alive()
    assert mqtt_connect(w.port, b"still-logged")[:2] == b"\x20\x02"
    wait_for(lambda: b"still-logged" in read(tmp_path / "gone" / "w.log"), what="the old file")
    assert w.read_log().count("cannot reopen") == 1


def test_unopenable_file_refuses_to_start(tmp_path):
    conf = tmp_path / "w.conf"
    port = free_port()
    missing = tmp_path / "missing" / "w.log"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\nlog { to = file, file = "%s" }\n'
                    % (port, missing))
    r = subprocess.run([WARD, "serve", "-c", str(conf)], capture_output=True, text=True,
                       timeout=15)
    assert r.returncode == 1
    assert "log file %s: No such file or directory" % missing in r.stderr, r.stderr
    r = subprocess.run([WARD, "serve", "-l", "tcp://127.0.0.1:%d" % port, "--log-file",
                        str(missing)], capture_output=True, text=True, timeout=15)
    assert r.returncode == 1 and str(missing) in r.stderr


def test_config_errors_name_the_key(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text("log {\n  to = [file, journal]\n  rotation.size = 10XB\n  format = yaml\n}\n")
    r = subprocess.run([WARD, "check", "-c", str(conf)], capture_output=True, text=True,
                       timeout=15)
    assert r.returncode != 0
    assert "w.conf:2: log.to: unknown sink 'journal'" in r.stderr, r.stderr
    assert "w.conf:3: log.rotation.size: expected a size" in r.stderr
    assert "w.conf:4: log.format: 'yaml' is not one of: text json" in r.stderr
    # NanoMQ's own block loads without a warning now that ward acts on it.
    conf.write_text('log { to = [file, console], level = warn, dir = "%s", file = "nanomq.log",'
                    " rotation { size = 10MB, count = 5 } }\n" % tmp_path)
    r = subprocess.run([WARD, "check", "-c", str(conf)], capture_output=True, text=True,
                       timeout=15)
    assert r.returncode == 0 and "ignored" not in r.stderr, r.stderr


def test_syslog_datagrams_with_mapped_severity(ward_factory, tmp_path):
    path = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        w = serve_conf(ward_factory, tmp_path,
                       'log { to = [syslog, console], syslog_socket = "%s",'
                       " syslog_facility = local3 }\n" % path)
        assert mqtt_connect(w.port, EVIL)[:2] == b"\x20\x02"
        got = []
        while not any(b"disconnected" in g for g in got) and len(got) < 100:
            got.append(sock.recv(4096))
    finally:
        sock.close()
    header = re.compile(rb"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ward\[%d\]: "
                        % w.proc.pid)
    for g in got:
        m = header.match(g)
        assert m, g
        # local3, notice; warning for the one line about running as root
        want = 19 * 8 + (4 if b"running as root" in g else 5)
        assert int(m.group(1)) == want, g
        assert not re.search(rb"[\x00-\x1f\x7f]", g), g
    assert any(b"serving" in g for g in got)
    assert any(b"ev\\x1b[31m\\x0ail\\x07" in g for g in got), got
    # SIGHUP with a bad file logs an error: severity 3.
    conf = tmp_path / "ward.conf"
    text = conf.read_text()
    conf.write_text(text + "mqtt.max_packet_size = nope\n")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    os.unlink(path)
    sock.bind(path)  # a restarted syslog daemon: ward reconnects
    sock.settimeout(10)
    try:
        w.signal(signal.SIGHUP)
        err = sock.recv(4096)
    finally:
        sock.close()
    assert err.startswith(b"<%d>" % (19 * 8 + 3)) and b"reload" in err, err
    conf.write_text(text)


def test_stalled_stderr_drops_lines_instead_of_blocking(tmp_path):
    """Standard error is a pipe nobody reads: the broker keeps answering,
    lines are dropped and counted (also in /metrics), and once the pipe is
    read the logger says how many it dropped."""
    port, http = free_port(), free_port()
    conf = tmp_path / "w.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                    'http { bind = "127.0.0.1:%d", open_metrics = true }\n'
                    "log { queue_size = 16KB, flush_timeout = 1s }\n" % (port, http))
    p = subprocess.Popen([WARD, "serve", "--workers", "2", "-c", str(conf)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        assert wait_port(port, proc=p) and wait_port(http, proc=p)
        # 64 KB of pipe and 16 KB of queue hold about 350 connections' lines;
        # every CONNACK below still arrives within its timeout.
        for i in range(800):
            assert mqtt_connect(port, b"flood-%04d" % i)[:2] == b"\x20\x02"
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http, timeout=10) as r:
            metrics = r.read().decode()
        m = re.search(r"^ward_log_dropped_lines_total (\d+)$", metrics, re.M)
        assert m and int(m.group(1)) > 0, metrics[-2000:]
        seen, buf = None, b""
        for _ in range(10000):  # bounded: each read waits at most 10 s
            ready, _, _ = select.select([p.stderr], [], [], 10)
            assert ready, "nothing more on standard error"
            chunk = os.read(p.stderr.fileno(), 65536)
            assert chunk
            buf += chunk
            seen = re.search(rb"WARN log: (\d+) log lines dropped \(the log queue was full\)", buf)
            if seen:
                break
            buf = buf[-4096:]  # the report may span two reads
        assert seen and int(seen.group(1)) > 0
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            out = p.communicate(timeout=15)[1]
        except subprocess.TimeoutExpired:
            p.kill()
            out = p.communicate()[1]
    assert p.returncode == 0
    assert b"Sanitizer" not in out and b"runtime error" not in out
    assert b"SIGTERM: shutting down" in out
