"""Load-shaped checks: many connections served, a slow subscriber costs only
itself (DESIGN.md "Bounded everything"; MQTT says nothing about capacity, so
these are ward's promises, checked against mosquitto as a reference)."""
import socket
import threading
import time

import pytest

import mqtt_raw as m
from brokers import b, mk  # noqa: F401 (fixtures)

N_CLIENTS = 500


def test_many_clients_all_served(b):
    # 500 connections, each subscribed; one publication reaches all of them.
    clients = []
    try:
        for i in range(N_CLIENTS):
            c = m.Client(b.port, timeout=10.0)
            c.send(m.connect("many-%d" % i))
            clients.append(c)
        for c in clients:
            assert c.expect(m.CONNACK, timeout=10.0).rc == 0
            c.send(m.subscribe(1, [("many/all", 0)]))
        for c in clients:
            assert c.expect(m.SUBACK, timeout=10.0).codes == [0]
        pub = m.connected(b.port, "many-pub")
        pub.pub("many/all", b"to-everyone", qos=1)
        missing = 0
        for c in clients:
            p = c.recv(5.0)
            if p is None or p.type != m.PUBLISH or p.payload != b"to-everyone":
                missing += 1
        assert missing == 0, missing
    finally:
        for c in clients:
            c.close()


def flood(port, topic, count, size, done, errors):
    """A QoS 0 publisher pushing `count` x `size` bytes as fast as it can."""
    try:
        c = m.connected(port, "flooder")
        c.sock.settimeout(20.0)
        body = m.publish(topic, b"f" * size)
        for _ in range(count):
            c.send(body)
        assert c.ping_ok(timeout=10.0)
        c.close()
    except Exception as e:  # noqa: BLE001 (reported by the test)
        errors.append(repr(e))
    finally:
        done.set()


def test_slow_subscriber_does_not_block_others(b):
    # A subscriber that never reads fills its socket; the publisher and an
    # unrelated pair keep working with ordinary latency.
    slow = m.Client(b.port)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.handshake("slow")
    slow.sub([("slow/#", 0)])
    fast_sub = m.connected(b.port, "fast-sub")
    fast_sub.sub([("fast/t", 1)])
    fast_pub = m.connected(b.port, "fast-pub")
    done, errors = threading.Event(), []
    t = threading.Thread(target=flood, args=(b.port, "slow/x", 3000, 4096, done, errors))
    t.start()
    worst = 0.0
    try:
        for i in range(20):
            t0 = time.monotonic()
            fast_pub.pub("fast/t", b"%d" % i, qos=1, pid=i + 1)
            p = fast_sub.expect(m.PUBLISH, timeout=3.0)
            fast_sub.ack_msg(p)
            worst = max(worst, time.monotonic() - t0)
            assert p.payload == b"%d" % i
            time.sleep(0.05)
        assert done.wait(20.0), "the flooding publisher was blocked by the slow subscriber"
        assert errors == [], errors
    finally:
        t.join(25.0)
        slow.close()
    assert worst < 2.0, worst
    assert b.alive()


def test_unacking_subscriber_does_not_block_publisher(b):
    # A QoS 1 subscriber that never acknowledges: the publisher still gets
    # every PUBACK promptly (the broker queues or drops for that client only).
    lazy = m.connected(b.port, "lazy")
    lazy.sub([("lazy/t", 1)])
    pub = m.connected(b.port, "lazy-pub")
    t0 = time.monotonic()
    for i in range(300):
        pub.pub("lazy/t", b"%d" % i, qos=1, pid=(i % 65535) + 1)
    assert time.monotonic() - t0 < 10.0
    other = m.connected(b.port, "lazy-other")
    other.sub([("lazy/t", 0)])
    pub.pub("lazy/t", b"last", qos=1, pid=999)
    got = []
    deadline = time.monotonic() + 3.0
    while b"last" not in got and time.monotonic() < deadline:
        got += [p.payload for p in other.drain(0.2) if p.type == m.PUBLISH]
    assert b"last" in got


def test_many_subscriptions_one_client(b):
    # One client with 1000 filters: every SUBACK code granted, a message to
    # the last one arrives.
    c = m.connected(b.port, "manysubs")
    for chunk in range(10):
        filters = [("ms/%d/%d" % (chunk, i), 1) for i in range(100)]
        assert c.sub(filters, pid=chunk + 1).codes == [1] * 100
    m.connected(b.port, "ms-pub").pub("ms/9/99", b"found", qos=1)
    p = c.expect(m.PUBLISH)
    assert (p.topic, p.payload) == ("ms/9/99", b"found")


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_fan_out(b, v5):
    # 50 subscribers x 100 QoS 1 messages: every subscriber gets all, in order.
    subs = [m.connected(b.port, "fo-%d" % i, v5=v5) for i in range(50)]
    for s in subs:
        s.sub([("fo/t", 1)])
    pub = m.connected(b.port, "fo-pub", v5=v5)
    for i in range(100):
        pub.pub("fo/t", b"%d" % i, qos=1, pid=i + 1)
    for s in subs:
        got = []
        while len(got) < 100:
            p = s.recv(3.0)
            if p is None:
                break
            if p.type == m.PUBLISH:
                got.append(int(p.payload))
                s.send(m.ack(m.PUBACK, p.pid))
        assert got == list(range(100))
