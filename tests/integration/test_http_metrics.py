"""GET /metrics (issue 16): parsed by an independent parser
(python3-prometheus-client), values that move with real MQTT and NATS
traffic, TLS failures and expiry, keys and the open_metrics setting, and
what a scrape costs the broker in CPU with many connections."""
import os
import socket
import ssl
import subprocess

import paho.mqtt.client as mqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

import natswire
import tls_pki
from http_rig import Rig, raw_mqtt_connect, wait_until


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


def scrape(rig, path="/metrics", key="read"):
    st, ct, data = rig.request("GET", path, key)
    assert st == 200, data
    assert ct.startswith("text/plain; version=0.0.4"), ct
    fams = {f.name: f for f in text_string_to_metric_families(data.decode())}
    return fams


def value(fams, family, **labels):
    """The sample of family (as the parser names it) with these labels."""
    f = fams[family]
    for s in f.samples:
        if s.name in (family, family + "_total") and all(
                s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError("no %s%s in %s" % (family, labels, [s for s in f.samples]))


def test_parses_and_moves_with_traffic(ward_factory, tmp_path, pki):
    rig = Rig(ward_factory, tmp_path, pki)

    def settled():  # wait_port's probes may still be closing
        f = scrape(rig)
        return f if sum(s.value for s in f["ward_connections"].samples) == 0 else None
    fams = wait_until(settled, what="no connections")
    # Counters keep their _total samples; families are named as documented.
    assert fams["ward_messages_received"].type == "counter"
    assert fams["ward_connections"].type == "gauge"
    assert value(fams, "ward_messages_received", qos="1") == 0
    assert value(fams, "ward_connections", listener=str(rig.port), protocol="mqtt",
                 transport="tcp") == 0
    assert value(fams, "ward_connections", listener=str(rig.tls_port), transport="tls") == 0
    assert value(fams, "ward_connections", listener=str(rig.nats_port), protocol="nats") == 0
    assert value(fams, "process_resident_memory_bytes") > 0
    assert value(fams, "process_open_fds") > 0
    # Days left: the server certificate (tls_pki: 30 days) and the CRL (7 days).
    assert 28 <= value(fams, "ward_tls_expiry_days", listener=str(rig.tls_port),
                       kind="certificate") <= 30
    assert 5 <= value(fams, "ward_tls_expiry_days", listener=str(rig.tls_port), kind="crl") <= 7

    sub = mqtt.Client(client_id="m-sub", protocol=mqtt.MQTTv311)
    got = []
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", rig.port)
    sub.loop_start()
    r, _ = sub.subscribe("m/#", qos=1)
    pub = mqtt.Client(client_id="m-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", rig.port)
    pub.loop_start()
    wait_until(lambda: sub.is_connected() and pub.is_connected(), what="paho connected")
    for i in range(5):
        pub.publish("m/x", b"payload-%d" % i, qos=1).wait_for_publish(5)
    pub.publish("m/r", b"kept", qos=0, retain=True).wait_for_publish(5)
    wait_until(lambda: len(got) == 6, what="deliveries")
    nc = natswire.connect(rig.nats_port)
    nc.send(b"SUB n.> 1\r\n")
    nc.pub("n.a", b"hello")
    nc.flush()

    fams = scrape(rig)
    assert value(fams, "ward_messages_received", qos="1") == 5
    assert value(fams, "ward_messages_received", qos="0") == 2  # MQTT retained + NATS PUB
    assert value(fams, "ward_messages_sent", qos="1") == 5
    assert value(fams, "ward_clients_connected", protocol="mqtt") == 2
    assert value(fams, "ward_clients_connected", protocol="nats") == 1
    assert value(fams, "ward_connections", listener=str(rig.port), protocol="mqtt") == 2
    assert value(fams, "ward_connections", listener=str(rig.nats_port), protocol="nats") == 1
    assert value(fams, "ward_sessions", state="online") == 2
    assert value(fams, "ward_subscriptions") == 2
    assert value(fams, "ward_retained_messages") >= 1
    assert value(fams, "ward_received_bytes") > 100
    assert value(fams, "ward_sent_bytes") > 100
    # The same at NanoMQ's path.
    assert value(scrape(rig, "/api/v4/prometheus"), "ward_clients_connected",
                 protocol="nats") == 1

    # A TLS client with a certificate from a CA the listener does not trust:
    # one failure, counted by its cause.
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.load_cert_chain(pki["client_rogue_crt"], pki["client_rogue_key"])
    with socket.create_connection(("127.0.0.1", rig.tls_port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.recv(1)
        except (ssl.SSLError, ConnectionError, OSError):
            pass

    def failures():  # (wait_port's probe counts as "peer_closed": it closed without a word)
        f = scrape(rig)
        return value(f, "ward_tls_handshake_failures", listener=str(rig.tls_port),
                     cause="unknown_ca") == 1
    wait_until(failures, what="a TLS failure counted")
    # A client with a good certificate: one handshake done.
    before = value(scrape(rig), "ward_tls_handshakes", listener=str(rig.tls_port))
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.load_cert_chain(pki["client_crt"], pki["client_key"])
    with socket.create_connection(("127.0.0.1", rig.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02tt")
            assert s.recv(4) == b"\x20\x02\x00\x00"
    assert value(scrape(rig), "ward_tls_handshakes", listener=str(rig.tls_port)) == before + 1
    for c in (sub, pub):
        c.loop_stop()
        c.disconnect()
    nc.close()
    assert rig.w.alive()


def test_keys_and_open_metrics(ward_factory, tmp_path):
    rig = Rig(ward_factory, tmp_path)
    assert rig.request("GET", "/metrics", key=None)[0] == 401
    assert rig.request("GET", "/metrics", key="read")[0] == 200
    assert rig.request("POST", "/metrics", key="admin")[0] == 405
    d2 = tmp_path / "open"
    d2.mkdir()
    rig2 = Rig(ward_factory, d2, http_extra="open_metrics = true")
    assert rig2.request("GET", "/metrics", key=None)[0] == 200
    assert rig2.request("GET", "/api/v4/clients", key=None)[0] == 401


def proc_cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def test_scrape_cost_with_many_clients_and_offline_sessions(ward_factory, tmp_path):
    """CPU-milliseconds of the broker process per scrape, with 1,000
    connected clients and 2,000 offline sessions; the figure is printed
    (pytest -s) and must stay small: counters, not walks."""
    rig = Rig(ward_factory, tmp_path)
    for i in range(2000):  # persistent sessions that go offline
        raw_mqtt_connect(rig.port, "off-%d" % i, clean=False).close()
    socks = [raw_mqtt_connect(rig.port, "on-%d" % i) for i in range(1000)]
    fams = wait_until(lambda: (lambda f: f if value(f, "ward_sessions", state="offline") == 2000
                               else None)(scrape(rig)), what="2000 offline sessions")
    assert value(fams, "ward_clients_connected", protocol="mqtt") == 1000
    n = 200
    before = proc_cpu_ms(rig.w.proc.pid)
    for _ in range(n):
        scrape(rig)
    per = (proc_cpu_ms(rig.w.proc.pid) - before) / n
    print("broker CPU per /metrics scrape: %.3f ms (1000 clients, 2000 offline sessions)" % per)
    assert per < 5.0, per
    for s in socks:
        s.close()


def test_bridge_state_and_traffic(ward_factory, tmp_path):
    up = ward_factory().start()
    extra = ('bridges.mqtt.hub {\n  server = "mqtt-tcp://127.0.0.1:%d"\n  proto_ver = 5\n'
             '  clientid = "edge"\n  keepalive = "10s"\n  backoff_max = "2s"\n'
             '  forwards = [ { local_topic = "out/#", remote_topic = "out/#", qos = 1 } ]\n}\n'
             % up.port)
    rig = Rig(ward_factory, tmp_path, extra=extra)

    def up_state():
        d = rig.json("GET", "/api/v4/bridges", key="read")["data"]
        return d if d and d[0]["connected"] else None
    d = wait_until(up_state, timeout=10, what="the bridge connected")
    assert d[0]["name"] == "hub" and d[0]["server"].endswith(":%d" % up.port)
    assert value(scrape(rig), "ward_bridge_up", bridge="hub") == 1
    subprocess.run(["mosquitto_pub", "-p", str(rig.port), "-t", "out/1", "-m", "x", "-q", "1"],
                   check=True, timeout=15)
    wait_until(lambda: value(scrape(rig), "ward_bridge_messages_sent", bridge="hub") == 1,
               what="one message sent upstream")
    up.stop()
    wait_until(lambda: value(scrape(rig), "ward_bridge_up", bridge="hub") == 0, timeout=10,
               what="the bridge down")
    # The broker stays ready with its upstream gone.
    assert rig.request("GET", "/readyz", key="read")[0] == 200


def test_websocket_listener_counted(ward_factory, tmp_path):
    from conftest import free_port, wait_port
    ws_port = free_port()
    rig = Rig(ward_factory, tmp_path, extra='listeners.ws { bind = "127.0.0.1:%d" }\n' % ws_port)
    assert wait_port(ws_port, proc=rig.w.proc)
    c = mqtt.Client("over-ws", transport="websockets")
    c.connect("127.0.0.1", ws_port)
    c.loop_start()
    wait_until(c.is_connected, what="the WebSocket client connected")
    fams = wait_until(lambda: (lambda f: f if value(f, "ward_connections", listener=str(ws_port),
                                                    transport="ws") == 1 else None)(scrape(rig)),
                      what="one WebSocket connection counted")
    assert value(fams, "ward_clients_connected", protocol="mqtt") == 1
    c.loop_stop()
    c.disconnect()
