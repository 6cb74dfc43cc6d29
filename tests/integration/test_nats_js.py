"""nats.js (npm @nats-io/transport-node, pinned in tests/integration/nats/js
with its package-lock.json) against ward's NATS listener (issue 13): the
only client here that can do TLS `handshake_first`.

The package is installed once per session with `npm ci` into the session's
temporary directory; a failed install fails the tests (nats.js is a required
independent client), with npm's output. nats/js/client.mjs runs one
scenario per process, checks what it received itself and prints "ok MODE".
Plain, TLS, mutual TLS, NKeys/permissions and token runs are differential
(Debian's nats-server 2.9 and ward); handshake_first is ward only
(nats-server learnt it in 2.10), and so are the MQTT 5 <-> nats.js
crossings."""
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

import tls_pki
from conftest import NO_WARD_NATS, free_port, npm_install, wait_port, ward_speaks_nats

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nats", "js")


@pytest.fixture(scope="session")
def natsjs(tmp_path_factory):
    """The installed client: `natsjs(args, timeout)` runs client.mjs with
    the JSON args and returns (exit status, stdout + stderr)."""
    node, d = npm_install(tmp_path_factory, JS_DIR, "nats.js")
    script = str(d / "client.mjs")

    def run(args, timeout=40):
        r = subprocess.run([node, script, json.dumps(args)], cwd=str(d), capture_output=True,
                           text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    run.node, run.script, run.dir = node, script, str(d)
    return run


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


def ok(rc, out, mode):
    assert rc == 0 and ("ok " + mode) in out.splitlines(), out


# ---- 1. plain ---------------------------------------------------------------


def test_plain(nk, natsjs):
    """Pub/sub in order with headers (a repeated name), 4 KB of binary and
    an empty payload; request/reply with headers, answered from another
    connection, through the muxed inbox and without it; a request nobody
    answers gets the zero-payload `NATS/1.0 503` at once; a queue group of
    three splits 60 messages exactly while a second group and a plain
    subscriber get all 60; drain delivers the 50 in flight, then closes."""
    b = nk()
    ok(*natsjs({"mode": "plain", "port": b.port}), "plain")


def test_max_payload_8mb(nk, natsjs):
    """Mir's `max_payload: 8MB`: INFO announces it and three messages of
    exactly 8 MB go through intact."""
    b = nk(ns="max_payload: 8MB",
           ward_conf='listeners.nats {\n  bind = "127.0.0.1:{port}"\n  max_payload = 8MB\n}\n')
    ok(*natsjs({"mode": "big", "port": b.port, "max": 8 * 1024 * 1024}), "big")


# ---- 2. TLS -----------------------------------------------------------------


def _ns_tls(pki, verify=False):
    return ('tls {\n  cert_file: "%s"\n  key_file: "%s"\n  ca_file: "%s"\n  verify: %s\n}\n'
            % (pki["server_crt"], pki["server_key"], pki["ca"], "true" if verify else "false"))


def _client_tls(pki, cert=None, **kw):
    t = {"caFile": pki["ca"]}
    if cert:
        t.update(certFile=pki[cert + "_crt"], keyFile=pki[cert + "_key"])
    t.update(kw)
    return t


def test_tls_server_only(nk, natsjs, pki):
    """`nats+tls`: INFO in plaintext says tls_required, nats.js upgrades
    with the test CA, and pub/sub with headers and a request work."""
    b = nk(ns=_ns_tls(pki), scheme="nats+tls",
           ward=["--certfile", pki["server_crt"], "--keyfile", pki["server_key"]])
    rc, out = natsjs({"mode": "tls", "port": b.port, "tls": _client_tls(pki)})
    ok(rc, out, "tls")
    assert '"tls_required":true' in out, out


def test_mutual_tls(nk, natsjs, pki):
    """Mutual TLS: nats.js with a client certificate of the test CA works;
    without one it is refused, and promptly."""
    b = nk(ns=_ns_tls(pki, verify=True), scheme="nats+mtls",
           ward=["--certfile", pki["server_crt"], "--keyfile", pki["server_key"],
                 "--cafile", pki["ca"]])
    rc, out = natsjs({"mode": "tls", "port": b.port, "tls": _client_tls(pki, "client")})
    ok(rc, out, "tls")
    assert '"tls_verify":true' in out, out
    t0 = time.monotonic()
    rc, out = natsjs({"mode": "fail", "port": b.port, "tls": _client_tls(pki)})
    assert rc == 0 and out.startswith("failed "), out
    assert time.monotonic() - t0 < 15, out


# ---- authentication and permissions, as nats.js sees them -------------------


def _serve_auth(nk, inner):
    return nk(ns=inner, ward_conf='listeners.nats {\n  bind = "127.0.0.1:{port}"\n%s\n}\n'
              % inner)


def _nkey(natsjs):
    rc, out = natsjs({"mode": "nkeygen"})
    assert rc == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_nkeys_and_permissions(nk, natsjs):
    """NKeys: nats.js signs the server's nonce (two listed keys work, an
    unlisted one is refused with an authorization error). Permissions: a
    forbidden subscription and queue subscription are closed with
    nats.js's PermissionViolationError (operation, subject, queue parsed
    from the -ERR text), a forbidden publish is reported on the status
    stream, and the connection goes on working."""
    lim, peer, stranger = _nkey(natsjs), _nkey(natsjs), _nkey(natsjs)
    b = _serve_auth(nk, 'authorization { users = [\n'
                    '  { nkey = "%s", permissions = { publish = { allow = ["device.>"] },\n'
                    '      subscribe = { allow = ["dev.>"] } } }\n'
                    '  { nkey = "%s" }\n] }' % (lim["pub"], peer["pub"]))
    ok(*natsjs({"mode": "perms", "port": b.port, "seed": lim["seed"],
                "peer": {"seed": peer["seed"]}}), "perms")
    rc, out = natsjs({"mode": "fail", "port": b.port, "seed": stranger["seed"]})
    assert rc == 0 and out.startswith("failed AuthorizationError"), out


def test_token(nk, natsjs):
    """A token listener: nats.js with the token gets in and works, with a
    wrong token or none it fails with an authorization error."""
    b = _serve_auth(nk, 'authorization { token = "s3cret-token" }')
    rc, out = natsjs({"mode": "tls", "port": b.port, "token": "s3cret-token", "tls": None})
    ok(rc, out, "tls")
    for bad in ({"token": "wrong"}, {}):
        rc, out = natsjs(dict({"mode": "fail", "port": b.port}, **bad))
        assert rc == 0 and out.startswith("failed AuthorizationError"), (bad, out)


# ---- 3. handshake_first (ward only: nats-server 2.9 has no handshake_first) --


@pytest.fixture
def hsf_ward(ward_factory, pki, tmp_path):
    """ward with one NATS listener whose TLS comes before INFO."""
    if not ward_speaks_nats():
        pytest.skip(NO_WARD_NATS)

    def make(handshake_first=True, verify=False, crl=False):
        port = free_port()
        conf = str(tmp_path / ("hsf-%d.conf" % port))
        with open(conf, "w") as f:
            f.write('listeners.nats {\n  bind = "127.0.0.1:%d"\n  tls {\n'
                    '    cert_file = "%s"\n    key_file = "%s"\n    ca_file = "%s"\n'
                    '    verify = %s\n    handshake_first = %s\n%s  }\n}\n'
                    % (port, pki["server_crt"], pki["server_key"], pki["ca"],
                       "true" if verify else "false", "true" if handshake_first else "false",
                       '    crlfile = "%s"\n' % pki["crl"] if crl else ""))
        w = ward_factory(["-c", conf], port=port, listen=False).start(wait=False)
        assert wait_port(port, proc=w.proc, timeout=15), "ward is not listening:\n" + w.read_log()
        return w

    return make


def test_handshake_first_natsjs(hsf_ward, natsjs, pki):
    """nats.js with `tls.handshakeFirst` connects to a `handshake_first`
    listener (server-only TLS, then mutual TLS) and pub/sub and requests
    work; INFO, read inside TLS, says tls_required."""
    w = hsf_ward()
    rc, out = natsjs({"mode": "tls", "port": w.port,
                      "tls": _client_tls(pki, handshakeFirst=True)})
    ok(rc, out, "tls")
    assert '"tls_required":true' in out, out
    m = hsf_ward(verify=True)
    rc, out = natsjs({"mode": "tls", "port": m.port,
                      "tls": _client_tls(pki, "client", handshakeFirst=True)})
    ok(rc, out, "tls")
    assert '"tls_verify":true' in out, out


def _read_until_closed(s, timeout):
    """Everything s receives until the peer closes it (EOF or reset);
    raises socket.timeout if it is still open after `timeout`."""
    s.settimeout(timeout)
    got = b""
    try:
        while len(got) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    return got


def test_handshake_first_mutual_tls(hsf_ward, natsjs, pki):
    """handshake_first with client certificates and a CRL: no certificate,
    one of another CA, a revoked one and an expired one are each refused
    in the handshake (nats.js fails at once, the cause is logged); after
    SIGHUP reloads the TLS material the listener still wants TLS first
    and a good certificate still works."""
    w = hsf_ward(verify=True, crl=True)
    cases = [(None, "no client certificate"), ("client_rogue", "unknown CA"),
             ("client_revoked", "certificate revoked"),
             ("client_expired", "certificate expired")]
    for cert, cause in cases:
        t0 = time.monotonic()
        rc, out = natsjs({"mode": "fail", "port": w.port,
                          "tls": _client_tls(pki, cert, handshakeFirst=True)})
        assert rc == 0 and out.startswith("failed "), (cert, out)
        assert time.monotonic() - t0 < 15, (cert, out)
        w.wait_log("TLS handshake failed: " + cause)
    w.signal(signal.SIGHUP)
    w.wait_log("TLS material reloaded")
    rc, out = natsjs({"mode": "tls", "port": w.port,
                      "tls": _client_tls(pki, "client", handshakeFirst=True)})
    ok(rc, out, "tls")
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        assert select.select([s], [], [], 1.0)[0] == [], s.recv(4096)


def test_handshake_first_raw(hsf_ward, pki):
    """What a client that does not start with TLS sees on a handshake_first
    listener (a raw socket, independent of nats.js): nothing in plaintext
    (the server waits for a ClientHello, sends no INFO); plaintext NATS
    sent to it ends the connection at once with nothing NATS in clear, and
    the cause is logged; a client that says nothing is dropped by the
    handshake idle timeout, not kept forever. A client that starts TLS at
    once reads INFO inside TLS, then CONNECT/PING get PONG."""
    w = hsf_ward()
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        assert select.select([s], [], [], 1.0)[0] == [], s.recv(4096)
        t0 = time.monotonic()
        s.sendall(b"CONNECT {}\r\nPING\r\n")
        got = _read_until_closed(s, 10)
        # At most a TLS alert record (content type 21), never NATS.
        assert got == b"" or got[0] == 21, got
        assert time.monotonic() - t0 < 5
    w.wait_log("plaintext on a TLS port")
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        t0 = time.monotonic()
        got = _read_until_closed(s, 15)
        assert got == b"", got
        assert time.monotonic() - t0 < 12
    w.wait_log("handshake timeout")
    ctx = ssl.create_default_context(cafile=pki["ca"])
    raw = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="localhost") as t:
        t.settimeout(5)
        buf = b""
        while b"\r\n" not in buf and len(buf) < 8192:
            chunk = t.recv(4096)
            assert chunk, "closed before INFO: %r" % buf
            buf += chunk
        line, rest = buf.split(b"\r\n", 1)
        assert line.startswith(b"INFO "), buf
        info = json.loads(line[5:])
        assert info.get("tls_required") is True, info
        t.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        while b"PONG\r\n" not in rest and len(rest) < 8192:
            chunk = t.recv(4096)
            assert chunk, "closed before PONG: %r" % rest
            rest += chunk
        assert rest.startswith(b"PONG\r\n"), rest
    assert w.alive()


