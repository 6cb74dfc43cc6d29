"""The JSON API on NanoMQ's /api/v4 paths and nats-server's monitoring
endpoints (issue 16), against the real binary with independent clients
(paho, mosquitto_sub/pub, a raw NATS client): counts, paging and its
bounds, bad parameters (400), unknown ids (404), kick, retained delete,
publish, sessions, scopes, reload, TLS status."""
import base64
import json
import socket
import ssl
import subprocess
import urllib.parse

import paho.mqtt.client as mqtt
import pytest

import natswire
import tls_pki
from http_rig import Rig, raw_mqtt_connect, read_exact, wait_until


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def rig(ward_factory, tmp_path):
    return Rig(ward_factory, tmp_path)


def paho(rig, cid):
    c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311)
    c.connect("127.0.0.1", rig.port)
    c.loop_start()
    wait_until(c.is_connected, what=cid + " connected")
    return c


def sub_one(rig, topic, timeout=3):
    """mosquitto_sub for one message; its payload, or None after timeout."""
    r = subprocess.run(["mosquitto_sub", "-p", str(rig.port), "-t", topic, "-C", "1",
                        "-W", str(timeout)], capture_output=True, text=True, timeout=timeout + 10)
    return r.stdout.rstrip("\n") if r.returncode == 0 else None


def test_clients_paging_bounds_and_kick(rig):
    v5 = raw_mqtt_connect(rig.port, "dev-0", level=5)
    cs = [paho(rig, "dev-%d" % i) for i in range(1, 5)]
    d = rig.json("GET", "/api/v4/clients?_limit=2", key="read")
    assert d["code"] == 0 and len(d["data"]) == 2
    assert d["meta"] == {"page": 1, "limit": 2, "count": 5, "hasnext": True,
                         "last": d["data"][1]["client_id"]}
    # The same list by cursor: every client once.
    seen, after = [], None
    for _ in range(5):
        q = "/api/v4/clients?_limit=2" + ("&after=" + urllib.parse.quote(after) if after else "")
        d = rig.json("GET", q, key="read")
        seen += [c["client_id"] for c in d["data"]]
        if not d["meta"]["hasnext"]:
            break
        after = d["meta"]["last"]
    assert sorted(seen) == ["dev-%d" % i for i in range(5)]
    assert rig.request("GET", "/api/v4/clients?after=nobody", key="read")[0] == 410
    ids = set()
    for page in (1, 2, 3):
        d = rig.json("GET", "/api/v4/clients?_page=%d&_limit=2" % page, key="read")
        ids |= {c["client_id"] for c in d["data"]}
    assert ids == {"dev-%d" % i for i in range(5)}
    assert d["meta"]["hasnext"] is False and len(d["data"]) == 1
    assert rig.json("GET", "/api/v4/clients?_page=4&_limit=2", key="read")["data"] == []
    one = rig.json("GET", "/api/v4/clients/dev-0", key="read")["data"][0]
    assert one["proto_ver"] == 5 and one["conn_state"] == "connected"
    assert one["ip_address"] == "127.0.0.1" and one["proto_name"] == "MQTT"
    for bad in ("_page=0", "_limit=0", "_limit=100000", "_page=x", "_limit=-5", "_page=1.5"):
        st, _, body = rig.request("GET", "/api/v4/clients?" + bad, key="read")
        assert st == 400 and json.loads(body)["code"] == 400, bad
    assert rig.request("GET", "/api/v4/clients/nobody", key="read")[0] == 404
    # Kicking needs the admin scope; a v5 client hears 0x98.
    assert rig.request("DELETE", "/api/v4/clients/dev-0", key="read")[0] == 403
    assert rig.request("DELETE", "/api/v4/clients/dev-0", key=None)[0] == 401
    assert rig.json("DELETE", "/api/v4/clients/dev-0") == {"code": 0}
    assert read_exact(v5, 4) == b"\xe0\x02\x98\x00"  # DISCONNECT 0x98 (administrative action)
    assert v5.recv(1) == b""
    assert rig.request("DELETE", "/api/v4/clients/dev-0")[0] == 404
    wait_until(lambda: rig.json("GET", "/api/v4/clients")["meta"]["count"] == 4,
               what="4 clients")
    rig.w.wait_log("admin: key ops disconnected client 'dev-0'")
    for c in cs:
        c.loop_stop()
        c.disconnect()


