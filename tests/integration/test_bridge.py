"""Bridges (bridges.mqtt.NAME) from an edge ward to real upstreams on
loopback, over mutual TLS: Debian's mosquitto (require_certificate), the MQTT
listener of nats-server (tls { verify: true }) and another ward. Messages go
both ways between independent clients on each side (paho, mosquitto_pub/sub,
ward pub/sub); failures (wrong CA, wrong host name, expired or revoked bridge
certificate, refused authentication) are logged with their cause, shown in
$SYS/broker/bridge/NAME and make no connection; the upstream killed in the
middle of a QoS 1 stream loses nothing; the offline queue is bounded; the
bridge's certificate is rotated on SIGHUP.

The PKI is made at test time by tls_pki.py (never committed)."""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

import tls_pki
from conftest import WARD, free_port, wait_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


# ---- clients ---------------------------------------------------------------

class Client:
    """A paho client (3.1.1 or 5) that keeps every message it receives and
    the latest payload of every topic."""

    def __init__(self, port, cid, pki=None, cert=None, v5=False, clean=True, host="127.0.0.1",
                 creds=None, insecure=False):
        self.port, self.host = port, host
        if v5:
            self.c = paho.Client(cid, protocol=paho.MQTTv5)
        else:
            self.c = paho.Client(cid, clean_session=clean, protocol=paho.MQTTv311)
        if pki is not None:
            self.c.tls_set(ca_certs=pki["ca"], certfile=pki[cert + "_crt"] if cert else None,
                           keyfile=pki[cert + "_key"] if cert else None)
            if insecure:
                self.c.tls_insecure_set(True)
        if creds:
            self.c.username_pw_set(*creds)
        self.lock = threading.Lock()
        self.msgs = []
        self.latest = {}
        self.rc = None
        self.acked = set()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self._ack(a[2])
        self.c.on_publish = lambda c, u, mid: self._ack(mid)
        self.c.on_disconnect = self._on_disconnect
        self.connected = threading.Event()

    def _on_connect(self, *a):
        rc = a[3]
        self.rc = rc
        if rc == 0:
            self.connected.set()

    def _on_disconnect(self, *a):
        self.connected.clear()

    def _ack(self, mid):
        with self.lock:
            self.acked.add(mid)

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, m.payload.decode("utf-8", "replace"), m.qos, m.retain))
            self.latest[m.topic] = m.payload.decode("utf-8", "replace")

    def connect(self, timeout=10.0):
        self.c.connect(self.host, self.port, keepalive=30)
        self.c.loop_start()
        if not self.connected.wait(timeout):
            self.close()
            raise AssertionError("client could not connect to %s:%d (rc %r)"
                                 % (self.host, self.port, self.rc))
        return self

    def _wait_mid(self, mid, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if mid in self.acked:
                    return
            time.sleep(0.01)
        raise AssertionError("no %s acknowledgement within %ss" % (what, timeout))

    def sub(self, topic, qos=1, timeout=10.0, **kw):
        rc, mid = self.c.subscribe(topic, qos, **kw)
        assert rc == 0, rc
        self._wait_mid(mid, timeout, "SUBSCRIBE")
        return self

    def pub(self, topic, payload, qos=1, retain=False, wait=True, timeout=10.0):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        if wait and qos > 0:
            self._wait_mid(info.mid, timeout, "PUBLISH")
        return info

    def got(self, topic=None):
        with self.lock:
            return [m for m in self.msgs if topic is None or m[0] == topic]

    def wait_for(self, pred, timeout=10.0, what="messages"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if pred(self.msgs):
                    return list(self.msgs)
            time.sleep(0.02)
        raise AssertionError("timed out waiting for %s; got %r" % (what, self.got()))

    def wait_count(self, topic, n, timeout=10.0):
        return self.wait_for(lambda ms: sum(1 for m in ms if m[0] == topic) >= n, timeout,
                             "%d message(s) on %s" % (n, topic))

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


class SysWatch(Client):
    """Follows $SYS/broker/bridge/NAME/# on the edge."""

    def __init__(self, port, name):
        super().__init__(port, "sys-watch-%s-%d" % (name, os.getpid()))
        self.name = name
        self.connect()
        self.sub("$SYS/broker/bridge/%s/#" % name, 0)

    def value(self, key):
        with self.lock:
            return self.latest.get("$SYS/broker/bridge/%s/%s" % (self.name, key))

    def values(self):
        pre = "$SYS/broker/bridge/%s/" % self.name
        with self.lock:
            return {k[len(pre):]: v for k, v in self.latest.items() if k.startswith(pre)}

    def wait(self, pred, timeout=10.0, what="$SYS values"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.values()
            try:
                if pred(v):
                    return v
            except (KeyError, ValueError, TypeError):
                pass
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s: %r" % (what, self.values()))


def mosq_cmd(tool, port, pki=None, cert="client_rsa", host="localhost"):
    cmd = [tool, "-h", host, "-p", str(port)]
    if pki is not None:
        cmd += ["--cafile", pki["ca"], "--cert", pki[cert + "_crt"], "--key", pki[cert + "_key"]]
    return cmd


def mosq_pub(port, topic, msg, pki=None, cert="client_rsa", qos=1, retain=False, v="mqttv311"):
    cmd = mosq_cmd("mosquitto_pub", port, pki, cert) + ["-V", v, "-q", str(qos), "-t", topic,
                                                        "-m", msg]
    if retain:
        cmd.append("-r")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr


class MosqSub:
    """mosquitto_sub in the background: `-v` lines "topic payload"."""

    def __init__(self, port, topic, pki=None, cert="client_rsa", qos=1, timeout=30):
        cmd = mosq_cmd("mosquitto_sub", port, pki, cert) + ["-V", "mqttv311", "-q", str(qos),
                                                            "-t", topic, "-v", "-W",
                                                            str(timeout), "-i",
                                                            "msub-%d" % free_port()]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def wait(self, line, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if line in self.lines:
                    return list(self.lines)
            if self.proc.poll() is not None and not self.t.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError("mosquitto_sub did not get %r; got %r (stderr %r)"
                             % (line, self.lines, self.stop()))

    def count(self, line):
        with self.lock:
            return self.lines.count(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
            err = ""
        return err


def ward_pub(port, topic, msg, qos=1, retain=False, pki=None, cert="client_obs"):
    cmd = [WARD, "pub", "-h", "localhost" if pki else "127.0.0.1", "-p", str(port), "-t", topic,
           "-m", msg, "-q", str(qos)]
    if retain:
        cmd.append("-r")
    if pki is not None:
        cmd += ["--cafile", pki["ca"], "--cert", pki[cert + "_crt"], "--key", pki[cert + "_key"]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- brokers ----------------------------------------------------------------

def _val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v)


def _rule(r):
    return "    {\n" + "".join("      %s = %s\n" % (k, _val(v)) for k, v in r.items()) + "    }\n"


def bridge_block(name, server, ssl=None, forwards=(), subscription=(), **keys):
    keys.setdefault("backoff_max", "2s")
    keys.setdefault("keepalive", "10s")
    keys.setdefault("connect_timeout", "3s")
    out = "bridges.mqtt.%s {\n  server = %s\n" % (name, _val(server))
    out += "".join("  %s = %s\n" % (k, _val(v)) for k, v in keys.items())
    if ssl:
        out += "  ssl {\n" + "".join("    %s = %s\n" % (k, _val(v))
                                     for k, v in ssl.items()) + "  }\n"
    if forwards:
        out += "  forwards = [\n" + "".join(_rule(r) for r in forwards) + "  ]\n"
    if subscription:
        out += "  subscription = [\n" + "".join(_rule(r) for r in subscription) + "  ]\n"
    return out + "}\n"


def mtls_ssl(pki, cert="client", ca="ca", **extra):
    s = {"cacertfile": pki[ca], "certfile": pki[cert + "_crt"], "keyfile": pki[cert + "_key"]}
    s.update(extra)
    return s


def start_edge(ward_factory, tmp_path, *blocks, name="edge"):
    port = free_port()
    conf = tmp_path / ("%s-%d.conf" % (name, port))
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\nmqtt { sys_interval = 1s }\n%s'
                    % (port, "".join(blocks)))
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    if not wait_port(port, proc=w.proc):
        raise AssertionError("edge did not start:\n" + w.read_log())
    w.conf = conf
    return w


def start_ward_up(ward_factory, pki, port=None, cert="server", scheme="mtls", crl=True,
                  extra=()):
    port = port or free_port()
    args = ["-l", "%s://127.0.0.1:%d" % (scheme, port), "--certfile", pki[cert + "_crt"],
            "--keyfile", pki[cert + "_key"], "--cafile", pki["ca"]]
    if crl:
        args += ["--crlfile", pki["crl"]]
    w = ward_factory(args + list(extra), port=port, listen=False)
    return restart(w)


def restart(w):
    w.start(wait=False)
    if not wait_port(w.port, proc=w.proc):
        raise AssertionError("upstream ward did not start:\n" + w.read_log())
    return w


def kill(w):
    """SIGKILL, as a crash: nothing is flushed, no DISCONNECT sent."""
    w.proc.kill()
    w.proc.wait(timeout=10)
    w.proc = None
    w.log.close()


def mosquitto_mtls(mosquitto_factory, tmp_path, pki, crl=False):
    log = str(tmp_path / ("mosq-%d.log" % free_port()))
    extra = ("user root\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n"
             "use_identity_as_username true\nlog_dest file %s\nlog_type all\n%s"
             % (pki["ca_bundle"], pki["server_crt"], pki["server_key"], log,
                "crlfile %s\n" % pki["crl"] if crl else ""))
    m = mosquitto_factory(extra)
    m.log_path = log
    return m


@pytest.fixture
def nats_factory(tmp_path):
    procs = []

    def make(pki):
        port, mport = free_port(), free_port()
        store = tmp_path / ("js-%d" % port)
        store.mkdir()
        conf = tmp_path / ("nats-%d.conf" % port)
        conf.write_text(
            'server_name: "hub-%d"\nlisten: "127.0.0.1:%d"\njetstream { store_dir: "%s" }\n'
            'mqtt {\n  listen: "127.0.0.1:%d"\n  tls {\n    cert_file: "%s"\n'
            '    key_file: "%s"\n    ca_file: "%s"\n    verify: true\n  }\n}\n'
            % (port, port, store, mport, pki["server_crt"], pki["server_key"], pki["ca"]))
        log = open(str(tmp_path / ("nats-%d.log" % port)), "wb")
        proc = subprocess.Popen(["nats-server", "-c", str(conf)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append((proc, log))
        assert wait_port(mport, proc=proc, timeout=15), "nats-server did not start"
        return mport

    yield make
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_quiet(seconds=1.0):
    """Time for a message that should not arrive to arrive anyway."""
    time.sleep(seconds)


def assert_edge_serves(edge):
    """The edge goes on serving its local clients whatever the bridge does."""
    s = Client(edge.port, "local-check-sub").connect()
    p = Client(edge.port, "local-check-pub").connect()
    try:
        s.sub("local/check", 1)
        p.pub("local/check", "still-here", 1)
        s.wait_count("local/check", 1, 5)
    finally:
        s.close()
        p.close()
    assert edge.alive()


# ---- (1) to mosquitto over mTLS, MQTT 3.1.1 with the bridge flag -----------

def test_mosquitto_mtls_both_ways_remapped_no_loop(pki, tmp_path, ward_factory,
                                                   mosquitto_factory):
    m = mosquitto_mtls(mosquitto_factory, tmp_path, pki)
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "mosq", "tls+mqtt-tcp://localhost:%d" % m.port, proto_ver=4, clientid="edge-mosq",
        ssl=mtls_ssl(pki),
        forwards=[{"local_topic": "edge/out/#", "remote_topic": "cloud/in/#", "qos": 1},
                  {"local_topic": "loop/#", "remote_topic": "loop/#", "qos": 1}],
        subscription=[{"remote_topic": "cloud/out/#", "local_topic": "edge/in/#", "qos": 1},
                      {"remote_topic": "loop/#", "local_topic": "loop/#", "qos": 1}]))
    log = edge.wait_log("bridge mosq: connected to localhost:%d" % m.port, 10)
    assert "MQTT 3.1.1 bridge" in log, log
    sysw = SysWatch(edge.port, "mosq")
    up_sub = MosqSub(m.port, "#", pki)
    edge_sub = Client(edge.port, "edge-sub").connect().sub("edge/in/#").sub("loop/#")
    edge_pub = Client(edge.port, "edge-pub").connect()
    try:
        sysw.wait(lambda v: v["state"] == "connected" and v["connected"] == "1", 5)
        time.sleep(0.5)  # mosquitto_sub has subscribed
        # Edge -> upstream, remapped, at QoS 1 (paho on the edge, mosquitto_sub upstream).
        edge_pub.pub("edge/out/sensor/1", "t=21", 1)
        up_sub.wait("cloud/in/sensor/1 t=21")
        # Upstream -> edge, remapped (mosquitto_pub upstream, paho on the edge).
        mosq_pub(m.port, "cloud/out/cmd/7", "reboot", pki)
        got = edge_sub.wait_count("edge/in/cmd/7", 1)
        assert [g for g in got if g[0] == "edge/in/cmd/7"] == [("edge/in/cmd/7", "reboot", 1,
                                                                 False)]
        # No loop where forwards and subscription overlap: up and not back down...
        edge_pub.pub("loop/e", "from-edge", 1)
        up_sub.wait("loop/e from-edge")
        edge_sub.wait_count("loop/e", 1)
        # ... and down and not back up.
        mosq_pub(m.port, "loop/u", "from-cloud", pki)
        edge_sub.wait_count("loop/u", 1)
        up_sub.wait("loop/u from-cloud")
        wait_quiet(1.5)
        assert len(edge_sub.got("loop/e")) == 1, edge_sub.got()
        assert len(edge_sub.got("loop/u")) == 1, edge_sub.got()
        assert up_sub.count("loop/e from-edge") == 1, up_sub.lines
        assert up_sub.count("loop/u from-cloud") == 1, up_sub.lines
        # Not remapped the wrong way: nothing leaks under the local names upstream.
        assert not [l for l in up_sub.lines if l.startswith("edge/")], up_sub.lines
        v = sysw.wait(lambda v: int(v["messages/sent"]) >= 2 and
                      int(v["messages/received"]) >= 2, 5)
        assert v["server"].endswith("localhost:%d" % m.port), v
        assert v["since"][:2] == "20" and v["since"].endswith("Z"), v
        assert v["last_error"] == "", v
        assert v["connects"] == "1" and v["queued"] == "0" and v["messages/dropped"] == "0", v
        # mosquitto saw the bridge's certificate as its user name.
        mlog = open(m.log_path).read()
        assert "u'device-1'" in mlog or "device-1" in mlog, mlog[-3000:]
    finally:
        up_sub.stop()
        for c in (sysw, edge_sub, edge_pub):
            c.close()


# ---- (2) to nats-server's MQTT listener with tls { verify: true } ----------

@pytest.mark.parametrize("try_private", [True, False], ids=["fallback", "no-bridge-flag"])
def test_nats_mqtt_tls_verify_both_ways(pki, tmp_path, ward_factory, nats_factory, try_private):
    mport = nats_factory(pki)
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "nats", "mqtts://127.0.0.1:%d" % mport, proto_ver=4, clientid="edge-nats",
        ssl=mtls_ssl(pki), try_private=try_private,
        forwards=[{"local_topic": "edge/out/#", "remote_topic": "nats/in/#", "qos": 1}],
        subscription=[{"remote_topic": "nats/out/#", "local_topic": "edge/in/#", "qos": 1}]))
    # nats-server does not know the 3.1.1 bridge flag: the bridge falls back.
    log = edge.wait_log("bridge nats: connected to 127.0.0.1:%d" % mport, 20)
    if try_private:
        assert "retrying without" in log, log
    else:
        assert "retrying without" not in log and "cannot connect" not in log, log
    sysw = SysWatch(edge.port, "nats")
    up = Client(mport, "nats-side", pki, "client_rsa", host="localhost").connect(10)
    edge_sub = Client(edge.port, "edge-sub").connect().sub("edge/in/#")
    try:
        up.sub("nats/in/#", 1)
        sysw.wait(lambda v: v["state"] == "connected", 5)
        # The bridge's SUBSCRIBE upstream has been granted before we publish.
        edge.wait_log("bridge nats: connected", 1)
        time.sleep(0.5)
        ward_pub(edge.port, "edge/out/a/b", "hello-nats", 1)
        got = up.wait_count("nats/in/a/b", 1, 10)
        assert ("nats/in/a/b", "hello-nats", 1, False) in got, got
        mosq_pub(mport, "nats/out/x", "hello-edge", pki)
        got = edge_sub.wait_count("edge/in/x", 1, 10)
        assert ("edge/in/x", "hello-edge", 1, False) in got, got
        for i in range(20):  # a short QoS 1 stream, in order
            up.pub("nats/out/seq", str(i), 1)
        got = edge_sub.wait_count("edge/in/seq", 20, 15)
        assert [int(m[1]) for m in got if m[0] == "edge/in/seq"][:20] == list(range(20))
        sysw.wait(lambda v: int(v["messages/received"]) >= 21 and
                  int(v["messages/sent"]) >= 1, 5)
    finally:
        for c in (sysw, up, edge_sub):
            c.close()


# ---- (3) to another ward over mTLS, MQTT 5 and 3.1.1 -----------------------

@pytest.mark.parametrize("ver", [5, 4])
def test_ward_to_ward_mtls(pki, tmp_path, ward_factory, ver):
    up = start_ward_up(ward_factory, pki)
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "hub", "tls+mqtt-tcp://localhost:%d" % up.port, proto_ver=ver, clientid="edge-%d" % ver,
        ssl=mtls_ssl(pki),
        forwards=[{"local_topic": "tele/#", "remote_topic": "", "prefix": "site1/",
                   "suffix": "/raw", "qos": 1},
                  {"local_topic": "state/#", "remote_topic": "fleet/state/#", "qos": 1,
                   "retain": True},
                  {"local_topic": "q0/#", "remote_topic": "fleet/q0/#", "qos": 0},
                  {"local_topic": "sync/#", "remote_topic": "sync/#", "qos": 1}],
        subscription=[{"remote_topic": "cmd/site1/#", "local_topic": "cmd/#", "qos": 1,
                       "retain_as_published": True},
                      {"remote_topic": "sync/#", "local_topic": "sync/#", "qos": 1},
                      {"remote_topic": "cfg/#", "local_topic": "cfg/#", "qos": 1,
                       "retain": True}]))
    log = edge.wait_log("bridge hub: connected to localhost:%d" % up.port, 10)
    assert ("MQTT 5.0" if ver == 5 else "MQTT 3.1.1") in log, log
    up.wait_log("connected: MQTT %s" % ("5.0" if ver == 5 else "3.1.1 (bridge)"), 5)
    sysw = SysWatch(edge.port, "hub")
    up_sub = Client(up.port, "up-sub", pki, "client_obs", v5=True, host="localhost").connect()
    edge_sub = Client(edge.port, "edge-sub", v5=True).connect()
    edge_pub = Client(edge.port, "edge-pub").connect()
    try:
        up_sub.sub("site1/#", 2).sub("fleet/#", 2)
        edge_sub.sub("cmd/#", 2)
        sysw.wait(lambda v: v["state"] == "connected", 5)
        time.sleep(0.3)
        # prefix and suffix around the unchanged topic, QoS 1 kept.
        edge_pub.pub("tele/temp", "20.5", 1)
        got = up_sub.wait_count("site1/tele/temp/raw", 1)
        assert ("site1/tele/temp/raw", "20.5", 1, False) in got, got
        # The rule's QoS 0 is used upstream.
        edge_pub.pub("q0/x", "zero", 1)
        got = up_sub.wait_count("fleet/q0/x", 1)
        assert ("fleet/q0/x", "zero", 0, False) in got, got
        # retain = true forces RETAIN upstream: a later subscriber gets it retained.
        edge_pub.pub("state/door", "open", 1, retain=False)
        up_sub.wait_count("fleet/state/door", 1)
        late = Client(up.port, "up-late", pki, "client_obs2", host="localhost").connect()
        try:
            late.sub("fleet/state/#", 1)
            got = late.wait_count("fleet/state/door", 1, 5)
            assert got[0][1:] == ("open", 1, True), got
        finally:
            late.close()
        # Down, remapped; retained as published (MQTT 5 upstreams only).
        ward_pub(up.port, "cmd/site1/valve", "close", 1, retain=True, pki=pki)
        ward_pub(up.port, "cmd/site1/pump", "start", 1, retain=False, pki=pki)
        got = edge_sub.wait_count("cmd/valve", 1)
        edge_sub.wait_count("cmd/pump", 1)
        assert ("cmd/valve", "close") in [m[:2] for m in got], got
        # retain = true forces RETAIN here whatever the upstream says.
        ward_pub(up.port, "cfg/rate", "10", 1, retain=False, pki=pki)
        sysw.wait(lambda v: int(v["messages/received"]) >= 3, 5)
        late = Client(edge.port, "edge-late").connect()
        try:
            late.sub("cmd/#", 1).sub("cfg/#", 1)
            wait_quiet(1.0)
            got = late.got()
            assert ("cfg/rate", "10", 1, True) in got, got
            assert not [m for m in got if m[0] == "cmd/pump"], got
            if ver == 5:
                assert ("cmd/valve", "close", 1, True) in got, got
        finally:
            late.close()
        # Overlapping forwards and subscription: no loop (MQTT 5 No Local, or
        # the 3.1.1 bridge flag that ward honours), each message once per side.
        up_sub.sub("sync/#", 1)
        edge_sub.sub("sync/#", 1)
        edge_pub.pub("sync/e", "from-edge", 1)
        ward_pub(up.port, "sync/u", "from-hub", 1, pki=pki)
        up_sub.wait_count("sync/e", 1)
        up_sub.wait_count("sync/u", 1)
        edge_sub.wait_count("sync/e", 1)
        edge_sub.wait_count("sync/u", 1)
        wait_quiet(1.5)
        for c in (up_sub, edge_sub):
            assert len(c.got("sync/e")) == 1 and len(c.got("sync/u")) == 1, c.got()
        v = sysw.wait(lambda v: int(v["messages/sent"]) >= 4, 5)
        assert v["messages/dropped"] == "0" and v["last_error"] == "", v
        assert v["messages/sent"] == "4", v  # tele, q0, state, sync/e: nothing bounced
        assert v["messages/received"] == "4", v  # valve, pump, rate, sync/u
    finally:
        for c in (sysw, up_sub, edge_sub, edge_pub):
            c.close()