def test_handshake_first_plain_client_bounded(hsf_ward, natsjs, pki):
    """nats.js WITHOUT handshakeFirst against a handshake_first listener
    waits for an INFO that never comes in plaintext: its connect fails
    within its own timeout, it does not hang."""
    w = hsf_ward()
    t0 = time.monotonic()
    rc, out = natsjs({"mode": "fail", "port": w.port, "timeout": 3000,
                      "tls": _client_tls(pki)}, timeout=30)
    assert rc == 0 and out.startswith("failed "), out
    assert time.monotonic() - t0 < 20, out
    assert w.alive()


def test_handshake_first_against_normal_tls(nk, natsjs, pki):
    """nats.js WITH handshakeFirst against a normal TLS listener (INFO in
    plaintext first): its ClientHello meets a plaintext INFO, and it fails
    cleanly and promptly, no hang; the server lives on."""
    b = nk(ns=_ns_tls(pki), scheme="nats+tls",
           ward=["--certfile", pki["server_crt"], "--keyfile", pki["server_key"]])
    t0 = time.monotonic()
    rc, out = natsjs({"mode": "fail", "port": b.port, "timeout": 3000,
                      "tls": _client_tls(pki, handshakeFirst=True)}, timeout=30)
    assert rc == 0 and out.startswith("failed "), out
    assert time.monotonic() - t0 < 20, out
    assert b.alive()
    # The listener still serves a correct client afterwards.
    ok(*natsjs({"mode": "tls", "port": b.port, "tls": _client_tls(pki)}), "tls")


