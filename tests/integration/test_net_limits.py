"""Connection-level limits and hardening in src/net (issue 11, items 10-12
and 14): listener max_connections; the file-descriptor limit (no accept
spin); TLS handshake slots with a queue, per-source fairness and a shorter
timeout for connections that send nothing; the PROXY protocol from trusted
proxies; graceful close after a DISCONNECT.

Listener settings are given as the listen URL's query
("tls://127.0.0.1:PORT?max_handshakes=2"); the same keys exist in the
configuration file's listener blocks. Every wait is for an event (a log
line, a CONNACK, an end of file) with a generous deadline; a deadline
passing fails the test, it is never taken as the event."""
import os
import re
import resource
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

import mqttwire as raw
import tls_pki
from conftest import WARD, Ward, free_port, stop_all

DEADLINE = 20.0  # generous: the machine is shared


# ------------------------------------------------------------------ helpers

class NetWard(Ward):
    """ward serve with our own -l URLs, optionally under a low descriptor
    limit (set in the child before exec, like `prlimit --nofile=N:N`)."""

    def __init__(self, tmp_path, urls, args=(), nofile=None, log_level="info"):
        super().__init__(tmp_path, args=args, listen=False)
        self.urls = urls
        self.nofile = nofile
        self.log_level = log_level

    def start(self, wait=True):
        cmd = [WARD, "serve", "--workers", str(self.workers), "--log-level", self.log_level]
        for u in self.urls:
            cmd += ["-l", u]
        cmd += self.args
        limit = self.nofile

        def lower():
            if limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=lower)
        self.wait_log("serving with", timeout=DEADLINE)
        return self

    def count(self, needle):
        return self.read_log().count(needle)


@pytest.fixture
def net_ward(tmp_path):
    started = []

    def make(urls, args=(), **kw):
        w = NetWard(tmp_path, urls, args, **kw)
        started.append(w)
        return w.start()

    yield make
    stop_all(started)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


def tls_args(pki):
    return ["--certfile", pki["server_crt"], "--keyfile", pki["server_key"], "--cafile", pki["ca"]]