def test_several_bridges_at_once(pki, tmp_path, ward_factory, mosquitto_factory):
    """Two upstreams (a ward and a mosquitto) served by one edge, each with
    its own $SYS status."""
    up = start_ward_up(ward_factory, pki)
    m = mosquitto_mtls(mosquitto_factory, tmp_path, pki)
    edge = start_edge(ward_factory, tmp_path,
                      bridge_block("a", "tls+mqtt-tcp://127.0.0.1:%d" % up.port, proto_ver=5,
                                   ssl=mtls_ssl(pki),
                                   forwards=[{"local_topic": "both/#", "remote_topic": "",
                                              "qos": 1}]),
                      bridge_block("b", "tls+mqtt-tcp://localhost:%d" % m.port, proto_ver=4,
                                   ssl=mtls_ssl(pki),
                                   forwards=[{"local_topic": "both/#", "remote_topic": "",
                                              "qos": 1}]))
    edge.wait_log("bridge a: connected to", 10)
    edge.wait_log("bridge b: connected to", 10)
    wa, wb = SysWatch(edge.port, "a"), SysWatch(edge.port, "b")
    sa = Client(up.port, "sa", pki, "client_obs", host="localhost").connect().sub("both/#")
    sb = MosqSub(m.port, "both/#", pki)
    try:
        wa.wait(lambda v: v["state"] == "connected", 5)
        wb.wait(lambda v: v["state"] == "connected", 5)
        time.sleep(0.5)
        ward_pub(edge.port, "both/x", "fan-out", 1)
        sa.wait_count("both/x", 1)
        sb.wait("both/x fan-out")
        wa.wait(lambda v: v["messages/sent"] == "1", 5)
        wb.wait(lambda v: v["messages/sent"] == "1", 5)
    finally:
        sb.stop()
        for c in (wa, wb, sa):
            c.close()


