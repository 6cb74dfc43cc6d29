"""NATS over WebSocket (issue 15) with independent clients: Debian's
nats.go 1.22 (ws:// and wss:// built in; tests/integration/nats/goclient.go
and ws/wsnats.go, built at test time), nats.js's `wsconnect` (npm
@nats-io/nats-core, pinned in ws/package.json, on Node 20 with
--experimental-websocket), and hand-made frames (wswire.py).

Differential: each client test runs against Debian's nats-server 2.9 (its
`websocket { }` block) and against ward (`-l nats+ws://`, `nats+wss://`),
beside a plain NATS listener of the same server so messages cross between
the two. The MQTT <-> NATS-over-WebSocket crossings are ward only."""
import json
import os
import subprocess
import types

import pytest

import mqttwire as m
import tls_pki
import wswire as ws
from conftest import NatsServer, free_port, npm_install, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))
WS_DIR = os.path.join(HERE, "ws")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture(params=["nats-server", "ward"])
def wsn(request, tmp_path, ward_factory, pki):
    """`wsn(tls=False)` starts the current kind of server with a NATS
    listener (.nats_url) and a NATS-over-WebSocket one (.url: ws://, or
    wss:// with the server certificate of `pki`; .ws_port). ward also has
    its MQTT listener (.mqtt_port)."""
    kind = request.param
    started = []

    def make(tls=False):
        b = types.SimpleNamespace(kind=kind)
        b.ws_port, nats_port = free_port(), free_port()
        if kind == "nats-server":
            tls_conf = ('tls { cert_file: "%s", key_file: "%s" }' % (pki["server_crt"],
                                                                     pki["server_key"])
                        if tls else "no_tls: true")
            s = NatsServer(tmp_path, 'websocket { listen: "127.0.0.1:%d"\n%s\n}' % (
                b.ws_port, tls_conf), port=nats_port)
            started.append(s)
            assert wait_port(b.ws_port, proc=s.proc), s.read_log()
            b.alive, b.log = s.alive, s.read_log
        else:
            args = ["-l", "nats://127.0.0.1:%d" % nats_port,
                    "-l", "nats+%s://127.0.0.1:%d" % ("wss" if tls else "ws", b.ws_port)]
            if tls:
                args += ["--certfile", pki["server_crt"], "--keyfile", pki["server_key"]]
            w = ward_factory(args).start()
            for p in (nats_port, b.ws_port):
                assert wait_port(p, proc=w.proc, timeout=15), w.read_log()
            b.alive, b.log, b.mqtt_port = w.alive, w.read_log, w.port
        b.url = "%s://%s:%d" % ("wss" if tls else "ws", "localhost" if tls else "127.0.0.1",
                                b.ws_port)
        b.nats_url = "nats://127.0.0.1:%d" % nats_port
        return b

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def go_build(tmp_path_factory):
    """`go_build(path)` builds a Go program against Debian's nats.go once
    per session; returns the executable."""
    out = tmp_path_factory.mktemp("ws-go")
    built = {}

    def build(path):
        if path not in built:
            exe = str(out / os.path.splitext(os.path.basename(path))[0])
            env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
                       GOCACHE=str(out / "gocache"), GOFLAGS="")
            r = subprocess.run(["go", "build", "-o", exe, path], env=env, capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0, "building %s failed:\n%s%s" % (path, r.stdout, r.stderr)
            built[path] = exe
        return built[path]

    return build


def run(cmd, timeout=40, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return r.returncode, r.stdout + r.stderr


def goclient(go_build, url, mode, *extra):
    exe = go_build(os.path.join(HERE, "nats", "goclient.go"))
    return run([exe, "-url", url, "-mode", mode] + list(extra))


def wsnats(go_build):
    return go_build(os.path.join(WS_DIR, "wsnats.go"))


# ---------------------------------------------------------------- nats.go

@pytest.mark.parametrize("mode", ["pubsub", "request", "queue", "drain"])
def test_natsgo_ws(wsn, go_build, mode):
    b = wsn()
    rc, out = goclient(go_build, b.url, mode)
    assert rc == 0 and out.strip().endswith("ok " + mode), out


@pytest.mark.parametrize("mode", ["pubsub", "request"])
def test_natsgo_wss(wsn, go_build, pki, mode):
    b = wsn(tls=True)
    rc, out = goclient(go_build, b.url, mode, "-ca", pki["ca"])
    assert rc == 0 and out.strip().endswith("ok " + mode), out


def test_natsgo_wss_untrusted_server_refused(wsn, go_build, pki):
    """The test above can fail: a client that does not trust the server's
    CA does not connect."""
    b = wsn(tls=True)
    rc, out = goclient(go_build, b.url, "pubsub", "-ca", pki["rogue_ca"])
    assert rc == 1 and "FAIL" in out, out


def test_natsgo_big_message(wsn, go_build):
    """A 600 KB message, many 64 KB frames' worth for some clients: whole,
    on the same connection and from another."""
    b = wsn()
    rc, out = run([wsnats(go_build), "-url", b.url, "-mode", "big", "-subject", "ws.big"])
    assert rc == 0 and "ok big" in out, out


def crossing(go_build, recv_url, send_url, subject="ws.cross", n=5):
    """A nats.go receiver on recv_url (waits for its "ready"), a sender on
    send_url; returns the receiver's output."""
    p = subprocess.Popen([wsnats(go_build), "-url", recv_url, "-mode", "recv", "-subject",
                          subject, "-n", str(n)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        first = p.stdout.readline()
        assert first.strip() == "ready", first + p.stdout.read()
        rc, out = run([wsnats(go_build), "-url", send_url, "-mode", "send", "-subject",
                       subject, "-n", str(n)])
        assert rc == 0, out
        rest, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rest


@pytest.mark.parametrize("direction", ["tcp-to-ws", "ws-to-tcp"])
def test_nats_tcp_ws_crossing(wsn, go_build, direction):
    b = wsn()
    recv, send = (b.url, b.nats_url) if direction == "tcp-to-ws" else (b.nats_url, b.url)
    out = crossing(go_build, recv, send)
    assert out.splitlines() == ["msg ws.cross m%d" % i for i in range(5)] + ["ok recv"], out


# ---------------------------------------------------------------- nats.js

@pytest.fixture(scope="session")
def natsjs_ws(tmp_path_factory):
    """`natsjs_ws(args, env)` runs ws/natsws.mjs on Node with
    --experimental-websocket; the package is installed once per session
    with `npm ci` (a failed install fails the tests)."""
    node, d = npm_install(tmp_path_factory, WS_DIR, "nats.js")

    def go(args, extra_env=None):
        e = dict(os.environ, **(extra_env or {}))
        return run([node, "--experimental-websocket", "--no-warnings",
                    str(d / "natsws.mjs"), json.dumps(args)], env=e)

    return go


def test_natsjs_ws(wsn, natsjs_ws):
    b = wsn()
    rc, out = natsjs_ws({"url": b.url, "count": 50})
    assert rc == 0 and out.startswith("ok"), out


def test_natsjs_wss(wsn, natsjs_ws, pki):
    b = wsn(tls=True)
    rc, out = natsjs_ws({"url": b.url}, {"NODE_EXTRA_CA_CERTS": pki["ca"]})
    assert rc == 0 and out.startswith("ok"), out


# ---------------------------------------------------------------- frames

@pytest.mark.parametrize("path", ["/", "/nats/console"])
def test_info_is_the_first_frame(wsn, path):
    """After the 101 (no subprotocol needed for NATS, any path), the
    server's INFO comes as the first binary frame; a PING in two frames
    gets a PONG."""
    b = wsn()
    c = ws.WSClient(b.ws_port, path=path, protocols=())
    fin, op, payload = c.recv_frame()
    assert op == ws.BINARY and payload.startswith(b"INFO {"), (op, payload)
    c.send(b'CONNECT {"verbose":false,"protocol":1}\r\nPI')
    c.send(b"NG\r\n")
    got = b""
    while b"PONG\r\n" not in got:
        f = c.recv_frame()
        assert f is not None, got
        assert f[1] in (ws.BINARY, ws.CONT), f
        got += f[2]
    assert not got.startswith(b"-ERR"), got


# ---------------------------------------------------------------- ward only

def only_ward(b):
    if b.kind != "ward":
        pytest.skip("ward only: MQTT and NATS in one message space")


def test_mqtt_to_nats_over_ws(wsn, go_build):
    b = wsn()
    only_ward(b)
    p = subprocess.Popen([wsnats(go_build), "-url", b.url, "-mode", "recv", "-subject",
                          "cross.mqtt", "-n", "3"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        pub = m.connected(b.mqtt_port, "mqtt-pub")
        for i in range(3):
            pub.pub("cross/mqtt", b"from mqtt %d" % i, qos=1)
        pub.disconnect()
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert out.splitlines() == ["msg cross.mqtt from mqtt %d" % i for i in range(3)] + [
        "ok recv"], out


def test_nats_over_ws_to_mqtt(wsn, go_build):
    b = wsn()
    only_ward(b)
    sub = m.connected(b.mqtt_port, "mqtt-sub")
    sub.sub([("cross/nats", 1)])
    rc, out = run([wsnats(go_build), "-url", b.url, "-mode", "send", "-subject", "cross.nats",
                   "-n", "3"])
    assert rc == 0, out
    got = sub.collect(3)
    assert [(p.topic, p.payload) for p in got] == [("cross/nats", b"m%d" % i) for i in range(3)]
    sub.disconnect()


def test_nats_ws_config_block(ward_factory, tmp_path, go_build):
    """nats-server's option names: `listeners.nats_ws { bind no_tls
    compression }` (compression accepted, not negotiated)."""
    port = free_port()
    conf = tmp_path / "ward-natsws.conf"
    conf.write_text('listeners.nats_ws { bind = "127.0.0.1:%d"\nno_tls = true\n'
                    'compression = true\n}\n' % port)
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert wait_port(port, proc=w.proc, timeout=15), w.read_log()
    rc, out = goclient(go_build, "ws://127.0.0.1:%d" % port, "request")
    assert rc == 0 and out.strip().endswith("ok request"), out


def test_nats_ws_text_frame_refused(wsn):
    """ward takes binary frames only on NATS too: a text frame is closed
    with 1003, and the server still serves."""
    b = wsn()
    only_ward(b)
    c = ws.WSClient(b.ws_port, path="/", protocols=())
    assert c.recv_frame()[2].startswith(b"INFO")
    c.send_frame(ws.TEXT, b"PING\r\n")
    assert c.expect_ws_close() == 1003
    c2 = ws.WSClient(b.ws_port, path="/", protocols=())
    assert c2.recv_frame()[2].startswith(b"INFO")


def test_nats_ws_config_tls_and_token(ward_factory, tmp_path, go_build, pki):
    """docs/websocket.md's secure block: `listeners.nats_ws.NAME { listen
    tls { cert_file key_file } authorization { token } }` serves wss:// and
    holds clients to the token."""
    port = free_port()
    conf = tmp_path / "ward-natswss.conf"
    conf.write_text('listeners.nats_ws.secure {\n  listen = "127.0.0.1:%d"\n'
                    '  tls { cert_file = "%s", key_file = "%s" }\n'
                    '  authorization { token = "s3cr3t" }\n}\n'
                    % (port, pki["server_crt"], pki["server_key"]))
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert wait_port(port, proc=w.proc, timeout=15), w.read_log()
    url = "wss://localhost:%d" % port
    rc, out = goclient(go_build, url, "request", "-ca", pki["ca"], "-token", "s3cr3t")
    assert rc == 0 and out.strip().endswith("ok request"), out
    rc, out = goclient(go_build, url, "request", "-ca", pki["ca"], "-token", "wrong")
    assert rc == 1 and "FAIL" in out and "uthorization" in out, out
    rc, out = goclient(go_build, "ws://127.0.0.1:%d" % port, "request")
    assert rc == 1, out  # plain ws:// to a wss listener