def tcp(port, src="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(DEADLINE)
    s.connect(("127.0.0.1", port))
    return s


def read_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def mqtt_connect(s, cid):
    """CONNECT on s; returns True if a CONNACK came back, False on a close."""
    s.sendall(raw.connect(cid))
    try:
        return read_exactly(s, 4)[:1] == b"\x20"
    except ConnectionResetError:
        return False


def closed_by_peer(s):
    """Waits (up to DEADLINE) for the server to close s; a timeout fails."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        pytest.fail("the server did not close the connection within %s s" % DEADLINE)


def wait_closed(socks, n):
    """Waits until the server has closed n of socks (whichever they are);
    returns the closed ones. More than n closed, or a deadline, fails."""
    import select
    closed, deadline = [], time.monotonic() + DEADLINE
    while len(closed) < n:
        left = deadline - time.monotonic()
        assert left > 0, "only %d of %d closed within %s s" % (len(closed), n, DEADLINE)
        ready, _, _ = select.select([s for s in socks if s not in closed], [], [], left)
        for s in ready:
            try:
                data = s.recv(1)
            except ConnectionResetError:
                data = b""
            assert data == b"", "unexpected data %r" % data
            closed.append(s)
    assert len(closed) == n, "%d closed, expected %d" % (len(closed), n)
    return closed


def total(log, stat):
    """The last "[stat: N in total" ward logged, or 0."""
    found = re.findall(r"\[%s: (\d+) in total" % re.escape(stat), log)
    return int(found[-1]) if found else 0


def tls_client(pki, port, src="127.0.0.1", prefix=b""):
    """A TLS MQTT client (as paho connects): returns None once a CONNACK
    arrived, or the error."""
    ctx = ssl.create_default_context(cafile=pki["ca"])
    try:
        s = tcp(port, src)
        if prefix:
            s.sendall(prefix)
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(raw.connect("tls-%d" % port))
        data = read_exactly(t, 4)
        t.close()
        return None if data[:1] == b"\x20" else "no CONNACK (%r)" % data
    except (ssl.SSLError, OSError) as e:
        return str(e)


# ------------------------------------------------- item 10: max_connections

def test_listener_max_connections(net_ward):
    port = free_port()
    b = net_ward(["tcp://127.0.0.1:%d?max_connections=3" % port])
    held = [tcp(port) for _ in range(3)]
    for i, s in enumerate(held):
        assert mqtt_connect(s, "held-%d" % i)
    # The fourth is accepted and closed at once, counted and logged.
    extra = tcp(port)
    assert closed_by_peer(extra)
    log = b.wait_log("refused: listener max_connections (3) reached")
    assert total(log, "refused/max_connections") == 1
    # One leaves; once the broker has seen it go, a new one is served.
    held[0].close()
    b.wait_log("client 'held-0' (127.0.0.1:", timeout=DEADLINE)
    b.wait_log("disconnected", timeout=DEADLINE)
    again = tcp(port)
    assert mqtt_connect(again, "again")
    for s in held[1:] + [again, extra]:
        s.close()


def test_listener_keys_from_a_config_file(tmp_path):
    """The listener block's net keys reach the listener (not only a URL
    query), and its counters are published under $SYS."""
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text('mqtt.sys_interval = 1s\n'
                    'listeners.tcp { bind = "127.0.0.1:%d"\n  max_connections = 2 }\n' % port)
    b = Ward(tmp_path, ["-c", str(conf)], port=port, listen=False).start(wait=False)
    try:
        deadline = time.monotonic() + DEADLINE
        held = []
        while len(held) < 2 and time.monotonic() < deadline:
            try:
                s = tcp(port)
            except OSError:
                time.sleep(0.05)
                continue
            if mqtt_connect(s, "file-%d" % len(held)):
                held.append(s)
        extra = tcp(port)
        assert closed_by_peer(extra)
        b.wait_log("refused: listener max_connections (2) reached")
        sub = tcp(port)
        assert closed_by_peer(sub)  # still full: the $SYS reader must wait its turn
        held.pop().close()
        b.wait_log("disconnected", timeout=DEADLINE)
        # The broker logs the disconnect before net gives the slot back:
        # the reader tries until the slot is free (a refusal closes it).
        reader, tries, until = None, 0, time.monotonic() + DEADLINE
        while reader is None and time.monotonic() < until:
            s = tcp(port)
            tries += 1
            try:
                ok = mqtt_connect(s, "reader")
            except OSError:  # closed before the CONNECT went out
                ok = False
            if ok:
                reader = s
            else:
                s.close()
                time.sleep(0.05)
        assert reader, "the freed slot never came back (%d tries)" % tries
        topic = "$SYS/broker/listeners/%d/refused/max_connections" % port
        reader.sendall(raw.subscribe(1, [(topic, 0)]))
        data = b""
        while b"refused/max_connections" not in data or not re.search(rb"max_connections[^0-9]*[1-9]", data):
            chunk = reader.recv(4096)
            assert chunk, "closed while waiting for %s" % topic
            data += chunk
        for s in held + [extra, sub, reader]:
            s.close()
    finally:
        b.stop()


def test_server_max_connections_counts_every_listener(net_ward):
    p1, p2 = free_port(), free_port()
    b = net_ward(["tcp://127.0.0.1:%d" % p1, "tcp://127.0.0.1:%d" % p2],
                 ["--max-connections", "2"])
    a, c = tcp(p1), tcp(p2)
    assert mqtt_connect(a, "a") and mqtt_connect(c, "c")
    third = tcp(p2)
    assert closed_by_peer(third)
    log = b.wait_log("refused: max_connections (2) reached")
    assert total(log, "refused/max_connections") == 1
    for s in (a, c, third):
        s.close()


# ----------------------------------------------- item 11: descriptor limit

def test_descriptor_limit_no_accept_spin(net_ward):
    """Under a limit of 64 descriptors, 150 connections: the ones beyond
    what the limit allows are closed at once and counted; the log stays
    small (about one line a second per cause, whatever the machine's
    speed) instead of one line per turn of a spinning accept loop; once
    descriptors free up the broker serves again."""
    port = free_port()
    b = net_ward(["tcp://127.0.0.1:%d" % port], nofile=64)
    start = time.monotonic()
    socks = [tcp(port) for _ in range(150)]
    # The first `budget` are taken on: their CONNECTs go now, well within
    # connect_timeout (10 s), whatever the counting below takes.
    budget = int(re.search(r"allows (\d+) connections",
                           b.wait_log("allows", timeout=DEADLINE)).group(1))
    assert 8 <= budget < 64
    for i, s in enumerate(socks[:budget]):
        assert mqtt_connect(s, "held-%d" % i)
    deadline = start + DEADLINE
    while True:
        log = b.read_log()
        noise = [l for l in log.splitlines()
                 if "net: port %d" % port in l or "accept" in l]
        elapsed = time.monotonic() - start
        assert len(noise) <= 2 * (elapsed + 2), \
            "the accept loop spins: %d log lines in %.1f s" % (len(noise), elapsed)
        m = re.search(r"allows (\d+) connections", log)
        if m and total(log, "refused/fd_limit") == 150 - int(m.group(1)):
            break
        assert time.monotonic() < deadline, "refusals not counted:\n" + log[-3000:]
        time.sleep(0.05)
    assert int(m.group(1)) == budget
    # Exactly the first `budget` were taken on; every later one was closed.
    for s in socks[budget:]:
        assert closed_by_peer(s)
    assert total(b.read_log(), "accept_errors") <= 150
    for s in socks:
        s.close()
    # Every held client's close has been handled: descriptors are free.
    deadline = time.monotonic() + DEADLINE
    while b.read_log().count(" disconnected: ") < budget:
        assert time.monotonic() < deadline, "closes not seen:\n" + b.read_log()[-3000:]
        time.sleep(0.05)
    s = tcp(port)
    assert mqtt_connect(s, "after")
    s.close()


# ---------------------------------------------- item 12: TLS handshake slots

def test_handshake_timeouts_idle_is_shorter(net_ward, pki):
    port = free_port()
    b = net_ward(["tls://127.0.0.1:%d?handshake_timeout=6s&handshake_idle_timeout=500ms" % port],
                 tls_args(pki))
    idle = tcp(port)
    started = tcp(port)
    # Five bytes of a TLS record header: the handshake has begun.
    started.sendall(b"\x16\x03\x01\x02\x00")
    t0 = time.monotonic()
    assert closed_by_peer(idle)
    idle_after = time.monotonic() - t0
    b.wait_log("TLS handshake failed: handshake timeout (nothing received in 500 ms)")
    # The one that sent something is still open when the idle one closed.
    started.setblocking(False)
    with pytest.raises(BlockingIOError):
        started.recv(1)
    started.setblocking(True)
    started.settimeout(DEADLINE)
    assert closed_by_peer(started)
    started_after = time.monotonic() - t0
    # The line is written by the logger thread, a moment after the close.
    deadline = time.monotonic() + DEADLINE
    while b.read_log().count("TLS handshake failed: handshake timeout") < 2:
        assert time.monotonic() < deadline, b.read_log()
        time.sleep(0.02)
    assert b.read_log().count("TLS handshake failed: handshake timeout") == 2
    assert idle_after >= 0.4 and started_after >= 5.5
    idle.close()
    started.close()


def test_max_handshakes_queue_instead_of_refusing(net_ward, pki):
    port = free_port()
    b = net_ward(["tls://127.0.0.1:%d?max_handshakes=2&handshake_timeout=60s"
                  "&handshake_idle_timeout=30s" % port], tls_args(pki), log_level="debug")
    hold = [tcp(port), tcp(port)]  # both slots, idle
    deadline = time.monotonic() + DEADLINE
    while b.read_log().count("TLS handshake slot taken") < 2:
        assert time.monotonic() < deadline, b.read_log()
        time.sleep(0.05)
    result = {}
    th = threading.Thread(target=lambda: result.update(err=tls_client(pki, port)))
    th.start()
    b.wait_log("waiting for a TLS handshake slot", timeout=DEADLINE)
    assert th.is_alive()
    hold[0].close()  # a slot frees: the waiting one gets it
    th.join(DEADLINE + 5)
    assert not th.is_alive()
    assert result["err"] is None, result["err"]
    log = b.read_log()
    assert "TLS handshake refused" not in log
    hold[1].close()


def test_waiting_for_a_slot_does_not_eat_the_handshake_time(net_ward, pki):
    """A connection that waited for a slot longer than handshake_timeout
    still gets the whole handshake_timeout once its slot comes (a reconnect
    storm waits, none refused); the wait itself is bounded by
    handshake_queue_timeout."""
    port = free_port()
    b = net_ward(["tls://127.0.0.1:%d?max_handshakes=1&handshake_timeout=2s"
                  "&handshake_idle_timeout=2s&handshake_queue_timeout=20s" % port],
                 tls_args(pki), log_level="debug")
    hold = tcp(port)  # the one slot, idle until its 2 s are up
    b.wait_log("TLS handshake slot taken", timeout=DEADLINE)
    t0 = time.monotonic()
    assert tls_client(pki, port) is None  # waited ~2 s, then its own 2 s
    waited = time.monotonic() - t0
    assert waited >= 1.5, waited
    log = b.read_log()
    assert "waiting for a TLS handshake slot" in log
    assert "TLS handshake refused" not in log
    hold.close()


def test_handshake_queue_timeout(net_ward, pki):
    port = free_port()
    b = net_ward(["tls://127.0.0.1:%d?max_handshakes=1&handshake_timeout=30s"
                  "&handshake_idle_timeout=30s&handshake_queue_timeout=500ms" % port],
                 tls_args(pki), log_level="debug")
    hold = tcp(port)
    b.wait_log("TLS handshake slot taken", timeout=DEADLINE)
    waiter = tcp(port)
    assert wait_closed([waiter], 1)
    b.wait_log("handshake timeout (waiting for a slot: handshake_queue_timeout)")
    hold.close()
    waiter.close()


def test_one_address_cannot_take_every_slot(net_ward, pki):
    port = free_port()
    b = net_ward(["tls://127.0.0.1:%d?max_handshakes=4&handshake_queue=4&handshake_timeout=60s"
                  "&handshake_idle_timeout=20s" % port], tls_args(pki))
    flood = [tcp(port, "127.0.0.2") for _ in range(12)]
    # 4 run, 4 wait, 4 are refused (closed).
    refused = wait_closed(flood, 4)
    b.wait_log("[handshakes/refused: 4 in total", timeout=DEADLINE)
    # A real client from another address takes the place of one of the
    # flood's waiting connections, then, once the flood's running
    # handshakes have sent nothing for half the idle timeout (10 s), the
    # slot of one of them: it is served long before any of the flood's
    # handshakes time out (20 s idle, 60 s total).
    t0 = time.monotonic()
    assert tls_client(pki, port, "127.0.0.1") is None
    assert time.monotonic() - t0 < 18
    log = b.wait_log("TLS handshake slot given to a source with fewer")
    assert "127.0.0.2:" in log.split("given to a source with fewer")[0].splitlines()[-1]
    # Two of the flood lost their place and slot to the real client.
    evicted = wait_closed([s for s in flood if s not in refused], 2)
    assert len(evicted) == 2
    for s in flood:
        s.close()


# -------------------------------------------------------- PROXY protocol

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src, sport, dst, dport):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def test_proxy_protocol_v1_v2_trusted_and_untrusted(net_ward):
    port = free_port()
    b = net_ward(["tcp://127.0.0.1:%d?proxy_protocol=true&trusted_proxies=127.0.0.1/32" % port])
    # v1 from the trusted proxy: the log names the real client.
    s = tcp(port)
    s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40001 %d\r\n" % port)
    assert mqtt_connect(s, "via-v1")
    b.wait_log("client 'via-v1' (203.0.113.7:40001) connected")
    # v2, header and CONNECT in one segment.
    s2 = tcp(port)
    s2.sendall(proxy_v2("198.51.100.9", 40002, "127.0.0.1", port) + raw.connect("via-v2"))
    assert read_exactly(s2, 4)[:1] == b"\x20"
    b.wait_log("client 'via-v2' (198.51.100.9:40002) connected")
    # From an address that is not a trusted proxy, a header is refused ...
    u = tcp(port, "127.0.0.2")
    u.sendall(b"PROXY TCP4 192.0.2.1 127.0.0.1 40003 %d\r\n" % port)
    assert closed_by_peer(u)
    log = b.wait_log("PROXY header refused: not from a trusted proxy")
    assert "192.0.2.1" not in log
    assert total(log, "proxy/refused") == 1
    # ... and a client there without one is an ordinary direct client.
    d = tcp(port, "127.0.0.2")
    assert mqtt_connect(d, "direct")
    b.wait_log("client 'direct' (127.0.0.2:")
    # The trusted proxy must send a header: garbage is refused.
    g = tcp(port)
    g.sendall(b"PROXY TCP9 nonsense\r\n")
    assert closed_by_peer(g)
    # (Its line may be held back by the one-a-second limit; the count is not.)
    b.wait_log("[proxy/refused: 2 in total", timeout=DEADLINE)
    for x in (s, s2, u, d, g):
        x.close()


def test_proxy_protocol_before_tls(net_ward, pki):
    port = free_port()
    b = net_ward(["tls://127.0.0.1:%d?proxy_protocol=true&trusted_proxies=127.0.0.0/8" % port],
                 tls_args(pki))
    err = tls_client(pki, port, prefix=proxy_v2("198.51.100.20", 41000, "127.0.0.1", port))
    assert err is None, err
    b.wait_log("(198.51.100.20:41000) connected")


# ---------------------------------------------- item 14: graceful close

def read_packet(s):
    """One whole MQTT packet from s: (type, body)."""
    data = read_exactly(s, 2)
    while data[-1] & 0x80 and len(data) < 5:
        data += read_exactly(s, 1)
    n, _ = raw.read_vbi(data, 1)
    return data[0] >> 4, read_exactly(s, n)


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_disconnect_0x93_is_read_not_reset(net_ward, pki, scheme):
    """A v5 client pipelines QoS 2 publishes 200 past the Receive Maximum
    ward announced, in one write, then reads: it must read the DISCONNECT
    0x93. Closing with its publishes still unread would reset the
    connection, and a reset can destroy the DISCONNECT before the client
    reads it."""
    port = free_port()
    b = net_ward(["%s://127.0.0.1:%d" % (scheme, port)],
                 tls_args(pki) if scheme == "tls" else (), log_level="notice")
    ctx = ssl.create_default_context(cafile=pki["ca"])
    for round_ in range(20):
        s = tcp(port)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "tls":
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(raw.connect("burst-%d" % round_, v5=True))
        ptype, body = read_packet(s)
        assert ptype == raw.CONNACK and body[1] == 0, body
        props = dict(raw.decode_props(body, 2)[0])
        receive_max = props.get(0x21, 65535)
        burst = b"".join(raw.publish("t/x", b"p" * 1000, qos=2, pid=i, v5=True)
                         for i in range(1, receive_max + 201))
        got = b""
        try:
            s.sendall(burst)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pytest.fail("round %d: connection reset before the DISCONNECT was read "
                        "(%d bytes read)" % (round_, len(got)))
        except socket.timeout:
            pytest.fail("round %d: no end of file within %s s" % (round_, DEADLINE))
        # The last packet is DISCONNECT (0xE0) with reason 0x93.
        i, last = 0, None
        while i < len(got):
            ptype = got[i] >> 4
            n, j = raw.read_vbi(got, i + 1)
            last = (ptype, got[j:j + n])
            i = j + n
        assert last is not None and last[0] == raw.DISCONNECT, "round %d: %r" % (round_, last)
        assert last[1][:1] == b"\x93"
        s.close()


# ------------------------------------------------------ configuration keys

def test_config_keys_checked(tmp_path):
    """The listener keys load, and what cannot work is refused by name."""
    good = tmp_path / "good.conf"
    good.write_text(
        'listeners.tcp.lb {\n  bind = "127.0.0.1:1883"\n  max_connections = 10\n'
        '  proxy_protocol = true\n  trusted_proxies = ["10.0.0.0/8", "::1"]\n}\n'
        'listeners.ssl.s {\n  bind = "127.0.0.1:8883"\n  keyfile = "k"\n  certfile = "c"\n'
        '  max_handshakes = 10\n  handshake_queue = 20\n  handshake_idle_timeout = 2s\n}\n')
    r = subprocess.run([WARD, "check", "-c", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "handshake_idle_timeout = 2000ms" in r.stdout
    assert 'trusted_proxies = "10.0.0.0/8,::1"' in r.stdout
    bad = tmp_path / "bad.conf"
    bad.write_text(
        'listeners.tcp.a {\n  bind = "127.0.0.1:1"\n  proxy_protocol = true\n}\n'
        'listeners.tcp.b {\n  bind = "127.0.0.1:2"\n  proxy_protocol = true\n'
        '  trusted_proxies = ["10.0.0.0/8", "10.0.0.0/33"]\n}\n')
    r = subprocess.run([WARD, "check", "-c", str(bad)], capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "proxy_protocol needs trusted_proxies" in out
    assert "'10.0.0.0/33' is not an address or CIDR range" in out