# ---- (4) failures: each logged with its cause, no connection made ----------

FAILURES = [
    # id, upstream options, edge ssl/bridge options, cause in the log and in last_error
    ("wrong-ca", {}, {"ca": "rogue_ca"}, "unknown CA"),
    ("wrong-host", {"cert": "server_wrong"}, {}, "does not name '127.0.0.1'"),
    ("expired-cert", {}, {"cert": "client_expired"}, "certificate expired"),
    ("revoked-cert", {}, {"cert": "client_revoked"}, "certificate revoked"),
    # OpenSSL's server answers a certificate not yet valid with bad_certificate.
    ("not-yet-valid", {}, {"cert": "client_notyet"}, "bad certificate"),
    ("bad-password", {"auth": True}, {"password": "wrong"}, "bad user name or password"),
]


@pytest.mark.parametrize("case, upopt, edgeopt, cause", FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_logged_with_cause(pki, tmp_path, ward_factory, case, upopt, edgeopt, cause):
    extra = []
    scheme = "mtls"
    if upopt.get("auth"):
        pw = str(tmp_path / "pw.conf")
        r = subprocess.run([WARD, "passwd", pw, "edge"], input="right\n", text=True,
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        extra = ["--password-file", pw, "--allow-anonymous", "false"]
        scheme = "tls"
    up = start_ward_up(ward_factory, pki, cert=upopt.get("cert", "server"), scheme=scheme,
                       extra=extra)
    keys = {}
    if "password" in edgeopt:
        keys = {"username": "edge", "password": edgeopt["password"]}
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "up", "tls+mqtt-tcp://127.0.0.1:%d" % up.port, proto_ver=5,
        ssl=mtls_ssl(pki, cert=edgeopt.get("cert", "client"), ca=edgeopt.get("ca", "ca")),
        forwards=[{"local_topic": "f/#", "remote_topic": "", "qos": 1}], **keys))
    sysw = SysWatch(edge.port, "up")
    obs = Client(up.port, "obs", pki, "client_obs", host="localhost", insecure=True,
                 creds=("edge", "right") if upopt.get("auth") else None).connect().sub("f/#")
    try:
        log = edge.wait_log("bridge up: cannot connect to 127.0.0.1:%d: " % up.port, 10)
        line = [l for l in log.splitlines() if "bridge up: cannot connect" in l][0]
        assert cause in line, log
        v = sysw.wait(lambda v: cause in v["last_error"], 5, "last_error naming " + cause)
        assert v["state"] == "disconnected" and v["connected"] == "0", v
        assert v["connects"] == "0", v
        # It keeps retrying (backoff_max 2 s), still with the same cause.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            lines = [l for l in edge.read_log().splitlines() if "bridge up: cannot connect" in l]
            if len(lines) >= 2:
                break
            time.sleep(0.1)
        assert len(lines) >= 2 and all(cause in l for l in lines), lines
        assert "bridge up: connected" not in edge.read_log()
        # No connection was made: nothing published here reaches the upstream.
        ward_pub(edge.port, "f/x", "must-not-arrive", 1)
        assert_edge_serves(edge)
        wait_quiet(1.0)
        assert obs.got() == []
        # The message waits in the broker's stored session $bridge/up (the
        # bridge's local side is away while the link is down), not in the
        # bridge's own queue.
        v = sysw.wait(lambda v: v["state"] == "disconnected", 5)
        assert v["connects"] == "0" and v["queued"] == "0", v
        uplog = up.read_log()
        assert not [l for l in uplog.splitlines() if "client 'up'" in l and "connected:" in l
                    and "refused" not in l], uplog
    finally:
        sysw.close()
        obs.close()


