"""MQTT over WebSocket (issue 15) with independent clients: MQTT.js (npm
`mqtt`, pinned in tests/integration/ws), python3-paho-mqtt's websockets
transport, and hand-made frames and upgrade requests (wswire.py).

Differential where the reference agrees: each such test runs against ward
(`-l ws://` / `-l wss://`) and against Debian's mosquitto 2.0.11's
websockets listener (libwebsockets), with the same clients. Where mosquitto
deviates (it ignores text and unmasked frames, checks no path, Origin or
version, accepts a POST) the test runs on ward only, marked with how
mosquitto deviates. After every hostile case the broker still serves a
normal client, which the test checks."""
import json
import os
import queue
import ssl
import subprocess
import time

import paho.mqtt.client as paho
import pytest

import mqttwire as m
import tls_pki
import wswire as ws
from conftest import WARD, Mosquitto, free_port, npm_install, wait_port

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ws")
HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


class WsBroker:
    """What a test needs of a broker with a WebSocket listener: .name,
    .port (its TCP MQTT listener), .ws_port, .tls (wss), .alive(), and for
    ward .log() (its log so far)."""


def start_ward(ward_factory, scheme="ws", args=(), path="/mqtt", query=""):
    b = WsBroker()
    b.ws_port = free_port()
    url = "%s://%s:%d%s%s" % (scheme, HOST, b.ws_port, path, query)
    w = ward_factory(["-l", url] + list(args)).start()
    assert wait_port(b.ws_port, proc=w.proc, timeout=15), "no ws listener:\n" + w.read_log()
    b.name, b.port, b.ward, b.tls = "ward", w.port, w, scheme == "wss"
    b.alive, b.log = w.alive, w.read_log
    return b


def start_mosquitto(tmp_path, tls_lines="", extra=""):
    b = WsBroker()
    b.ws_port = free_port()
    mq = Mosquitto(tmp_path, "%s\nlistener %d %s\nprotocol websockets\n%s" % (
        extra, b.ws_port, HOST, tls_lines))
    assert wait_port(b.ws_port, proc=mq.proc), "mosquitto has no websockets listener"
    b.name, b.port, b.mosq, b.tls = "mosquitto", mq.port, mq, bool(tls_lines)
    b.alive = mq.alive
    return b


@pytest.fixture(params=["ward", "mosquitto"])
def wsb(request, tmp_path, ward_factory, pki):
    """`wsb(tls=None|"server"|"mutual")` starts the current kind of broker
    with a ws:// (or wss://, server certificate from `pki`; "mutual":
    client certificates required) listener on path /mqtt beside a TCP
    one. A test marked mosquitto_deviates runs on ward only; one marked
    ward_bug is a strict xfail on ward (it fails loudly once fixed)."""
    kind = request.param
    deviates = request.node.get_closest_marker("mosquitto_deviates")
    if kind == "mosquitto" and deviates:
        pytest.skip("mosquitto deviates: " + deviates.args[0])
    bug = request.node.get_closest_marker("ward_bug")
    if kind == "ward" and bug:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason="ward: " + bug.args[0]))
    started = []

    def make(tls=None, args=(), mosq=""):
        if kind == "ward":
            extra = list(args)
            if tls:
                extra += ["--certfile", pki["server_crt"], "--keyfile", pki["server_key"],
                          "--cafile", pki["ca"], "--client-cert",
                          "required" if tls == "mutual" else "none"]
            return start_ward(ward_factory, "wss" if tls else "ws", extra)
        lines = ""
        if tls:
            # libwebsockets reads the key after mosquitto dropped root for
            # its own user, who cannot read a test's temporary directory.
            lines = "user root\ncertfile %s\nkeyfile %s\ncafile %s\nrequire_certificate %s\n" % (
                pki["server_crt"], pki["server_key"], pki["ca"],
                "true" if tls == "mutual" else "false")
        b = start_mosquitto(tmp_path, lines, mosq)
        started.append(b.mosq)
        return b

    make.kind = kind
    yield make
    for mq in started:
        mq.stop()


def client_ctx(pki, cert="client"):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        ctx.load_cert_chain(pki[cert + "_crt"], pki[cert + "_key"])
    return ctx