def test_odd_client_ids_round_trip_escaped(rig):
    cid = 'we/ird "id" \\ é'
    c = paho(rig, cid)
    d = rig.json("GET", "/api/v4/clients/" + urllib.parse.quote(cid, safe=""), key="read")
    assert d["data"][0]["client_id"] == cid
    c.loop_stop()
    c.disconnect()


def test_subscriptions_and_publish(rig):
    c = paho(rig, "watcher")
    c.subscribe([("a/+", 1), ("b/#", 2)])
    wait_until(lambda: rig.json("GET", "/api/v4/subscriptions")["meta"]["count"] == 2,
               what="2 subscriptions")
    d = rig.json("GET", "/api/v4/subscriptions?clientid=watcher", key="read")
    assert sorted((s["topic"], s["qos"]) for s in d["data"]) == [("a/+", 1), ("b/#", 2)]
    assert rig.json("GET", "/api/v4/subscriptions?clientid=other")["data"] == []
    got = []
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload, m.qos))
    assert rig.json("POST", "/api/v4/mqtt/publish",
                    body={"topic": "a/x", "payload": "hi", "qos": 1}) == {"code": 0}
    assert rig.json("POST", "/api/v4/mqtt/publish",
                    body={"topic": "b/y", "payload": base64.b64encode(b"\x00\xff").decode(),
                          "encoding": "base64", "qos": 2}) == {"code": 0}
    wait_until(lambda: len(got) == 2, what="2 messages")
    assert sorted(got) == [("a/x", b"hi", 1), ("b/y", b"\x00\xff", 2)]
    w = wait_until(lambda: (lambda d: d if d["send_msg"] == 2 else None)(
        rig.json("GET", "/api/v4/clients/watcher")["data"][0]), what="send_msg 2")
    assert w["recv_msg"] == 0 and w["send_oct"] > 0 and w["recv_oct"] > 0
    for body in ('{"topic":"a/+","payload":"x"}', "not json", '{"topic":"a","qos":7}',
                 '{"topic":"$SYS/x"}', '{"payload":"x"}'):
        st, _, data = rig.request("POST", "/api/v4/mqtt/publish", body=body)
        assert st == 400, (body, data)
    assert rig.request("POST", "/api/v4/mqtt/publish", key="read",
                       body={"topic": "a/x"})[0] == 403
    c.loop_stop()
    c.disconnect()


def test_retained_list_get_delete(rig):
    for i in range(3):
        subprocess.run(["mosquitto_pub", "-p", str(rig.port), "-t", "keep/%d" % i, "-m",
                        "v%d" % i, "-r", "-q", "1"], check=True, timeout=15)
    d = rig.json("GET", "/api/v4/retained?_limit=2", key="read")
    assert d["meta"]["count"] == 3 and len(d["data"]) == 2 and d["meta"]["hasnext"]
    one = rig.json("GET", "/api/v4/retained/keep%2F1?encoding=plain", key="read")["data"]
    assert one["topic"] == "keep/1" and one["payload"] == "v1" and one["qos"] == 1
    assert rig.request("DELETE", "/api/v4/retained/keep%2F1", key="read")[0] == 403
    assert rig.json("DELETE", "/api/v4/retained/keep%2F1") == {"code": 0}
    assert rig.request("GET", "/api/v4/retained/keep%2F1")[0] == 404
    assert rig.request("DELETE", "/api/v4/retained/keep%2F1")[0] == 404
    assert rig.request("GET", "/api/v4/retained/keep%2F%23")[0] == 400
    # A new subscriber gets the others but not the deleted one.
    assert sub_one(rig, "keep/0") == "v0"
    assert sub_one(rig, "keep/1", timeout=1) is None
    assert rig.json("GET", "/api/v4/retained")["meta"]["count"] == 2