def test_wrong_host_connects_with_verify_off(pki, tmp_path, ward_factory):
    """The same server certificate for another host, with ssl.verify = false:
    the chain is still checked, the name is not, and the link comes up."""
    up = start_ward_up(ward_factory, pki, cert="server_wrong")
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "up", "tls+mqtt-tcp://127.0.0.1:%d" % up.port, proto_ver=5,
        ssl=mtls_ssl(pki, verify=False),
        forwards=[{"local_topic": "f/#", "remote_topic": "", "qos": 1}]))
    edge.wait_log("bridge up: connected to 127.0.0.1:%d" % up.port, 10)
    sysw = SysWatch(edge.port, "up")
    obs = Client(up.port, "obs", pki, "client_obs", insecure=True).connect().sub("f/#")
    try:
        sysw.wait(lambda v: v["state"] == "connected" and v["last_error"] == "", 5)
        time.sleep(0.3)
        ward_pub(edge.port, "f/x", "ok", 1)
        obs.wait_count("f/x", 1)
    finally:
        sysw.close()
        obs.close()


def test_mosquitto_refuses_revoked_bridge_cert(pki, tmp_path, ward_factory, mosquitto_factory):
    m = mosquitto_mtls(mosquitto_factory, tmp_path, pki, crl=True)
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "mosq", "tls+mqtt-tcp://localhost:%d" % m.port, proto_ver=4,
        ssl=mtls_ssl(pki, cert="client_revoked"),
        forwards=[{"local_topic": "f/#", "remote_topic": "", "qos": 1}]))
    sysw = SysWatch(edge.port, "mosq")
    try:
        log = edge.wait_log("bridge mosq: cannot connect to localhost:%d: " % m.port, 10)
        line = [l for l in log.splitlines() if "bridge mosq: cannot connect" in l][0]
        assert "certificate revoked" in line, log
        v = sysw.wait(lambda v: "certificate revoked" in v["last_error"], 5)
        assert v["state"] == "disconnected" and v["connects"] == "0", v
        assert_edge_serves(edge)
    finally:
        sysw.close()