def test_handshake_first_against_plain_listener(nk, natsjs, pki):
    """nats.js WITH handshakeFirst against a listener without TLS: its
    ClientHello is not NATS, the server says so and closes; nats.js fails
    promptly and the server serves the next client."""
    b = nk()
    t0 = time.monotonic()
    rc, out = natsjs({"mode": "fail", "port": b.port, "timeout": 3000,
                      "tls": _client_tls(pki, handshakeFirst=True)}, timeout=30)
    assert rc == 0 and out.startswith("failed "), out
    assert time.monotonic() - t0 < 20, out
    assert b.alive()
    ok(*natsjs({"mode": "tls", "port": b.port, "tls": None}), "tls")


# ---- 4. MQTT 5 <-> nats.js --------------------------------------------------


class Paho5:
    """A paho MQTT 5 client whose waits have deadlines."""

    def __init__(self, port, cid):
        self.got, self.cond = [], threading.Condition()
        self.acks = 0
        self.c = paho.Client(cid, protocol=paho.MQTTv5)
        self.c.on_connect = self._on_ack
        self.c.on_subscribe = self._on_ack
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self._wait_ack(0)

    def _on_ack(self, *a):
        with self.cond:
            self.acks += 1
            self.cond.notify_all()

    def _on_message(self, c, userdata, msg):
        with self.cond:
            self.got.append(msg)
            self.cond.notify_all()

    def _wait_ack(self, n):
        with self.cond:
            assert self.cond.wait_for(lambda: self.acks > n, 10), "no CONNACK/SUBACK"

    def subscribe(self, topic):
        n = self.acks
        self.c.subscribe(topic, 1)
        self._wait_ack(n)

    def publish(self, topic, payload, user=(), response=None, corr=None):
        props = Properties(PacketTypes.PUBLISH)
        if user:
            props.UserProperty = list(user)
        if response:
            props.ResponseTopic = response
        if corr is not None:
            props.CorrelationData = corr
        info = self.c.publish(topic, payload, qos=1, properties=props)
        info.wait_for_publish(10)
        assert info.is_published()

    def wait(self, n=1):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, 10), self.got
            return list(self.got)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class JsProc:
    """A client.mjs scenario that prints "ready" before it waits."""

    def __init__(self, natsjs, args):
        self.p = subprocess.Popen([natsjs.node, natsjs.script, json.dumps(args)],
                                  cwd=natsjs.dir, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        assert select.select([self.p.stdout], [], [], 15)[0], "nats.js did not get ready"
        line = self.p.stdout.readline()
        assert line.strip() == "ready", line + self.p.stdout.read()

    def result(self, n=1):
        """The last n JSON lines the scenario printed."""
        out, _ = self.p.communicate(timeout=20)
        assert self.p.returncode == 0, out
        lines = [json.loads(x) for x in out.strip().splitlines()[-n:]]
        return lines[0] if n == 1 else lines

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def test_mqtt5_user_properties_to_natsjs(nats_ward, natsjs):
    """paho (MQTT 5) publishes `js/m/x` with user properties (a repeated
    name, a value with spaces), a response topic and correlation data;
    nats.js subscribed to `js.m.x` gets the payload, the user properties as
    headers in order with repeats kept, the reply subject, and the
    correlation data in Ward-Correlation-Data (base64). A user property
    that a NATS header cannot carry (a value with CR LF trying to add a
    header line) injects nothing: it alone is left out."""
    w = nats_ward()
    js = JsProc(natsjs, {"mode": "sub", "port": w.nats_port, "subject": "js.m.x", "count": 2})
    try:
        c = Paho5(w.port, "paho-natsjs")
        try:
            c.publish("js/m/x", b"telemetry", response="js/m/reply", corr=b"\x01corr",
                      user=[("Device", "dev-1"), ("K", "v1"), ("K", "v2"),
                            ("Note", "two words"), ("Unit", "\u00b0C \u6c34")])
            c.publish("js/m/x", b"second", user=[("Good", "1"),
                                                 ("V", "x\r\nInjected: 1\r\n")])
        finally:
            c.close()
        m, m2 = js.result(2)
    finally:
        js.kill()
    assert m["subject"] == "js.m.x" and m["data"] == "telemetry", m
    assert m["reply"] == "js.m.reply", m
    assert [k for k, _ in m["headers"]][:3] == ["Device", "K", "Note"], m
    h = dict((k, v) for k, v in m["headers"])
    assert h["Device"] == ["dev-1"] and h["K"] == ["v1", "v2"], m
    assert h["Note"] == ["two words"], m
    assert h["Unit"] == ["\u00b0C \u6c34"], m
    assert h["Ward-Correlation-Data"] == ["AWNvcnI="], m
    assert m2["data"] == "second", m2
    assert "Injected" not in json.dumps(m2["headers"]), m2
    assert m2["headers"] == [["Good", ["1"]]], m2


def test_mqtt5_request_natsjs_responds(nats_ward, natsjs):
    """An MQTT 5 request (response topic, correlation data) answered by a
    nats.js responder: paho gets the answer on its response topic with its
    correlation data back and nats.js's header as a user property."""
    w = nats_ward()
    js = JsProc(natsjs, {"mode": "respond", "port": w.nats_port, "subject": "js.svc.q"})
    try:
        c = Paho5(w.port, "paho-req")
        try:
            c.subscribe("js/resp/1")
            c.publish("js/svc/q", b"hello", response="js/resp/1", corr=b"\x00id-7",
                      user=[("X-Ask", "please")])
            [r] = c.wait(1)
        finally:
            c.close()
        req = js.result()
    finally:
        js.kill()
    assert req["reply"] == "js.resp.1" and req["data"] == "hello", req
    assert ["X-Ask", ["please"]] in req["headers"], req
    assert r.topic == "js/resp/1" and r.payload == b"answer:hello", (r.topic, r.payload)
    assert getattr(r.properties, "CorrelationData", None) == b"\x00id-7", r.properties
    assert ("X-Answer", "from nats.js") in getattr(r.properties, "UserProperty", []), \
        r.properties


def test_natsjs_request_mqtt5_responds(nats_ward, natsjs):
    """A nats.js request (muxed inbox, a header) answered by an MQTT 5
    client: paho sees the header as a user property and a response topic,
    publishes its answer there with the correlation data it got, and the
    nats.js request resolves with it."""
    w = nats_ward()
    c = Paho5(w.port, "paho-resp")
    answered = threading.Event()

    def answer(cl, userdata, msg):
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("X-Seen", dict(getattr(msg.properties, "UserProperty", []))
                               .get("X-Q", "none"))]
        if getattr(msg.properties, "CorrelationData", None) is not None:
            props.CorrelationData = msg.properties.CorrelationData
        cl.publish(msg.properties.ResponseTopic, b"mqtt says " + msg.payload, qos=1,
                   properties=props)
        answered.set()

    try:
        c.subscribe("js/ask/+")
        c.c.on_message = answer
        rc, out = natsjs({"mode": "request", "port": w.nats_port, "subject": "js.ask.1",
                          "data": "hi", "headers": [["X-Q", "q1"]]})
        assert rc == 0, out
        assert answered.is_set()
    finally:
        c.close()
    r = json.loads(out.strip().splitlines()[-1])
    assert r["data"] == "mqtt says hi", r
    assert ["X-Seen", ["q1"]] in r["headers"], r


