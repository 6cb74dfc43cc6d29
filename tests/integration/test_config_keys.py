"""Every key in docs/configuration.md, observed (issue 10): each test writes a
configuration file, starts `ward serve -c FILE` with nothing else on the
command line, makes sure the broker is listening, and then looks for the
key's effect on the wire (exact packets through rawmqtt_keys), in a TLS
handshake, or in the log, for the key's value and for another value, so a key
that is read but not acted on fails here.

Covered elsewhere, not here: bridges (test_bridge.py); listener
max_connections, handshake_timeout and max_handshakes (their own tests);
crl_strict (test_tls.py::test_config_crl_strict)."""
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

import rawmqtt_keys as rm
import tls_pki
from conftest import WARD, Ward, free_port, stop_all, wait_port


# ---- brokers started from a configuration file only ----------------------

class ConfWard(Ward):
    """`ward serve -c FILE`: no other flag, so the file decides everything
    (command-line flags would override it)."""

    def __init__(self, tmp_path, text, port, host="127.0.0.1", startup_log=True):
        super().__init__(tmp_path, port=port, listen=False)
        self.host = host
        self.startup_log = startup_log
        self.conf = os.path.join(str(tmp_path), "ward-%d.conf" % port)
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([WARD, "serve", "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait:
            assert wait_port(self.port, self.host, proc=self.proc, timeout=15), \
                "ward is not listening:\n" + self.read_log()
            if self.startup_log:  # (a NOTICE: not there at log.level error or warn)
                # The start-up lines (expiry warnings, worker count) are all out.
                self.wait_log("serving with")
        return self

    def client(self, v5=True, port=None):
        return rm.Client(port or self.port, v5)


@pytest.fixture
def serve(tmp_path):
    """serve(body, listener=None): a broker whose file is `body` plus, unless
    `listener` is given, a TCP listener on a free port (body may use @PORT@
    for it). Two workers unless the body says otherwise."""
    started = []

    def start(body="", listener=None, port=None, **kw):
        port = port or free_port()
        if listener is None:
            listener = 'listeners.tcp { bind = "127.0.0.1:@PORT@" }\n'
        text = listener + body
        if "system." not in text:
            text += "system.workers = 2\n"
        b = ConfWard(tmp_path, text.replace("@PORT@", str(port)), port, **kw)
        started.append(b)
        return b.start()

    yield start
    stop_all(started)


def connected(b, v5=True, **kw):
    """A client connected to b with reason code 0; returns (client, props)."""
    c = b.client(v5)
    got = c.connect(**kw)
    assert got is not None and got[0] == 0, got
    return c, got[1]


def gone(b, c):
    """Waits until ward has handled c's disconnection."""
    b.wait_log("(127.0.0.1:%d) disconnected" % c.sock.getsockname()[1])


def publish_ack(c, topic, payload=b"x", qos=1, pid=1, **kw):
    c.publish(topic, payload, qos=qos, pid=pid, **kw)
    return c.ack_code(rm.PUBACK if qos == 1 else rm.PUBREC)


# ---- mqtt.* ---------------------------------------------------------------

@pytest.mark.parametrize("value, limit", [("1KB", 1024), (None, 1 << 20)])
def test_max_packet_size(serve, value, limit):
    b = serve("mqtt.max_packet_size = %s\n" % value if value else "")
    c, props = connected(b)
    assert props[rm.MAX_PACKET_SIZE] == limit  # MQTT 5 Maximum Packet Size
    # A QoS 1 PUBLISH of exactly `limit` bytes: 1 + 3 (remaining length)
    # + 3 (topic) + 2 (packet id) + 1 (no properties) + payload, for 1MB;
    # 1 + 2 + ... for 1KB.
    head = 1 + (2 if limit < 16384 else 3)
    payload = b"p" * (limit - head - 3 - 2 - 1)
    assert publish_ack(c, "t", payload) == 0
    if value is None:
        return  # one byte more is the 1KB case's job (a 1MB write would meet a reset)
    c.publish("t", payload + b"!", qos=1, pid=2)
    assert c.closed_with() == 0x95  # Packet too large
    old = b.client(v5=False)
    assert old.connect()[0] == 0
    old.publish("t", payload + b"!", qos=1, pid=2)  # 3.1.1: no properties byte
    assert old.ack_code(rm.PUBACK) == 0
    old.publish("t", payload + b"!!", qos=1, pid=3)
    assert old.closed_with() is None


@pytest.mark.parametrize("value, delivered", [(3, 3), (None, 6)])
def test_max_mqueue_len(serve, value, delivered):
    """An offline session queues at most max_mqueue_len QoS 1 messages; the
    rest are dropped and counted."""
    b = serve("mqtt.sys_interval = 1s\n" + ("mqtt.max_mqueue_len = %d\n" % value if value else ""))
    sub, _ = connected(b, v5=False, cid="queued", clean=False)
    assert sub.subscribe("q/#", qos=1) == b"\x01"
    sub.send(rm.DISCONNECT, 0, b"")
    gone(b, sub)
    pub, _ = connected(b, cid="pub")
    for i in range(6):
        assert publish_ack(pub, "q/%d" % i, pid=i + 1) == 0
    sub = b.client(v5=False)
    rc, _ = sub.connect(cid="queued", clean=False)
    assert rc == 0
    got = [sub.next_publish()[0] for _ in range(delivered)]
    assert got == ["q/%d" % i for i in range(delivered)]
    assert [p for p in sub.ping() if p[0] == rm.PUBLISH] == []
    # The overflow is counted: $SYS (every second here) shows it.
    watch, _ = connected(b, cid="watch")
    assert watch.subscribe("$SYS/broker/publish/messages/dropped") == b"\x00"
    deadline = time.monotonic() + 15
    while watch.next_publish(timeout=15)[1] != str(6 - delivered).encode():
        assert time.monotonic() < deadline, "dropped count never became %d" % (6 - delivered)


@pytest.mark.parametrize("value, granted", [(2, 2), (None, 1024)])
def test_receive_maximum(serve, value, granted):
    """mqtt.receive_maximum: the Receive Maximum ward grants publishers."""
    b = serve("mqtt.receive_maximum = %d\n" % value if value else "")
    _, props = connected(b, cid="v5")
    assert props[rm.RECEIVE_MAX] == granted


@pytest.mark.parametrize("value, window", [(2, 2), (None, 1024)])
def test_max_inflight_window(serve, value, window):
    """mqtt.max_inflight_window: the window towards subscribers."""
    b = serve("mqtt.max_inflight_window = %d\n" % value if value else "")
    # Towards a 3.1.1 client the window is ours: unacknowledged QoS 1
    # messages stop at `window` until one is acknowledged.
    sub, _ = connected(b, v5=False, cid="slow")
    assert sub.subscribe("w/#", qos=1) == b"\x01"
    pub, _ = connected(b, cid="pub")
    n = min(window, 4) + 1
    for i in range(n):
        assert publish_ack(pub, "w/%d" % i, pid=i + 1) == 0
    first = [sub.next_publish(ack=False) for _ in range(min(window, n))]
    assert [p[0] for p in first] == ["w/%d" % i for i in range(min(window, n))]
    held = [p for p in sub.ping() if p[0] == rm.PUBLISH]
    assert held == [], "more than max_inflight_window unacknowledged"
    if window < n:
        sub.send(rm.PUBACK, 0, first[0][4].to_bytes(2, "big"))
        assert sub.next_publish(ack=False)[0] == "w/%d" % window


def test_keepalive_multiplier(serve):
    """A client silent for keep alive x multiplier is disconnected: never
    sooner (measured from before its CONNECT), and it does happen."""
    std = serve("")
    lax = serve("mqtt.keepalive_multiplier = 4\n")
    clients = []
    for b in (std, lax):
        c = b.client()
        t0 = time.monotonic()
        assert c.connect(keepalive=1)[0] == 0
        clients.append((c, t0))
    for (c, t0), least in zip(clients, (1.5, 4.0)):
        assert c.closed_with(timeout=20) == 0x8D  # Keep alive timeout
        took = time.monotonic() - t0
        assert took >= least, "closed after %.2fs, before %.1fs" % (took, least)


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v311"])
def test_max_topic_levels(serve, v5):
    b = serve("mqtt.max_topic_levels = 3\n")
    c, _ = connected(b, v5=v5)
    assert c.subscribe("s/b/c", qos=1) == b"\x01"
    assert c.subscribe("a/b/c/d", qos=1) == (b"\x8f" if v5 else b"\x80")  # filter invalid
    assert c.subscribe("+/+/+/#", qos=1) == (b"\x8f" if v5 else b"\x80")
    assert publish_ack(c, "a/b/c") == 0
    c.publish("a/b/c/d", qos=1, pid=2)
    assert c.closed_with() == (0x90 if v5 else None)  # Topic Name invalid
    if v5:  # a will topic is a topic name too
        w = b.client()
        assert w.connect(will=("a/b/c/d", b"x", 0, False))[0] == 0x90
    # The default (128) takes these.
    d = serve("")
    c, _ = connected(d, v5=v5)
    assert c.subscribe("a/b/c/d/" + "/".join("x" * 120), qos=1) == b"\x01"
    assert publish_ack(c, "a/b/c/d") == 0


def test_max_keepalive(serve):
    b = serve("mqtt.max_keepalive = 30\n")
    _, props = connected(b, keepalive=60)
    assert props[rm.SERVER_KEEP_ALIVE] == 30  # MQTT-3.2.2-21
    _, props = connected(b, keepalive=0)  # "no keep alive" is above 30 too
    assert props[rm.SERVER_KEEP_ALIVE] == 30
    _, props = connected(b, keepalive=20)
    assert rm.SERVER_KEEP_ALIVE not in props
    _, props = connected(serve(""), keepalive=60)
    assert rm.SERVER_KEEP_ALIVE not in props
    # And it is enforced: granted 1 s, a client that asked for 60 and stays
    # silent is disconnected.
    short = serve("mqtt.max_keepalive = 1\n")
    c, props = connected(short, keepalive=60)
    assert props[rm.SERVER_KEEP_ALIVE] == 1
    assert c.closed_with(timeout=20) == 0x8D


def test_topic_alias_max(serve):
    b = serve("mqtt.topic_alias_max = 2\n")
    sub, _ = connected(b, cid="sub")
    assert sub.subscribe("alias/#") == b"\x00"
    c, props = connected(b, cid="pub")
    assert props[rm.TOPIC_ALIAS_MAX] == 2
    assert publish_ack(c, "alias/two", b"1", props={rm.TOPIC_ALIAS: 2}) == 0
    assert publish_ack(c, "", b"2", pid=2, props={rm.TOPIC_ALIAS: 2}) == 0
    assert [sub.next_publish()[:2] for _ in range(2)] == [("alias/two", b"1"),
                                                          ("alias/two", b"2")]
    c.publish("alias/three", b"3", qos=1, pid=3, props={rm.TOPIC_ALIAS: 3})
    assert c.closed_with() == 0x94  # Topic Alias invalid
    _, props = connected(serve(""))
    assert props[rm.TOPIC_ALIAS_MAX] == 10


@pytest.mark.parametrize("max_qos", [0, 1, 2])
def test_max_qos(serve, max_qos):
    b = serve("mqtt.max_qos = %d\n" % max_qos)
    c, props = connected(b)
    # MQTT 5 3.2.2.3.4: Maximum QoS is sent when below 2 (absent means 2).
    assert props.get(rm.MAX_QOS, 2) == max_qos
    assert (rm.MAX_QOS in props) == (max_qos < 2)
    old, _ = connected(b, v5=False)
    for cl in (c, old):  # the granted QoS is at most max_qos, both versions
        assert cl.subscribe("g/2", qos=2) == bytes([max_qos])
        assert cl.subscribe("g/1", qos=1) == bytes([min(1, max_qos)])
    if max_qos:
        assert publish_ack(c, "g/x", qos=max_qos) == 0
    else:
        c.publish("g/x", qos=0)
        c.ping()
    if max_qos == 2:
        return
    # A will above max_qos: CONNACK 0x9B (MQTT-3.2.2-12).
    w = b.client()
    assert w.connect(will=("w", b"x", max_qos + 1, False))[0] == 0x9B
    # A PUBLISH above it: DISCONNECT 0x9B (MQTT 5 3.2.2.3.4, 4.13).
    c.publish("g/x", qos=max_qos + 1, pid=5)
    assert c.closed_with() == 0x9B
    old.publish("g/x", qos=max_qos + 1, pid=5)
    assert old.closed_with() is None  # 3.1.1 has no reason codes: a close


@pytest.mark.parametrize("available", [False, True])
def test_retain_available(serve, available):
    b = serve("mqtt.retain_available = %s\n" % ("true" if available else "false"))
    c, props = connected(b, cid="pub")
    assert props.get(rm.RETAIN_AVAILABLE, 1) == int(available)
    assert (rm.RETAIN_AVAILABLE in props) == (not available)
    assert publish_ack(c, "r/plain") == 0  # non-retained messages are fine
    if available:
        assert publish_ack(c, "r/kept", b"v", pid=2, retain=True) == 0
        s, _ = connected(b, cid="late")
        assert s.subscribe("r/#") == b"\x00"
        assert s.next_publish()[:4] == ("r/kept", b"v", 0, True)
        return
    w = b.client()
    assert w.connect(will=("r/will", b"x", 0, True))[0] == 0x9A  # MQTT-3.2.2-13
    c.publish("r/kept", b"v", qos=1, pid=2, retain=True)
    assert c.closed_with() == 0x9A  # Retain not supported (MQTT-3.2.2-14, 4.13)
    old, _ = connected(b, v5=False, cid="old")
    old.publish("r/kept", b"v", qos=1, pid=2, retain=True)
    assert old.closed_with() is None
    # Nothing was stored.
    s, _ = connected(b, cid="late")
    assert s.subscribe("r/#") == b"\x00"
    assert [p for p in s.ping() if p[0] == rm.PUBLISH] == []


def test_max_connections_across_listeners(serve):
    p2 = free_port()
    b = serve("mqtt.max_connections = 2\n",
              listener='listeners.tcp.first { bind = "127.0.0.1:@PORT@" }\n'
                       'listeners.tcp.second { bind = "127.0.0.1:%d" }\n' % p2)
    a, _ = connected(b, cid="one")
    c = rm.Client(p2)
    assert c.connect(cid="two")[0] == 0
    for port in (b.port, p2):  # a third on either listener is closed unanswered
        x = rm.Client(port)
        assert x.connect(cid="three") is None
    b.wait_log("max_connections (2) reached")


def test_sys_interval(serve):
    fast = serve("mqtt.sys_interval = 1s\n")
    off = serve("mqtt.sys_interval = 0\n")
    quiet, _ = connected(off, cid="quiet")
    assert quiet.subscribe("$SYS/#") == b"\x00"
    c, _ = connected(fast, cid="sys")
    assert c.subscribe("$SYS/broker/uptime") == b"\x00"
    # The value retained at subscribe, then two runs, each within 8 s: with
    # the default (10 s) the third cannot come in time.
    for _ in range(3):
        assert c.next_publish(timeout=8)[0] == "$SYS/broker/uptime"
    # With 0 nothing was ever published: not even the values a broker
    # publishes (retained) at start-up, which a subscriber gets at once.
    assert [p for p in quiet.ping() if p[0] == rm.PUBLISH] == []


def threads(b):
    return len(os.listdir("/proc/%d/task" % b.proc.pid))


@pytest.mark.parametrize("key", ["system.workers", "system.num_taskq_thread"])
def test_worker_count(serve, key):
    one = serve("%s = 1\n" % key)
    three = serve("%s = 3\n" % key)
    one.wait_log("serving with 1 worker\n")
    three.wait_log("serving with 3 workers")
    assert threads(three) - threads(one) == 2
    connected(three)  # and it serves


def test_workers_zero_is_one_per_cpu(serve):
    b = serve("system.workers = 0\n")
    n = os.sysconf("SC_NPROCESSORS_ONLN")
    b.wait_log("serving with %d worker%s\n" % (n, "" if n == 1 else "s"))


def test_nanomq_compatibility_keys_load(serve, tmp_path):
    """Keys kept for NanoMQ files: accepted, shown by `ward check`, and
    log.* act as in NanoMQ (to = [file, console]: both; docs/logging.md)."""
    logdir = tmp_path / "nanomq-logs"
    body = ("mqtt {\n  retry_interval = 3s\n  property_size = 64\n}\n"
            "log {\n  to = [file, console]\n  dir = \"%s\"\n  file = \"nanomq.log\"\n"
            "  level = info\n}\n" % logdir)
    (tmp_path / "nanomq.conf").write_text(body)
    r = subprocess.run([WARD, "check", "-c", str(tmp_path / "nanomq.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    for line in ("retry_interval = 3000ms", "property_size = 64", 'to = "file,console"',
                 'file = "nanomq.log"'):
        assert line in r.stdout, r.stdout
    logdir.mkdir()
    b = serve(body)
    connected(b)
    b.wait_log("connected: MQTT 5")
    deadline = time.monotonic() + 10  # the logger thread writes the file too
    while b"connected: MQTT 5" not in (logdir / "nanomq.log").read_bytes():
        assert time.monotonic() < deadline, (logdir / "nanomq.log").read_bytes()
        time.sleep(0.05)
    (tmp_path / "bad.conf").write_text("mqtt.property_size = lots\n")
    r = subprocess.run([WARD, "check", "-c", str(tmp_path / "bad.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1  # and they are still checked


LEVELS = ["ERROR", "WARN", "NOTICE", "INFO", "DEBUG"]


@pytest.mark.parametrize("level", ["error", "warn", "notice", "info", "debug"])
def test_log_level(serve, pki, tmp_path, level):
    """One event of each severity, then the whole log after a clean stop:
    exactly the levels at or above log.level are there."""
    tport = free_port()
    (tmp_path / "acl.conf").write_text('rules = [ {"permit": "deny", "topics": ["no/#"]} ]\n')
    b = serve("log.level = %s\nauth.acl = {include \"%s\"}\n"
              "listeners.ssl { bind = \"127.0.0.1:%d\"\n  keyfile = \"%s\"\n  certfile = \"%s\"\n"
              "  cacertfile = \"%s\"\n  crlfile = \"%s\"\n  verify_peer = true\n}\n"
              % (level, tmp_path / "acl.conf", tport, pki["server_key"], pki["server_crt"],
                 pki["ca"], pki["crl_stale"]), startup_log=False)
    # ERROR at start-up: the CRL is past its next update. WARN: accepting a
    # client anyway. NOTICE: a connection. INFO: an ACL refusal. DEBUG: an
    # acknowledgement for a packet never sent.
    assert wait_port(tport, proc=b.proc, timeout=15), b.read_log()
    assert tls_client(tport, pki, "client") == "ok"
    c, _ = connected(b)
    assert publish_ack(c, "no/x") == 0x87
    c.send(rm.PUBACK, 0, b"\x03\x09")
    c.ping()
    b.stop()
    text = b.read_log()
    want = LEVELS[:LEVELS.index(level.upper()) + 1]
    for name in LEVELS:
        assert ((" %s " % name) in text) == (name in want), "%s at log.level %s:\n%s" % (
            name, level, text)


# ---- auth.* -----------------------------------------------------------------

@pytest.mark.parametrize("allow", [True, False])
def test_allow_anonymous(serve, allow):
    b = serve("auth.allow_anonymous = %s\n" % ("true" if allow else "false"))
    assert b.client().connect(cid="anon")[0] == (0 if allow else 0x87)
    assert b.client(v5=False).connect(cid="anon")[0] == (0 if allow else 5)


def passwd(path, user, password):
    r = subprocess.run([WARD, "passwd", str(path), user], input=password + "\n", text=True,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_password_file(serve, tmp_path):
    passwd(tmp_path / "pw.conf", "ann", "ann-pw")
    b = serve('auth {\n  allow_anonymous = false\n  password = {include "%s"}\n}\n'
              % (tmp_path / "pw.conf"))
    assert b.client().connect(cid="a", user="ann", pw="ann-pw")[0] == 0
    assert b.client().connect(cid="a", user="ann", pw="nope")[0] == 0x86


ACL_ONE = 'rules = [ {"permit": "allow", "action": "pubsub", "topics": ["open/#"]} ]\n'


@pytest.mark.parametrize("no_match", ["allow", "deny"])
def test_no_match(serve, tmp_path, no_match):
    (tmp_path / "acl.conf").write_text(ACL_ONE)
    b = serve('auth {\n  no_match = %s\n  acl = {include "%s"}\n}\n'
              % (no_match, tmp_path / "acl.conf"))
    c, _ = connected(b)
    assert publish_ack(c, "open/x") == 0  # a rule matches
    assert c.subscribe("open/#") == b"\x00"
    want = 0 if no_match == "allow" else 0x87
    assert publish_ack(c, "other/x", pid=2) == want
    assert c.subscribe("other/#", pid=3) == bytes([want])


ACL_DENY = ('rules = [ {"permit": "deny", "action": "pubsub", "topics": ["secret/#"]}\n'
            '  {"permit": "allow"} ]\n')


def deny_broker(serve, tmp_path, action):
    (tmp_path / "acl.conf").write_text(ACL_DENY)
    return serve('auth {\n  deny_action = %s\n  acl = {include "%s"}\n}\n'
                 % (action, tmp_path / "acl.conf"))


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v311"])
@pytest.mark.parametrize("qos", [1, 2])
def test_deny_action_publish(serve, tmp_path, v5, qos):
    # ignore: the flow completes (v5 with 0x87, 3.1.1 as if delivered,
    # MQTT-3.3.5-2) and the client stays.
    b = deny_broker(serve, tmp_path, "ignore")
    c, _ = connected(b, v5=v5)
    assert publish_ack(c, "secret/x", qos=qos) == (0x87 if v5 else 0)
    c.ping()
    # disconnect: v5 gets DISCONNECT 0x87 (not authorized), 3.1.1 a close;
    # neither gets an acknowledgement first.
    d = deny_broker(serve, tmp_path, "disconnect")
    c, _ = connected(d, v5=v5)
    assert publish_ack(c, "open/x", qos=qos) == 0
    c.publish("secret/x", qos=qos, pid=2)
    assert c.closed_with() == (0x87 if v5 else None)
    d.wait_log("PUBLISH not authorized")


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v311"])
def test_deny_action_subscribe_ignore(serve, tmp_path, v5):
    b = deny_broker(serve, tmp_path, "ignore")
    c, _ = connected(b, v5=v5)
    assert c.subscribe("secret/#") == (b"\x87" if v5 else b"\x80")
    c.ping()


@pytest.mark.xfail(strict=True, reason="ward bug: auth.deny_action = disconnect is applied to "
                   "PUBLISH only; a denied SUBSCRIBE gets a SUBACK failure code and the "
                   "client stays (src/broker/broker.c subscribe_one)")
@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v311"])
def test_deny_action_subscribe_disconnect(serve, tmp_path, v5):
    b = deny_broker(serve, tmp_path, "disconnect")
    c, _ = connected(b, v5=v5)
    c.send(8, 2, b"\x00\x01" + (b"\x00" if v5 else b"") + rm.s("secret/#") + b"\x00")
    assert c.closed_with() == (0x87 if v5 else None)


# ---- listeners ------------------------------------------------------------

def refused(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_listener_enable_and_bind(serve):
    on, off = free_port(), free_port()
    b = serve("", listener='listeners.tcp.on { enable = true\n  bind = "127.0.0.1:%d" }\n'
                           'listeners.tcp.off { enable = false\n  bind = "127.0.0.1:%d" }\n'
                           % (on, off), port=on)
    connected(b)
    assert refused(off), "a listener with enable = false is listening"
    assert refused(on, "127.0.0.2"), "bind 127.0.0.1 also answers on 127.0.0.2"
    b2 = serve("", listener='listeners.tcp.lo2 { bind = "127.0.0.2:@PORT@" }\n',
               port=free_port(), host="127.0.0.2")
    b2.wait_log("listening on tcp://127.0.0.2:%d" % b2.port)
    assert rm.Client(b2.port, host="127.0.0.2").connect()[0] == 0


def test_ws_listener(tmp_path):
    import paho.mqtt.client as paho
    port = free_port()
    b = ConfWard(tmp_path, 'listeners.ws { bind = "127.0.0.1:%d" }\nsystem.workers = 1\n' % port,
                 port)
    try:
        b.start()
        got = []
        c = paho.Client("ws-client", transport="websockets")
        c.on_connect = lambda cl, u, f, rc: got.append(rc)
        c.connect("127.0.0.1", port)
        c.loop_start()
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline, "no CONNACK over WebSocket"
            time.sleep(0.05)
        c.loop_stop()
        assert got == [0]
    finally:
        b.stop(check=False)


def test_listener_allow_anonymous_overrides(serve):
    guest = free_port()
    b = serve("auth.allow_anonymous = false\n",
              listener='listeners.tcp.main { bind = "127.0.0.1:@PORT@" }\n'
                       'listeners.tcp.guest { bind = "127.0.0.1:%d"\n  allow_anonymous = true }\n'
                       % guest)
    assert b.client().connect(cid="a")[0] == 0x87
    assert rm.Client(guest).connect(cid="a")[0] == 0
    assert rm.Client(guest, v5=False).connect(cid="b")[0] == 0


# ---- TLS listeners --------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


def ssl_listener(pki, port, **keys):
    """listeners.ssl with the test server certificate and `keys` on top."""
    conf = {"bind": "127.0.0.1:%d" % port, "keyfile": pki["server_key"],
            "certfile": pki["server_crt"]}
    conf.update(keys)
    lines = []
    for k, v in conf.items():
        if v is None:
            continue
        lines.append("  %s = %s" % (k, ("true" if v else "false") if isinstance(v, bool)
                                    else v if isinstance(v, int) else '"%s"' % v))
    return "listeners.ssl.t {\n%s\n}\n" % "\n".join(lines)


def tls_serve(serve, pki, body="", **keys):
    port = free_port()
    return serve(body, listener=ssl_listener(pki, port, **keys), port=port)


def tls_client(port, pki, cert=None, password=None, tls12=False, ciphers=None, user=None,
               pw=None, v5=True, cid="tls"):
    """An MQTT CONNECT over TLS (Python's ssl, as paho uses it): "ok" when
    CONNACK 0 came back, else what went wrong."""
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(pki[cert + "_crt"], pki[cert + "_key"], password=password)
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        got = rm.Client(port, v5, sock=s).connect(cid=cid, user=user, pw=pw)
        s.close()
    except (ssl.SSLError, OSError) as e:
        assert not isinstance(e, ConnectionRefusedError), "nothing listening on %d" % port
        return str(e)
    return "ok" if got and got[0] == 0 else "CONNACK %r" % (got,)


def refused_for(b, cause, attempt):
    """attempt() is refused and ward logs `cause` for it (a new line)."""
    needle = "TLS handshake failed: " + cause
    before = b.read_log().count(needle)
    got = attempt()
    assert got != "ok", "accepted; wanted a refusal for " + cause
    deadline = time.monotonic() + 10
    while b.read_log().count(needle) <= before:
        assert time.monotonic() < deadline, "%r not logged:\n%s" % (needle, b.read_log())
        time.sleep(0.05)


def s_client(port, *args):
    return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] +
                          list(args), input="", capture_output=True, text=True, timeout=30).stdout


def test_keyfile_and_certfile(serve, pki):
    ec = tls_serve(serve, pki)
    rsa = tls_serve(serve, pki, keyfile=pki["server_rsa_key"], certfile=pki["server_rsa_crt"])
    assert "Server public key is 256 bit" in s_client(ec.port, "-CAfile", pki["ca"])
    assert "Server public key is 2048 bit" in s_client(rsa.port, "-CAfile", pki["ca"])
    assert tls_client(rsa.port, pki) == "ok"


def test_key_password(serve, pki, tmp_path):
    b = tls_serve(serve, pki, keyfile=pki["server_enc_key"], certfile=pki["server_enc_crt"],
                  key_password="server-pw")
    assert tls_client(b.port, pki) == "ok"
    conf = tmp_path / "bad.conf"
    conf.write_text(ssl_listener(pki, free_port(), keyfile=pki["server_enc_key"],
                                 certfile=pki["server_enc_crt"], key_password="wrong"))
    r = subprocess.run([WARD, "serve", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and "wrong key_password" in r.stderr, r.stderr


def mtls(**keys):
    return dict(dict(verify_peer=True, fail_if_no_peer_cert=True), **keys)


def test_cacertfile(serve, pki):
    b = tls_serve(serve, pki, **mtls(cacertfile=pki["ca"]))
    assert tls_client(b.port, pki, "client") == "ok"
    refused_for(b, "unknown CA", lambda: tls_client(b.port, pki, "client_rogue"))
    other = tls_serve(serve, pki, **mtls(cacertfile=pki["rogue_ca"]))
    assert tls_client(other.port, pki, "client_rogue") == "ok"
    refused_for(other, "unknown CA", lambda: tls_client(other.port, pki, "client"))


def hashed_dir(path, *certs):
    os.makedirs(path)
    for c in certs:
        subprocess.run(["cp", c, str(path)], check=True)
    r = subprocess.run(["openssl", "rehash", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return str(path)


def test_capath(serve, pki, tmp_path):
    good = hashed_dir(tmp_path / "good", pki["ca"])
    bad = hashed_dir(tmp_path / "bad", pki["rogue_ca"])
    b = tls_serve(serve, pki, **mtls(capath=good))
    assert tls_client(b.port, pki, "client") == "ok"
    refused_for(b, "unknown CA", lambda: tls_client(b.port, pki, "client_rogue"))
    other = tls_serve(serve, pki, **mtls(capath=bad))
    refused_for(other, "unknown CA", lambda: tls_client(other.port, pki, "client"))


def test_crlfile(serve, pki):
    b = tls_serve(serve, pki, **mtls(cacertfile=pki["ca"], crlfile=pki["crl"]))
    assert tls_client(b.port, pki, "client") == "ok"
    refused_for(b, "certificate revoked", lambda: tls_client(b.port, pki, "client_revoked"))
    plain = tls_serve(serve, pki, **mtls(cacertfile=pki["ca"]))
    assert tls_client(plain.port, pki, "client_revoked") == "ok"


def test_verify_peer(serve, pki):
    # false: no certificate is asked for, so even an untrusted one is never
    # looked at.
    off = tls_serve(serve, pki, cacertfile=pki["ca"], verify_peer=False)
    assert "No client certificate CA names sent" in s_client(off.port, "-CAfile", pki["ca"])
    assert tls_client(off.port, pki, "client_rogue") == "ok"
    # true: one is asked for and verified when presented, but not required.
    on = tls_serve(serve, pki, cacertfile=pki["ca"], verify_peer=True)
    assert "Acceptable client certificate CA names" in s_client(on.port, "-CAfile", pki["ca"])
    refused_for(on, "unknown CA", lambda: tls_client(on.port, pki, "client_rogue"))
    assert tls_client(on.port, pki) == "ok"


@pytest.mark.parametrize("required", [True, False])
def test_fail_if_no_peer_cert(serve, pki, required):
    b = tls_serve(serve, pki, cacertfile=pki["ca"], verify_peer=True,
                  fail_if_no_peer_cert=required)
    assert tls_client(b.port, pki, "client") == "ok"
    if required:
        refused_for(b, "no client certificate", lambda: tls_client(b.port, pki))
    else:
        assert tls_client(b.port, pki) == "ok"


@pytest.mark.parametrize("required", [True, False])
def test_require_password(serve, pki, tmp_path, required):
    passwd(tmp_path / "pw.conf", "device-1", "s3cret")
    b = tls_serve(serve, pki, 'auth {\n  allow_anonymous = false\n  password = {include "%s"}\n}\n'
                  % (tmp_path / "pw.conf"), **mtls(cacertfile=pki["ca"],
                                                  require_password=required))
    alone = tls_client(b.port, pki, "client")
    assert alone == ("CONNACK (134, {})" if required else "ok"), alone
    assert tls_client(b.port, pki, "client", user="device-1", pw="s3cret") == "ok"
    if required:
        b.wait_log("a password is required in addition to the certificate")


def test_tls_version(serve, pki):
    b = tls_serve(serve, pki, tls_version="1.3")
    assert tls_client(b.port, pki) == "ok"
    refused_for(b, "protocol version", lambda: tls_client(b.port, pki, tls12=True))
    old = tls_serve(serve, pki, tls_version="1.2")
    assert tls_client(old.port, pki, tls12=True) == "ok"


def negotiated(out):
    return out.split("Cipher is ")[1].split()[0] if "Cipher is " in out else None


def test_ciphers(serve, pki):
    b = tls_serve(serve, pki, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    assert negotiated(s_client(b.port, "-tls1_2")) == "ECDHE-ECDSA-AES256-GCM-SHA384"
    refused_for(b, "no shared cipher",
                lambda: tls_client(b.port, pki, tls12=True, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))
    other = tls_serve(serve, pki, ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")
    assert negotiated(s_client(other.port, "-tls1_2")) == "ECDHE-ECDSA-CHACHA20-POLY1305"


def test_ciphersuites(serve, pki):
    b = tls_serve(serve, pki, ciphersuites="TLS_CHACHA20_POLY1305_SHA256")
    assert negotiated(s_client(b.port, "-tls1_3")) == "TLS_CHACHA20_POLY1305_SHA256"
    out = s_client(b.port, "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256")
    assert negotiated(out) in (None, "(NONE)"), out
    b.wait_log("TLS handshake failed: no shared cipher")
    other = tls_serve(serve, pki, ciphersuites="TLS_AES_128_GCM_SHA256")
    assert negotiated(s_client(other.port, "-tls1_3")) == "TLS_AES_128_GCM_SHA256"


def test_tls_groups(serve, pki):
    b = tls_serve(serve, pki, tls_groups="P-384")
    assert negotiated(s_client(b.port, "-groups", "P-384")).startswith("TLS_")
    assert negotiated(s_client(b.port, "-groups", "X25519")) == "(NONE)"
    b.wait_log("TLS handshake failed: no shared cipher")
    other = tls_serve(serve, pki, tls_groups="X25519")
    assert negotiated(s_client(other.port, "-groups", "X25519")).startswith("TLS_")


def test_verify_depth(serve, pki):
    # The client chain: leaf <- issuing CA <- root, one intermediate.
    deep = tls_serve(serve, pki, **mtls(cacertfile=pki["ca"], verify_depth=0))
    refused_for(deep, "other (certificate chain too long)",
                lambda: tls_client(deep.port, pki, "client"))
    ok = tls_serve(serve, pki, **mtls(cacertfile=pki["ca"], verify_depth=1))
    assert tls_client(ok.port, pki, "client") == "ok"


ACL_USER = ('rules = [ {"permit": "allow", "action": "publish", "topics": ["u/${username}"]}\n'
            '  {"permit": "allow", "action": "publish", "topics": ["c/${clientid}"]} ]\n')


@pytest.mark.parametrize("source, value", [
    ("cn", "named-1"), ("dn", "CN=named-1,OU=Fleet"), ("san_dns", "named-1.example.test"),
    ("san_email", "named@example.test"), ("san_uri", "urn:named:1"), ("none", "plain-user")])
def test_peer_cert_as_username(serve, named_pki, tmp_path, source, value):
    """The user name an ACL sees comes from the certificate field named."""
    pki = named_pki
    (tmp_path / "acl.conf").write_text(ACL_USER)
    b = tls_serve(serve, pki, 'auth {\n  no_match = deny\n  acl = {include "%s"}\n}\n'
                  % (tmp_path / "acl.conf"), **mtls(cacertfile=pki["names_ca"],
                                                   peer_cert_as_username=source))
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.load_cert_chain(pki["named_crt"], pki["named_key"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.port), timeout=10),
                        server_hostname="localhost")
    c = rm.Client(b.port, sock=s)
    assert c.connect(cid="x", user="plain-user")[0] == 0
    # With "none" the user name claimed in CONNECT has no password behind
    # it: it is ignored, never an identity (issue 11 item 1).
    assert publish_ack(c, "u/" + value) == (0x87 if source == "none" else 0)
    assert publish_ack(c, "u/named-1-not", pid=2) == 0x87


@pytest.fixture(scope="module")
def named_pki(tmp_path_factory, pki):
    """A client certificate with every kind of name (tls_pki's have no DNS
    name), from a root of its own; the server side stays tls_pki's."""
    from cryptography.x509.oid import ExtendedKeyUsageOID
    d = str(tmp_path_factory.mktemp("named"))
    root_k = tls_pki._key()
    root = tls_pki._cert(tls_pki._name("Names Root"), root_k, None, root_k, ca=True)
    k = tls_pki._key()
    leaf = tls_pki._cert(tls_pki._name("named-1", "Fleet"), k, root, root_k,
                         eku=[ExtendedKeyUsageOID.CLIENT_AUTH], sans=["named-1.example.test"],
                         emails=["named@example.test"], uris=["urn:named:1"])
    p = dict(pki)
    p["names_ca"] = tls_pki._write(d, "root.crt", tls_pki._pem(root))
    p["named_crt"] = tls_pki._write(d, "named.crt", tls_pki._pem(leaf))
    p["named_key"] = tls_pki._write(d, "named.key", tls_pki._keypem(k), 0o600)
    return p


@pytest.mark.parametrize("source, value", [
    ("cn", "named-1"), ("dn", "CN=named-1,OU=Fleet"), ("san_dns", "named-1.example.test"),
    ("san_email", "named@example.test"), ("san_uri", "urn:named:1"), ("none", "chosen")])
def test_peer_cert_as_clientid(serve, named_pki, source, value):
    pki = named_pki
    b = tls_serve(serve, pki, **mtls(cacertfile=pki["names_ca"], peer_cert_as_clientid=source))
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.load_cert_chain(pki["named_crt"], pki["named_key"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.port), timeout=10),
                        server_hostname="localhost")
    c = rm.Client(b.port, sock=s)
    assert c.connect(cid="chosen")[0] == 0
    b.wait_log("client '%s' (127.0.0.1:%d) connected" % (value, s.getsockname()[1]))


@pytest.mark.parametrize("days, warned", [(29, False), (30, True), (10, False), (None, True)])
def test_expiry_warn_days(serve, pki, days, warned):
    # The test certificates expire in 30 days (29 whole days from now): a
    # warning when that is fewer than expiry_warn_days (default 30).
    b = tls_serve(serve, pki, expiry_warn_days=days)
    log = b.read_log()  # start() waited for "serving with": start-up is logged
    lines = [l for l in log.splitlines() if "server certificate 'localhost'" in l]
    assert any(" WARN " in l and "expires in 29 days" in l for l in lines) == warned, log


def test_sni(serve, pki):
    port = free_port()
    listener = ssl_listener(pki, port).replace(
        "\n}\n", '\n  sni = [ {host = "elsewhere.test", certfile = "%s", keyfile = "%s"}\n'
        '          {host = "*.wild.test", certfile = "%s", keyfile = "%s"} ]\n}\n'
        % (pki["server_wrong_crt"], pki["server_wrong_key"], pki["server_rsa_crt"],
           pki["server_rsa_key"]))
    serve("", listener=listener, port=port)

    def served(name):
        out = s_client(port, "-servername", name)
        subject = out.split("subject=")[1].splitlines()[0] if "subject=" in out else ""
        bits = out.split("Server public key is ")[1].split()[0] if "public key is" in out else ""
        return subject.replace(" ", ""), bits

    assert served("elsewhere.test") == ("CN=elsewhere.test", "256")
    assert served("a.wild.test") == ("CN=localhost", "2048")  # the wildcard's (RSA) one
    assert served("localhost") == ("CN=localhost", "256")  # no match: the listener's own
    assert served("wild.test") == ("CN=localhost", "256")  # "*." needs a label


@pytest.mark.parametrize("after", [1, 0])
def test_heap_trim_after(serve, pki, after):
    """heap_trim_after: once that many handshakes ended, the memory they
    freed goes back to the kernel (logged at debug); 0 never trims."""
    b = tls_serve(serve, pki, "log.level = debug\n", heap_trim_after=after)
    for i in range(3):
        assert tls_client(b.port, pki, cid="trim%d" % i) == "ok"
    needle = "tls: freed handshake memory given back"
    if after:
        assert b.wait_log(needle, timeout=10), b.read_log()
    else:
        b.stop()  # every line written: a trim would be among them
        assert needle not in b.read_log()