def test_bridge_flag_kept_after_a_refused_certificate(pki, tmp_path, ward_factory,
                                                     mosquitto_factory):
    """mosquitto refuses the bridge's expired certificate; the certificate is
    renewed (SIGHUP): the bridge then connects with the 3.1.1 bridge flag
    still on (a refused certificate is not a refused flag), so that
    overlapping forwards and subscription do not loop."""
    crt, key = str(tmp_path / "bridge.crt"), str(tmp_path / "bridge.key")
    shutil.copy(pki["client_expired_crt"], crt)
    shutil.copy(pki["client_expired_key"], key)
    m = mosquitto_mtls(mosquitto_factory, tmp_path, pki)
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "mosq", "tls+mqtt-tcp://localhost:%d" % m.port, proto_ver=4,
        ssl={"cacertfile": pki["ca"], "certfile": crt, "keyfile": key},
        forwards=[{"local_topic": "loop/#", "remote_topic": "", "qos": 1}],
        subscription=[{"remote_topic": "loop/#", "local_topic": "", "qos": 1}]))
    edge.wait_log("bridge mosq: cannot connect to", 10)
    for src, dst in ((pki["client_crt"], crt), (pki["client_key"], key)):
        shutil.copy(src, dst + ".new")
        os.replace(dst + ".new", dst)
    edge.signal(signal.SIGHUP)
    log = edge.wait_log("bridge mosq: connected to", 10)
    line = [l for l in log.splitlines() if "bridge mosq: connected to" in l][0]
    assert "MQTT 3.1.1 bridge" in line, log
    sub = Client(edge.port, "loop-sub").connect().sub("loop/#")
    try:
        time.sleep(0.5)
        ward_pub(edge.port, "loop/x", "once", 1)
        sub.wait_count("loop/x", 1)
        wait_quiet(1.5)
        assert len(sub.got("loop/x")) == 1, sub.got()
    finally:
        sub.close()