def test_natsjs_many_headers_to_mqtt5(nats_ward, natsjs):
    """nats.js publishes 100 headers; paho (MQTT 5) gets all 100 as user
    properties, in order."""
    w = nats_ward()
    c = Paho5(w.port, "paho-many")
    try:
        c.subscribe("js/many/in")
        pairs = [["H%03d" % i, "v%d" % i] for i in range(100)]
        ok(*natsjs({"mode": "pub", "port": w.nats_port, "subject": "js.many.in", "data": "d",
                    "headers": pairs}), "pub")
        [m] = c.wait(1)
    finally:
        c.close()
    assert [list(p) for p in getattr(m.properties, "UserProperty", [])] == pairs


def test_mqtt5_many_user_properties_to_natsjs(nats_ward, natsjs):
    """The other way: paho publishes 100 user properties and correlation
    data; nats.js gets all 100 headers in order, then the correlation
    data."""
    w = nats_ward()
    js = JsProc(natsjs, {"mode": "sub", "port": w.nats_port, "subject": "js.many.out"})
    try:
        c = Paho5(w.port, "paho-many-out")
        try:
            c.publish("js/many/out", b"d", corr=b"c",
                      user=[("H%03d" % i, "v%d" % i) for i in range(100)])
        finally:
            c.close()
        m = js.result()
    finally:
        js.kill()
    assert m["headers"] == [["H%03d" % i, ["v%d" % i]] for i in range(100)] + [
        ["Ward-Correlation-Data", ["Yw=="]]], m["headers"]


def test_mqtt5_request_with_odd_property_keeps_correlation(nats_ward, natsjs):
    """An MQTT 5 request whose user properties include a name NATS headers
    cannot hold (`urn:dev`): the pairs that can be carried and the
    correlation data still reach the nats.js responder, so the requester
    can still match the answer."""
    w = nats_ward()
    js = JsProc(natsjs, {"mode": "sub", "port": w.nats_port, "subject": "js.odd"})
    try:
        c = Paho5(w.port, "paho-odd")
        try:
            c.publish("js/odd", b"d", response="js/odd/resp", corr=b"\x00id",
                      user=[("Good", "1"), ("urn:dev", "x")])
        finally:
            c.close()
        m = js.result()
    finally:
        js.kill()
    h = dict((k, v) for k, v in m["headers"])
    assert h.get("Good") == ["1"] and h.get("Ward-Correlation-Data") == ["AGlk"], m