def test_sessions_offline_listed_and_deleted(ward_factory, tmp_path):
    rig = Rig(ward_factory, tmp_path, data=True)
    raw_mqtt_connect(rig.port, "sleepy", clean=False).close()
    d = wait_until(lambda: (lambda j: j if j["meta"]["count"] == 1 and
                            not j["data"][0]["connected"] else None)(
        rig.json("GET", "/api/v4/sessions", key="read")), what="an offline session")
    assert d["data"][0]["clientid"] == "sleepy"
    assert rig.json("GET", "/api/v4/sessions/sleepy", key="read")["data"]["connected"] is False
    assert rig.request("DELETE", "/api/v4/sessions/sleepy", key="read")[0] == 403
    assert rig.json("DELETE", "/api/v4/sessions/sleepy") == {"code": 0}
    assert rig.request("GET", "/api/v4/sessions/sleepy")[0] == 404
    assert rig.request("DELETE", "/api/v4/sessions/sleepy")[0] == 404
    # The session is gone: a new connection finds none (session present 0).
    s = socket.create_connection(("127.0.0.1", rig.port), timeout=5)
    s.sendall(b"\x10\x12\x00\x04MQTT\x04\x00\x00\x3c\x00\x06sleepy")
    assert s.recv(4) == b"\x20\x02\x00\x00"
    s.close()


def test_brokers_bridges_tls_and_reload(ward_factory, tmp_path, pki):
    rig = Rig(ward_factory, tmp_path, pki)
    b = rig.json("GET", "/api/v4/brokers", key="read")["data"]
    assert b["node_status"] == "Running" and b["version"]
    assert rig.json("GET", "/api/v4/bridges", key="read")["data"] == []
    t = rig.json("GET", "/api/v4/tls", key="read")["data"]
    assert len(t) == 1 and t[0]["listener"] == str(rig.tls_port) and t[0]["verify"] == "required"
    assert 28 <= t[0]["certificate_days_left"] <= 30
    assert any(e["what"].startswith("CRL") for e in t[0]["expiries"])
    assert set(t[0]["handshake_failures"]) >= {"no_cert", "unknown_ca", "expired", "revoked"}
    assert rig.request("POST", "/api/v4/reload", key="read")[0] == 403
    assert rig.json("POST", "/api/v4/reload") == {"code": 0}
    rig.w.wait_log("reload: ")
    assert rig.w.alive()


def test_nats_monitoring(rig):
    a = natswire.connect(rig.nats_port)
    a.send(b"SUB x.> 1\r\nSUB y q 2\r\n")
    a.flush()
    b = natswire.connect(rig.nats_port)
    b.pub("x.1", b"hello")
    b.flush()
    v = rig.json("GET", "/varz", key="read")
    assert v["port"] == rig.nats_port and v["connections"] == 2
    assert v["in_msgs"] >= 1 and v["subscriptions"] == 2 and v["server_id"]
    c = rig.json("GET", "/connz?subs=1", key="read")
    assert c["num_connections"] == 2 and c["total"] == 2
    by_subs = {len(x.get("subscriptions_list", [])): x for x in c["connections"]}
    assert by_subs[2]["out_msgs"] == 1 and by_subs[0]["in_msgs"] == 1
    assert by_subs[0]["in_bytes"] == 5
    lists = sorted(sorted(x.get("subscriptions_list", [])) for x in c["connections"])
    assert lists == [[], ["x.>", "y"]]
    c = rig.json("GET", "/connz?limit=1&offset=1", key="read")
    assert c["num_connections"] == 1 and c["offset"] == 1 and c["limit"] == 1
    assert rig.json("GET", "/subsz", key="read")["num_subscriptions"] == 2
    assert rig.request("GET", "/connz?limit=x", key="read")[0] == 400
    assert rig.request("GET", "/varz", key=None)[0] == 401
    a.close()
    b.close()