# ---- (5) the upstream killed and restarted in a QoS 1 stream ---------------

def test_upstream_killed_mid_stream_nothing_lost(pki, tmp_path, ward_factory):
    up = start_ward_up(ward_factory, pki)
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "hub", "tls+mqtt-tcp://127.0.0.1:%d" % up.port, proto_ver=5, clientid="edge-stream",
        ssl=mtls_ssl(pki), backoff_max="2s",
        forwards=[{"local_topic": "stream/#", "remote_topic": "", "qos": 1}]))
    edge.wait_log("bridge hub: connected to", 10)
    total = 200
    received = []
    lock = threading.Lock()

    def subscriber(out):
        """Connects as fast as it can (again after the crash) and subscribes,
        so that it is there before the bridge's backoff ends."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            c = Client(up.port, "stream-sub", pki, "client_obs", host="localhost")
            orig = c._on_message

            def on_msg(cl, u, msg, orig=orig):
                orig(cl, u, msg)
                with lock:
                    received.append(int(msg.payload))
            c.c.on_message = on_msg
            try:
                c.c.connect("localhost", up.port, keepalive=10)
            except OSError:
                time.sleep(0.003)
                continue
            c.c.loop_start()
            try:
                if not c.connected.wait(5):
                    raise AssertionError("no CONNACK")
                c.sub("stream/#", 1, timeout=5)
            except AssertionError:
                c.close()
                continue
            out.append(c)
            return

    subs = []
    subscriber(subs)
    first = subs[0]
    pub = Client(edge.port, "stream-pub").connect()
    sysw = SysWatch(edge.port, "hub")
    second = None
    sub_thread = None
    try:
        sysw.wait(lambda v: v["state"] == "connected", 5)
        killed_at = None
        for i in range(total):
            pub.pub("stream/n", str(i), 1, wait=False)
            time.sleep(0.015)
            if i == 50:
                kill(up)
                killed_at = time.monotonic()
                first.c.loop_stop()
                sub_thread = threading.Thread(target=subscriber, args=(subs,))
                sub_thread.start()
            if killed_at and not up.alive() and time.monotonic() - killed_at > 1.0:
                restart(up)
        sub_thread.join(20)
        assert len(subs) == 2, "the subscriber could not come back:\n" + up.read_log()
        second = subs[1]
        edge.wait_log("bridge hub: lost 127.0.0.1:%d" % up.port, 5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if len(set(received)) >= total:
                    break
            time.sleep(0.05)
        with lock:
            got = list(received)
        firsts = []
        seen = set()
        for n in got:
            if n not in seen:
                seen.add(n)
                firsts.append(n)
        missing = sorted(set(range(total)) - seen)
        assert not missing, "missing %r (edge log:\n%s)" % (missing, edge.read_log()[-4000:])
        assert firsts == list(range(total)), firsts
        edge.wait_count("bridge hub: connected to", 2)
        v = sysw.wait(lambda v: v["state"] == "connected" and v["queued"] == "0" and
                      int(v["messages/sent"]) >= total, 10)
        assert v["messages/dropped"] == "0" and int(v["connects"]) >= 2, v
    finally:
        pub.close()
        sysw.close()
        first.close()
        if second is not None:
            second.close()


# ---- (6) the offline queue is bounded ---------------------------------------

def test_queue_bound_while_down(pki, tmp_path, ward_factory):
    """While the link is down the bridge's local side is away: its session
    $bridge/hub queues what the rules match, bounded by mqtt.max_mqueue_len
    like any offline session (here without persistence, a 3.1.1 publisher:
    drop_newest), and publishers never wait. The bridge itself drops
    nothing; when the link returns the queue goes up in order."""
    port = free_port()
    edge = start_edge(ward_factory, tmp_path, "mqtt.max_mqueue_len = 5\n", bridge_block(
        "hub", "tls+mqtt-tcp://127.0.0.1:%d" % port, proto_ver=5, ssl=mtls_ssl(pki),
        backoff_max="2s",
        forwards=[{"local_topic": "q/#", "remote_topic": "", "qos": 1}]))
    edge.wait_log("bridge hub: cannot connect to 127.0.0.1:%d" % port, 10)
    edge.wait_log("bridge hub: link down; the local session queues for it", 5)
    sysw = SysWatch(edge.port, "hub")
    pub = Client(edge.port, "q-pub").connect()
    try:
        for i in range(10):
            pub.pub("q/n", str(i), 1)  # each acknowledged at once
        v = sysw.wait(lambda v: v["state"] == "disconnected", 5)
        assert v["queued"] == "0" and v["messages/dropped"] == "0", v
        up = ward_factory(["-l", "mtls://127.0.0.1:%d" % port, "--certfile", pki["server_crt"],
                           "--keyfile", pki["server_key"], "--cafile", pki["ca"]],
                          port=port, listen=False)
        up.start(wait=False)
        sub = None
        deadline = time.monotonic() + 10
        while sub is None and time.monotonic() < deadline:
            try:
                sub = Client(port, "q-sub", pki, "client_obs", host="localhost").connect(5)
            except (OSError, AssertionError):
                sub = None
                time.sleep(0.005)
        assert sub is not None, up.read_log()
        try:
            sub.sub("q/#", 1)
            edge.wait_log("bridge hub: connected to", 10)
            sub.wait_count("q/n", 5, 10)
            wait_quiet(1.0)
            assert [m[1] for m in sub.got("q/n")] == ["0", "1", "2", "3", "4"], sub.got()
            v = sysw.wait(lambda v: v["state"] == "connected" and v["queued"] == "0" and
                          v["messages/sent"] == "5", 5)
            assert v["messages/dropped"] == "0", v
        finally:
            sub.close()
    finally:
        pub.close()
        sysw.close()


# ---- (7) certificate rotation -----------------------------------------------

def test_cert_rotation_on_sighup_and_reconnect(pki, tmp_path, ward_factory):
    crt, key = str(tmp_path / "bridge.crt"), str(tmp_path / "bridge.key")
    shutil.copy(pki["client_crt"], crt)
    shutil.copy(pki["client_key"], key)
    up = start_ward_up(ward_factory, pki, extra=["--peer-cert-as-clientid", "cn"])
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "hub", "tls+mqtt-tcp://127.0.0.1:%d" % up.port, proto_ver=5,
        ssl={"cacertfile": pki["ca"], "certfile": crt, "keyfile": key},
        forwards=[{"local_topic": "rot/#", "remote_topic": "", "qos": 1}]))
    edge.wait_log("bridge hub: connected to", 10)
    up.wait_log("client 'device-1'", 5)
    # New pair in place (another CN), SIGHUP: the next connection uses it.
    for src, dst in ((pki["client_rotated_crt"], crt), (pki["client_rotated_key"], key)):
        shutil.copy(src, dst + ".new")
        os.replace(dst + ".new", dst)
    edge.signal(signal.SIGHUP)
    edge.wait_log("bridge hub: TLS files reloaded", 5)
    up.stop()
    restart(up)
    edge.wait_log("bridge hub: lost 127.0.0.1:%d" % up.port, 5)
    up.wait_log("client 'bridge-rotated'", 10)
    edge.wait_count("bridge hub: connected to", 2)
    obs = Client(up.port, "x", pki, "client_obs", host="localhost").connect().sub("rot/#")
    try:
        time.sleep(0.3)
        ward_pub(edge.port, "rot/a", "after-rotation", 1)
        obs.wait_count("rot/a", 1)
    finally:
        obs.close()
    # Without SIGHUP: files are read again at each connection attempt.
    for src, dst in ((pki["client_rsa_crt"], crt), (pki["client_rsa_key"], key)):
        shutil.copy(src, dst + ".new")
        os.replace(dst + ".new", dst)
    n = up.read_log().count("client 'device-rsa'")
    up.stop()
    restart(up)
    deadline = time.monotonic() + 10
    while up.read_log().count("client 'device-rsa'") <= n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert up.read_log().count("client 'device-rsa'") > n, up.read_log()[-3000:]


def test_slow_uplink_holds_producers_instead_of_dropping(pki, tmp_path, ward_factory):
    """Issue 12: the link is up but slower than the local publishers (a send
    queue of 5, one message in flight): the bridge stops reading its local
    side and the local broker makes the producers wait; nothing acknowledged
    to them is dropped, and everything arrives upstream in order."""
    up = start_ward_up(ward_factory, pki)
    edge = start_edge(ward_factory, tmp_path, bridge_block(
        "slow", "tls+mqtt-tcp://127.0.0.1:%d" % up.port, proto_ver=5, ssl=mtls_ssl(pki),
        max_send_queue_len=5, max_inflight=1,
        forwards=[{"local_topic": "s/#", "remote_topic": "", "qos": 1}]))
    edge.wait_log("bridge slow: connected to", 10)
    sub = Client(up.port, "s-sub", pki, "client_obs", host="localhost").connect(5)
    sysw = SysWatch(edge.port, "slow")
    try:
        sub.sub("s/#", 1)
        n = 400
        # One write of 400 QoS 1 PUBLISHes: far more than the queue holds.
        raw = socket.create_connection(("127.0.0.1", edge.port))
        raw.sendall(b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02bp")
        assert raw.recv(4)[:2] == b"\x20\x02"
        data = b""
        for i in range(n):
            body = b"\x00\x03s/n" + struct.pack("!H", i + 1) + str(i).encode()
            data += bytes([0x32, len(body)]) + body
        raw.sendall(data)
        acks, buf = 0, b""
        raw.settimeout(60)
        while acks < n:
            chunk = raw.recv(65536)
            assert chunk, "edge closed the publisher"
            buf += chunk
            while len(buf) >= 4:
                assert buf[0] == 0x40, buf[:8]
                acks += 1
                buf = buf[4:]
        sub.wait_count("s/n", n, 60)
        assert [m[1] for m in sub.got("s/n")] == [str(i) for i in range(n)]
        v = sysw.wait(lambda v: v["queued"] == "0", 10)
        assert v["messages/dropped"] == "0", v
        raw.close()
    finally:
        sub.close()
        sysw.close()