def still_serves(b, tls=None):
    """The broker is alive and a normal WebSocket client still gets a
    CONNACK and a round trip through it."""
    assert b.alive(), "the broker died"
    c = ws.connected(b.ws_port, "after", tls=tls)
    c.sub([("after/t", 1)])
    pub = ws.connected(b.ws_port, "after-pub", tls=tls)
    pub.pub("after/t", b"fine", qos=1)
    [p] = c.collect(1)
    assert p.payload == b"fine"
    c.disconnect()
    pub.disconnect()


# ---------------------------------------------------------------- paho

def paho_client(b, cid, v5, pki=None, cert=None, path="/mqtt"):
    c = paho.Client(client_id=cid, protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
                    transport="websockets")
    c.ws_set_options(path=path)
    if b.tls:
        c.tls_set(ca_certs=pki["ca"], certfile=pki[cert + "_crt"] if cert else None,
                  keyfile=pki[cert + "_key"] if cert else None)
    c.events = queue.Queue()
    c.on_connect = lambda cl, u, f, rc, props=None: c.events.put(("connack", int(rc == 0)
                                                                  if v5 else rc == 0))
    c.on_subscribe = lambda cl, u, mid, granted, props=None: c.events.put(("suback", mid))
    c.on_message = lambda cl, u, msg: c.events.put(("msg", msg))
    c.on_publish = lambda cl, u, mid: c.events.put(("puback", mid))
    return c


def wait_event(c, kind, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no %s within %.0fs" % (kind, timeout)
        try:
            ev = c.events.get(timeout=left)
        except queue.Empty:
            continue
        if ev[0] == kind:
            return ev[1]


def paho_up(b, cid, v5, pki=None, cert=None):
    c = paho_client(b, cid, v5, pki, cert)
    c.connect("localhost" if b.tls else HOST, b.ws_port, keepalive=30)
    c.loop_start()
    assert wait_event(c, "connack"), "%s: CONNACK refused" % cid
    return c


def paho_roundtrip(b, v5, pki=None, cert=None):
    """A paho subscriber and publisher over WebSocket: QoS 0, 1 and 2
    messages arrive once each with their QoS; a retained message reaches a
    later subscriber with the retain flag; a raw TCP client on the same
    broker sees the same messages (WebSocket and TCP share one message
    space)."""
    tcp = m.connected(b.port, "tcp-obs") if not b.tls else None
    if tcp:
        tcp.sub([("pws/#", 2)])
    sub = paho_up(b, "paho-sub", v5, pki, cert)
    mid = sub.subscribe("pws/#", qos=2)[1]
    assert wait_event(sub, "suback") == mid
    pub = paho_up(b, "paho-pub", v5, pki, cert)
    for q in (0, 1, 2):
        info = pub.publish("pws/q%d" % q, b"payload %d" % q, qos=q)
        info.wait_for_publish(10)
        assert info.is_published()
        msg = wait_event(sub, "msg")
        assert (msg.topic, msg.payload, msg.qos, msg.retain) == (
            "pws/q%d" % q, b"payload %d" % q, q, False)
    pub.publish("pws/kept", b"kept", qos=1, retain=True).wait_for_publish(10)
    if tcp:
        got = tcp.collect(4)
        assert [(p.topic, p.payload) for p in got] == [
            ("pws/q0", b"payload 0"), ("pws/q1", b"payload 1"), ("pws/q2", b"payload 2"),
            ("pws/kept", b"kept")]
        tcp.disconnect()
    late = paho_up(b, "paho-late", v5, pki, cert)
    late.subscribe("pws/kept", qos=1)
    msg = wait_event(late, "msg")
    assert (msg.payload, msg.retain) == (b"kept", True)
    for c in (sub, pub, late):
        c.disconnect()
        c.loop_stop()


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_paho_ws(wsb, v5):
    paho_roundtrip(wsb(), v5)


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_paho_wss(wsb, pki, v5):
    paho_roundtrip(wsb(tls="server"), v5, pki)


def test_paho_wss_client_certificate(wsb, pki):
    b = wsb(tls="mutual")
    paho_roundtrip(b, True, pki, cert="client")
    # A certificate from a CA the listener does not trust gets no CONNACK.
    c = paho_client(b, "rogue", True, pki, cert="client_rogue")
    try:
        c.connect("localhost", b.ws_port, keepalive=30)
    except Exception:  # ssl.SSLError, OSError or paho's WebsocketConnectionError
        pass
    else:
        c.loop_start()
        with pytest.raises(AssertionError):
            wait_event(c, "connack", timeout=3)
        c.loop_stop()
    # No certificate at all: the TLS handshake or the upgrade fails.
    with pytest.raises((ssl.SSLError, OSError, AssertionError)):
        ws.connected(b.ws_port, "nocert", tls=client_ctx(pki, cert=None))
    still_serves(b, tls=client_ctx(pki))


# ---------------------------------------------------------------- MQTT.js

@pytest.fixture(scope="session")
def mqttjs(tmp_path_factory):
    """`mqttjs(args)` runs ws/mqttjs.mjs with the JSON args; returns
    (exit status, output). The package is installed once per session with
    `npm ci` (a failed install fails the tests: MQTT.js is a required
    independent client)."""
    node, d = npm_install(tmp_path_factory, JS_DIR, "MQTT.js")

    def run(args, timeout=40):
        r = subprocess.run([node, str(d / "mqttjs.mjs"), json.dumps(args)], cwd=str(d),
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    return run


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqttjs_ws(wsb, mqttjs, version, qos):
    b = wsb()
    rc, out = mqttjs({"url": "ws://%s:%d/mqtt" % (HOST, b.ws_port), "version": version,
                      "qos": qos, "count": 20})
    assert rc == 0 and out.startswith("ok"), out


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_mqttjs_wss(wsb, mqttjs, pki, version):
    b = wsb(tls="server")
    rc, out = mqttjs({"url": "wss://localhost:%d/mqtt" % b.ws_port, "version": version,
                      "qos": 1, "ca": pki["ca"]})
    assert rc == 0 and out.startswith("ok"), out


def test_mqttjs_wss_client_certificate(wsb, mqttjs, pki):
    b = wsb(tls="mutual")
    rc, out = mqttjs({"url": "wss://localhost:%d/mqtt" % b.ws_port, "version": 5, "qos": 2,
                      "ca": pki["ca"], "cert": pki["client_crt"], "key": pki["client_key"]})
    assert rc == 0 and out.startswith("ok"), out
    rc, out = mqttjs({"url": "wss://localhost:%d/mqtt" % b.ws_port, "version": 5, "ca": pki["ca"],
                      "cert": pki["client_rogue_crt"], "key": pki["client_rogue_key"]})
    assert rc == 1 and "FAIL" in out, out


# ---------------------------------------------------------------- frames

def test_packet_split_across_three_frames(wsb):
    """One MQTT packet (a PUBLISH) cut into three binary frames arrives
    whole; so does a CONNECT cut the same way."""
    b = wsb()
    c = ws.WSClient(b.ws_port)
    conn = m.connect("split")
    for part in (conn[:1], conn[1:5], conn[5:]):
        c.send(part)
    assert c.expect(m.CONNACK).rc == 0
    c.sub([("split/t", 1)])
    pkt = m.publish("split/t", b"x" * 300, qos=1, pid=7)
    for part in (pkt[:2], pkt[2:150], pkt[150:]):
        c.send(part)
    got = []
    while len(got) < 2:
        p = c.expect_any()
        assert p.type in (m.PUBACK, m.PUBLISH), p
        got.append(p)
        if p.type == m.PUBLISH:
            c.ack_msg(p)
    [msg] = [p for p in got if p.type == m.PUBLISH]
    assert msg.payload == b"x" * 300 and msg.topic == "split/t"
    c.disconnect()


def test_several_packets_in_one_frame(wsb):
    """CONNECT, SUBSCRIBE, three PUBLISHes and a PINGREQ in one frame: every
    one is handled, in order."""
    b = wsb()
    c = ws.WSClient(b.ws_port)
    c.send(m.connect("many") + m.subscribe(1, [("many/t", 1)]) +
           b"".join(m.publish("many/t", b"%d" % i, qos=1, pid=10 + i) for i in range(3)) +
           m.pingreq())
    assert c.expect(m.CONNACK).rc == 0
    assert c.expect(m.SUBACK).pid == 1
    seen, acks, ping = [], [], False
    deadline = time.monotonic() + 10
    while not (len(seen) == 3 and len(acks) == 3 and ping) and time.monotonic() < deadline:
        p = c.expect_any()
        if p.type == m.PUBLISH:
            seen.append(p.payload)
            c.ack_msg(p)
        elif p.type == m.PUBACK:
            acks.append(p.pid)
        elif p.type == m.PINGRESP:
            ping = True
    assert seen == [b"0", b"1", b"2"] and acks == [10, 11, 12] and ping, (seen, acks, ping)
    c.disconnect()


def test_fragmented_message_with_ping_inside(wsb):
    """A message in four fragments (binary, continuation, continuation,
    final continuation) with a ping between two of them: the pong comes
    with the ping's payload, and the two packets carried across the
    fragments are handled."""
    b = wsb()
    c = ws.connected(b.ws_port, "frag")
    c.sub([("frag/t", 0)])
    data = m.publish("frag/t", b"fragmented payload") + m.pingreq()
    cuts = [0, 3, 9, 20, len(data)]
    c.send_frame(ws.BINARY, data[cuts[0]:cuts[1]], fin=False)
    c.send_frame(ws.CONT, data[cuts[1]:cuts[2]], fin=False)
    c.send_frame(ws.PING, b"are you there")
    c.send_frame(ws.CONT, data[cuts[2]:cuts[3]], fin=False)
    c.send_frame(ws.CONT, data[cuts[3]:cuts[4]], fin=True)
    p = c.expect(m.PUBLISH)
    assert p.payload == b"fragmented payload"
    c.expect(m.PINGRESP)
    assert c.pongs == [b"are you there"]
    c.disconnect()


def test_ping_answered_with_pong(wsb):
    b = wsb()
    c = ws.connected(b.ws_port, "pinger")
    c.send_frame(ws.PING, b"\x00\x01binary\xff")
    c.ping()  # the MQTT ping's answer comes after the pong
    assert c.pongs == [b"\x00\x01binary\xff"]
    c.disconnect()


@pytest.mark.parametrize("code", [1000, 1001, 4000])
def test_close_handshake_echoes_code(wsb, code):
    b = wsb()
    c = ws.connected(b.ws_port, "closer")
    assert c.close_handshake(code, b"bye") == code
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets takes a text frame's payload as data")
def test_text_frame_closed_1003(wsb):
    b = wsb()
    c = ws.connected(b.ws_port, "texter")
    c.send_frame(ws.TEXT, m.pingreq())
    assert c.expect_ws_close() == 1003
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets takes an unmasked client frame")
def test_unmasked_frame_closed_1002(wsb):
    b = wsb()
    c = ws.connected(b.ws_port, "unmasked")
    c.send_frame(ws.BINARY, m.pingreq(), mask=False)
    assert c.expect_ws_close() == 1002
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets waits for the 300 MB frame")
def test_oversize_frame_closed_1009(wsb):
    """A frame longer than the maximum message size (tied to
    max_packet_size: 4 KiB here) is refused as soon as its header says
    so, with 1009, before its payload came."""
    b = wsb(args=["--max-packet-size", "4096"])
    c = ws.connected(b.ws_port, "big")
    c.send_raw(ws.frame(ws.BINARY, b"\x30\xff\xff\x7f", length=300 << 20))
    assert c.expect_ws_close() == 1009
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets takes the fragments")
def test_oversize_message_across_fragments_closed_1009(wsb):
    """The cap holds across fragments: 4 x 2 KiB fragments of one message
    with max_packet_size 4 KiB. They carry PINGREQs, each a whole valid
    packet, so the MQTT layer has nothing to refuse: the close is the
    WebSocket layer's."""
    b = wsb(args=["--max-packet-size", "4096"])
    c = ws.connected(b.ws_port, "bigfrag")
    c.send_frame(ws.BINARY, m.pingreq() * 1024, fin=False)
    for _ in range(3):
        c.send_frame(ws.CONT, m.pingreq() * 1024, fin=False)
    assert c.expect_ws_close() == 1009
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets does not check the opcode sequence")
def test_continuation_without_start_closed_1002(wsb):
    b = wsb()
    c = ws.connected(b.ws_port, "orphan")
    c.send_frame(ws.CONT, m.pingreq())
    assert c.expect_ws_close() == 1002
    still_serves(b)


def test_packet_within_limit_in_pieces_passes(wsb):
    """The 1009 tests can fail: a 4000-byte PUBLISH in 1-KiB fragments is
    under the 4 KiB cap and delivered."""
    b = wsb(args=["--max-packet-size", "4096"])
    c = ws.connected(b.ws_port, "under")
    c.sub([("under/t", 0)])
    data = m.publish("under/t", b"u" * 3980)
    assert len(data) < 4096
    pieces = [data[i:i + 1024] for i in range(0, len(data), 1024)]
    for i, piece in enumerate(pieces):
        c.send_frame(ws.BINARY if i == 0 else ws.CONT, piece, fin=i == len(pieces) - 1)
    assert c.expect(m.PUBLISH).payload == b"u" * 3980
    c.disconnect()


# ---------------------------------------------------------------- upgrades

def refused(b, status, req, needle=None):
    r = ws.upgrade(b.ws_port, req)
    assert r.status == status, r
    assert "sec-websocket-accept" not in r.headers, r
    if needle:
        assert needle.lower() in r.body.decode("latin-1").lower(), r
    return r


@pytest.mark.mosquitto_deviates("libwebsockets serves any path")
def test_wrong_path_404(wsb):
    b = wsb()
    refused(b, 404, ws.request("/elsewhere"))
    refused(b, 404, ws.request("/mqttx"))
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets upgrades without a subprotocol")
def test_no_subprotocol_400(wsb):
    b = wsb()
    refused(b, 400, ws.request(protocols=()), "protocol")
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets closes without an answer")
def test_unknown_subprotocol_400(wsb):
    b = wsb()
    refused(b, 400, ws.request(protocols=("stomp", "chat")), "protocol")
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets upgrades version 8")
def test_version_8_426(wsb):
    b = wsb()
    r = refused(b, 426, ws.request(version="8"))
    assert r.headers.get("sec-websocket-version") == "13", r
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets closes without an answer")
def test_missing_key_400(wsb):
    b = wsb()
    refused(b, 400, ws.request(omit=("Sec-WebSocket-Key",)))
    refused(b, 400, ws.request(key="c2hvcnQ="))  # 5 bytes, not 16
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets upgrades a POST")
def test_not_get_405(wsb):
    b = wsb()
    refused(b, 405, ws.request(method="POST"))
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets closes without an answer")
def test_huge_headers_431(wsb):
    b = wsb()
    refused(b, 431, ws.request(extra=["X-Big-%d: %s" % (i, "a" * 1000) for i in range(20)]))
    still_serves(b)


@pytest.mark.mosquitto_deviates("libwebsockets closes without an answer")
def test_not_http_refused(wsb):
    """An MQTT CONNECT sent to the WebSocket port is no HTTP request."""
    b = wsb()
    r = ws.upgrade(b.ws_port, m.connect("raw") + b"\r\n\r\n")
    assert r.status in (0, 400), r
    still_serves(b)


@pytest.mark.parametrize("proto", ["mqtt", "mqttv3.1"])
def test_subprotocol_echoed(wsb, proto):
    """The legacy `mqttv3.1` (old Paho JavaScript clients) is echoed as
    offered, as is `mqtt`; exactly one value comes back."""
    b = wsb()
    c = ws.WSClient(b.ws_port, protocols=(proto,))
    assert c.protocol == proto
    c.handshake("proto")
    c.disconnect()


@pytest.mark.mosquitto_deviates("libwebsockets refuses mqttv3.1.1 and mqttv5")
@pytest.mark.parametrize("offer,want", [(("mqttv3.1.1",), "mqttv3.1.1"), (("mqttv5",), "mqttv5"),
                                        (("chat", "mqtt", "mqttv5"), "mqtt")])
def test_subprotocol_choice(wsb, offer, want):
    b = wsb()
    c = ws.WSClient(b.ws_port, protocols=offer)
    assert c.protocol == want, c.response
    c.handshake("choice")
    c.disconnect()


@pytest.mark.mosquitto_deviates("libwebsockets has no handshake deadline of its own")
def test_slow_headers_closed_by_handshake_timeout(ward_factory):
    b = start_ward(ward_factory, query="?handshake_timeout=500ms")
    s = ws.connect_sock(b.ws_port)
    req = ws.request()
    s.sendall(req[:20])  # and never the rest
    t0 = time.monotonic()
    assert ws.closed_by_server(s, timeout=5), "a half-sent upgrade request was kept open"
    assert time.monotonic() - t0 < 4
    s.close()
    still_serves(b)


def test_full_request_within_timeout_passes(ward_factory):
    """The timeout test can fail: a request sent in pieces within the
    timeout is upgraded."""
    b = start_ward(ward_factory, query="?handshake_timeout=2s")
    s = ws.connect_sock(b.ws_port)
    req = ws.request()
    for i in range(0, len(req), 40):
        s.sendall(req[i:i + 40])
    r, _ = ws._read_head(s, time.monotonic() + 5)
    assert r is not None and r.status == 101, r
    s.close()


# ---------------------------------------------------------------- configs

def conf_ward(ward_factory, tmp_path, text, port):
    conf = tmp_path / "ward-ws.conf"
    conf.write_text(text)
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert wait_port(port, proc=w.proc, timeout=15), "ward is not listening:\n" + w.read_log()
    return w


def test_nanomq_ws_block(ward_factory, tmp_path):
    """NanoMQ's `listeners.ws { bind = "HOST:PORT/mqtt" }` (the path written
    in bind) loads unchanged and serves there, and only there."""
    port, wport = free_port(), free_port()
    w = conf_ward(ward_factory, tmp_path, 'listeners.tcp { bind = "127.0.0.1:%d" }\n'
                  'listeners.ws { bind = "127.0.0.1:%d/mqtt" }\n' % (port, wport), wport)
    c = ws.connected(wport, "nanomq")
    c.disconnect()
    assert ws.upgrade(wport, ws.request("/ws")).status == 404
    assert w.alive()


def test_nanomq_ws_block_other_path(ward_factory, tmp_path):
    wport = free_port()
    conf_ward(ward_factory, tmp_path, 'listeners.ws { bind = "127.0.0.1:%d/ws/v1" }\n' % wport,
              wport)
    ws.connected(wport, "other", path="/ws/v1").disconnect()
    assert ws.upgrade(wport, ws.request("/mqtt")).status == 404


def test_nanomq_wss_block(ward_factory, tmp_path, pki):
    """NanoMQ's `listeners.wss` with its ssl key names: verify_peer and
    fail_if_no_peer_cert require a client certificate."""
    wport = free_port()
    conf_ward(ward_factory, tmp_path, """
listeners.wss {
    bind = "127.0.0.1:%d/mqtt"
    keyfile = "%s"
    certfile = "%s"
    cacertfile = "%s"
    verify_peer = true
    fail_if_no_peer_cert = true
}
""" % (wport, pki["server_key"], pki["server_crt"], pki["ca"]), wport)
    c = ws.connected(wport, "wss-conf", tls=client_ctx(pki))
    c.sub([("c/t", 1)])
    pub = ws.connected(wport, "wss-pub", tls=client_ctx(pki))
    pub.pub("c/t", b"v", qos=1)
    assert [p.payload for p in c.collect(1)] == [b"v"]
    c.disconnect()
    pub.disconnect()
    with pytest.raises((ssl.SSLError, OSError, AssertionError)):
        ws.connected(wport, "nocert", tls=client_ctx(pki, cert=None))


def test_cli_ws_and_wss(ward_factory, pki):
    """`-l ws://` and `-l wss://` side by side on one broker: a message
    crosses from one to the other."""
    wport, sport = free_port(), free_port()
    w = ward_factory(["-l", "ws://%s:%d/mqtt" % (HOST, wport), "-l",
                      "wss://%s:%d/mqtt" % (HOST, sport), "--certfile", pki["server_crt"],
                      "--keyfile", pki["server_key"]]).start()
    assert wait_port(sport, proc=w.proc) and wait_port(wport, proc=w.proc), w.read_log()
    sub = ws.connected(sport, "secure-sub", v5=True,
                       tls=ssl.create_default_context(cafile=pki["ca"]))
    sub.sub([("x/#", 1)])
    ws.connected(wport, "plain-pub", v5=True).pub("x/y", b"crossed", qos=1)
    assert [p.payload for p in sub.collect(1)] == [b"crossed"]
    sub.disconnect()


# ---------------------------------------------------------------- ward only

def ws_conf(ward_factory, tmp_path, extra):
    wport = free_port()
    w = conf_ward(ward_factory, tmp_path,
                  'listeners.ws { bind = "127.0.0.1:%d/mqtt"\n%s\n}\n' % (wport, extra), wport)
    b = WsBroker()
    b.ws_port, b.alive, b.ward, b.log = wport, w.alive, w, w.read_log
    return b


def test_origin_allow_list(ward_factory, tmp_path):
    b = ws_conf(ward_factory, tmp_path, 'allowed_origins = ["https://console.example"]')
    r = ws.upgrade(b.ws_port, ws.request(origin="https://evil.example"))
    assert r.status == 403, r
    c = ws.WSClient(b.ws_port, req=ws.request(origin="https://console.example"))
    c.handshake("origin-ok")
    c.disconnect()
    c = ws.WSClient(b.ws_port, req=ws.request(origin="HTTPS://Console.Example"))
    c.disconnect()  # scheme and host compare case-insensitively


def test_origin_list_lets_in_clients_without_origin(ward_factory, tmp_path):
    """Only browsers send Origin (RFC 6455 1.6, 10.2): a device without one
    is let in through an allow-list, as nats-server does and as the key's
    documentation says."""
    b = ws_conf(ward_factory, tmp_path, 'allowed_origins = ["https://console.example"]')
    still_serves(b)


def test_no_origin_list_takes_any_origin(ward_factory):
    b = start_ward(ward_factory)
    c = ws.WSClient(b.ws_port, req=ws.request(origin="https://anywhere.example"))
    c.handshake("any-origin")
    c.disconnect()


def test_forwarded_for_from_trusted_proxy(ward_factory, tmp_path):
    """X-Forwarded-For is believed from a trusted proxy only: then the
    client's address in the log is the forwarded one."""
    b = ws_conf(ward_factory, tmp_path, 'trusted_proxies = ["127.0.0.1"]')
    c = ws.WSClient(b.ws_port, headers=["X-Forwarded-For: 203.0.113.7"])
    c.handshake("behind-proxy")
    c.disconnect()
    b.ward.wait_log("client 'behind-proxy' (")  # the logger thread writes it a moment later
    line = [ln for ln in b.log().splitlines() if "'behind-proxy'" in ln and "connected" in ln]
    assert line and "203.0.113.7" in line[0], b.log()
    # A chain: the last entry is what the trusted proxy itself saw; the
    # earlier ones are whatever the client claimed.
    c = ws.WSClient(b.ws_port, headers=["X-Forwarded-For: 198.51.100.9, 203.0.113.8"])
    c.handshake("chained")
    c.disconnect()
    b.ward.wait_log("client 'chained' (")
    line = [ln for ln in b.log().splitlines() if "'chained'" in ln and "connected" in ln]
    assert line and "203.0.113.8" in line[0] and "198.51.100.9" not in line[0], b.log()


def test_forwarded_for_ignored_from_others(ward_factory, tmp_path):
    b = ws_conf(ward_factory, tmp_path, 'trusted_proxies = ["10.9.9.9"]')
    c = ws.WSClient(b.ws_port, headers=["X-Forwarded-For: 203.0.113.7"])
    c.handshake("not-a-proxy")
    c.disconnect()
    b.ward.wait_log("client 'not-a-proxy' (")
    line = [ln for ln in b.log().splitlines() if "'not-a-proxy'" in ln and "connected" in ln]
    assert line and "203.0.113.7" not in line[0] and "127.0.0.1" in line[0], b.log()


def test_refusal_logged_with_escaped_peer_input(ward_factory):
    """A refused upgrade is logged with its status and reason; what the
    peer chose (the path here, with an escape sequence in it) is escaped."""
    b = start_ward(ward_factory)
    r = ws.upgrade(b.ws_port, ws.request("/evil\x1b[31mred"))
    assert r.status in (400, 404), r
    log = b.ward.wait_log("upgrade refused: %d" % r.status, timeout=10)
    assert "\x1b" not in log, log  # (later refusals are rate-limited in the log)
    still_serves(b)


def test_max_header_size_key(ward_factory, tmp_path):
    """max_header_size = 1KB: a 2 KB upgrade request is refused with 431, a
    900-byte one is upgraded."""
    b = ws_conf(ward_factory, tmp_path, "max_header_size = 1KB")
    pad = lambda n: ["X-Pad: " + "p" * (n - len(ws.request()) - 9)]
    assert len(ws.request(extra=pad(2048))) == 2048
    r = ws.upgrade(b.ws_port, ws.request(extra=pad(2048)))
    assert r.status == 431, r
    c = ws.WSClient(b.ws_port, req=ws.request(extra=pad(900)))
    c.handshake("small-head")
    c.disconnect()


def test_max_frame_size_key(ward_factory, tmp_path):
    """max_frame_size = 2KB: a 3000-byte message is closed with 1009 (in
    one frame or in fragments); 2000 bytes pass."""
    b = ws_conf(ward_factory, tmp_path, "max_frame_size = 2KB")
    c = ws.connected(b.ws_port, "fits")
    c.sub([("mf/t", 0)])
    c.send(m.publish("mf/t", b"f" * (2000 - 8)))
    assert len(c.expect(m.PUBLISH).payload) == 2000 - 8
    c.disconnect()
    c = ws.connected(b.ws_port, "too-big")
    c.send(m.publish("mf/t", b"f" * 3000))
    assert c.expect_ws_close() == 1009
    c = ws.connected(b.ws_port, "too-big-frag")
    c.send_frame(ws.BINARY, m.pingreq() * 750, fin=False)  # whole packets: see above
    c.send_frame(ws.CONT, m.pingreq() * 750, fin=False)
    assert c.expect_ws_close() == 1009
    still_serves(b)


def test_same_origin(ward_factory, tmp_path):
    """same_origin: a browser's Origin must name the Host it asked."""
    b = ws_conf(ward_factory, tmp_path, "same_origin = true")
    host = "127.0.0.1:%d" % b.ws_port
    r = ws.upgrade(b.ws_port, ws.request(host=host, origin="http://other.example"))
    assert r.status == 403, r
    c = ws.WSClient(b.ws_port, req=ws.request(host=host, origin="http://" + host))
    c.handshake("same")
    c.disconnect()


def test_browser_recipe_optional_certificate_and_password(ward_factory, pki, tmp_path):
    """docs/websocket.md's recipe: wss with optional client certificates and
    passwords, anonymous refused. A browser (no certificate) gets in with
    its password and not without one; a device presents its certificate."""
    pw = str(tmp_path / "pw.conf")
    r = subprocess.run([WARD, "passwd", pw, "browser"],
                       input="browser-pw\n", text=True, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    b = start_ward(ward_factory, "wss", ["--certfile", pki["server_crt"], "--keyfile",
                                         pki["server_key"], "--cafile", pki["ca"],
                                         "--client-cert", "optional", "--password-file", pw,
                                         "--allow-anonymous", "false"])
    server_only = ssl.create_default_context(cafile=pki["ca"])
    c = ws.WSClient(b.ws_port, tls=server_only)
    c.send(m.connect("browser-1", username="browser", password=b"browser-pw"))
    assert c.expect(m.CONNACK).rc == 0
    c.disconnect()
    c = ws.WSClient(b.ws_port, tls=server_only)
    c.send(m.connect("browser-2"))
    c.expect_refusal(m.CONNACK, (0x05,), required=True)
    c = ws.WSClient(b.ws_port, tls=server_only)
    c.send(m.connect("browser-3", username="browser", password=b"wrong"))
    c.expect_refusal(m.CONNACK, (0x04, 0x05), required=True)
    # A wrong certificate is refused even though certificates are optional.
    with pytest.raises((ssl.SSLError, OSError, AssertionError)):
        ws.connected(b.ws_port, "rogue", tls=client_ctx(pki, "client_rogue"))


# ---------------------------------------------------------------- ward bench --ws

@pytest.mark.parametrize("tls", [None, "server"], ids=["ws", "wss"])
@pytest.mark.parametrize("scenario", ["p2p", "fanin"])
def test_bench_over_websocket(wsb, pki, tls, scenario):
    """`ward bench --ws /mqtt` (the load generator of bench/ws.sh) against
    both brokers: every QoS 1 message arrives once, in order, and was
    acknowledged; in frames of up to 64 KB each way."""
    b = wsb(tls=tls, mosq="max_queued_messages 100000")  # mosquitto drops above 1000
    cmd = [WARD, "bench", scenario, "-p", str(b.ws_port), "--ws", "/mqtt", "-n", "4", "-q", "1",
           "-c", "3000", "-s", "200", "--json"]
    cmd += ["-h", "localhost", "--cafile", pki["ca"]] if tls else ["-h", HOST]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert (d["sent"], d["received"], d["lost"], d["duplicates"], d["acked"]) == (
        12000, 12000, 0, 0, 12000), d


def test_bench_refused_upgrade_named(ward_factory):
    b = start_ward(ward_factory)
    r = subprocess.run([WARD, "bench", "p2p", "-h", HOST, "-p", str(b.ws_port), "--ws",
                        "/wrong", "-n", "1", "-c", "1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "refused the WebSocket upgrade: HTTP/1.1 404" in r.stderr, (
        r.stdout + r.stderr)


def test_bench_connects_over_websocket(wsb):
    """`ward bench conn --ws`: upgrade, CONNECT, CONNACK, DISCONNECT, again;
    no attempt fails on either broker."""
    b = wsb()
    r = subprocess.run([WARD, "bench", "conn", "-h", HOST, "-p", str(b.ws_port), "--ws", "/mqtt",
                        "-n", "4", "-d", "0.5", "--json"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["connects"] >= 20 and d["connect_errors"] == 0, d
