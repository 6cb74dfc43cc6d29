"""Load-shaped checks: many connections served, a slow subscriber costs only
itself (DESIGN.md "Bounded everything"; MQTT says nothing about capacity, so
these are ward's promises, checked against mosquitto as a reference)."""
import socket
import threading
import time

import pytest

import mqttwire as m

N_CLIENTS = 500


def test_many_clients_all_served(broker):
    # 500 connections of both protocol versions, each subscribed; one
    # publication reaches all of them.
    clients = []
    try:
        for i in range(N_CLIENTS):
            c = m.Client(broker.port, v5=bool(i % 2))
            c.send(m.connect("many-%d" % i, v5=c.v5))
            clients.append(c)
        for c in clients:
            assert c.expect(m.CONNACK).rc == 0
            c.send(m.subscribe(1, [("many/all", 0)], v5=c.v5))
        for c in clients:
            assert c.expect(m.SUBACK).codes == [0]
        pub = m.connected(broker.port, "many-pub")
        pub.pub("many/all", b"to-everyone", qos=1)
        for c in clients:
            assert c.expect(m.PUBLISH).payload == b"to-everyone"
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
        assert c.ping(timeout=20.0) == []
        c.close()
    except Exception as e:  # noqa: BLE001 (reported by the test)
        errors.append(repr(e))
    finally:
        done.set()


@pytest.fixture(params=["ward", "mosquitto"])
def quick_cut(request, ward_factory, mosquitto_factory, tmp_path):
    """ward with a 2 s slow-consumer timeout (mosquitto drops instead)."""
    if request.param == "ward":
        conf = tmp_path / "slow.conf"
        conf.write_text("mqtt.slow_consumer_timeout = 2s\n")
        b = ward_factory(["-c", str(conf)]).start()
    else:
        b = mosquitto_factory()
    b.name = request.param
    return b


def test_slow_subscriber_does_not_block_others(quick_cut):
    # A subscriber that never reads fills its socket; an unrelated pair keeps
    # working with ordinary latency. The flooding publisher finishes too:
    # mosquitto drops for the slow one; ward holds the publisher
    # (mqtt.overload = backpressure: nothing acknowledged is dropped) until
    # the slow one has been over its bound for slow_consumer_timeout, then
    # disconnects it and lets the publisher go.
    broker = quick_cut
    slow = m.Client(broker.port)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.handshake("slow")
    slow.sub([("slow/#", 0)])
    fast_sub = m.connected(broker.port, "fast-sub")
    fast_sub.sub([("fast/t", 1)])
    fast_pub = m.connected(broker.port, "fast-pub")
    done, errors = threading.Event(), []
    t = threading.Thread(target=flood, args=(broker.port, "slow/x", 3000, 4096, done, errors))
    t.start()
    worst = 0.0
    try:
        for i in range(20):
            t0 = time.monotonic()
            fast_pub.pub("fast/t", b"%d" % i, qos=1, pid=i + 1)
            p = fast_sub.expect(m.PUBLISH)
            fast_sub.ack_msg(p)
            worst = max(worst, time.monotonic() - t0)
            assert p.payload == b"%d" % i
            time.sleep(0.05)
        assert done.wait(30.0), "the flooding publisher was blocked for good"
        assert errors == [], errors
    finally:
        t.join(25.0)
        slow.close()
    assert worst < 2.0, worst
    assert broker.alive()


def test_unacking_subscriber_does_not_block_publisher(broker):
    # A QoS 1 subscriber that never acknowledges: the publisher still gets
    # every PUBACK promptly (the broker queues or drops for that client only).
    lazy = m.connected(broker.port, "lazy")
    lazy.sub([("lazy/t", 1)])
    pub = m.connected(broker.port, "lazy-pub")
    t0 = time.monotonic()
    for i in range(300):
        pub.pub("lazy/t", b"%d" % i, qos=1, pid=(i % 65535) + 1)
    assert time.monotonic() - t0 < 10.0
    other = m.connected(broker.port, "lazy-other")
    other.sub([("lazy/t", 0)])
    pub.pub("lazy/t", b"last", qos=1, pid=999)
    assert [p.payload for p in other.collect(1)] == [b"last"]


def test_many_subscriptions_one_client(broker):
    # One client with 1000 filters: every SUBACK code granted, a message to
    # the last one arrives.
    c = m.connected(broker.port, "manysubs")
    for chunk in range(10):
        filters = [("ms/%d/%d" % (chunk, i), 1) for i in range(100)]
        assert c.sub(filters, pid=chunk + 1).codes == [1] * 100
    m.connected(broker.port, "ms-pub").pub("ms/9/99", b"found", qos=1)
    p = c.expect(m.PUBLISH)
    assert (p.topic, p.payload) == ("ms/9/99", b"found")


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_fan_out(broker, v5):
    # 50 subscribers x 100 QoS 1 messages: every subscriber gets all, in order.
    subs = [m.connected(broker.port, "fo-%d" % i, v5=v5) for i in range(50)]
    for s in subs:
        s.sub([("fo/t", 1)])
    pub = m.connected(broker.port, "fo-pub", v5=v5)
    for i in range(100):
        pub.pub("fo/t", b"%d" % i, qos=1, pid=i + 1)
    for s in subs:
        got = [int(p.payload) for p in s.collect(100)]
        assert got == list(range(100))


def test_stalled_subscriber_does_not_stall_the_same_topic(ward_factory, tmp_path):
    # ward-only (ARCHITECTURE.md "Flow control"): a subscriber that never
    # reads, on the SAME topic as a fast one, during a 12 MB QoS 0 flood.
    # The publisher is held while the stalled one is over its output bound
    # (backpressure: nothing is dropped for the fast one), for at most
    # slow_consumer_timeout; then the stalled one is cut off and the fast
    # one receives everything, in order, up to the closing QoS 1 message.
    conf = tmp_path / "stall.conf"
    conf.write_text("mqtt.slow_consumer_timeout = 2s\n")
    ward = ward_factory(["-c", str(conf)]).start()
    slow = m.Client(ward.port, v5=True)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.handshake("never-reads")
    slow.sub([("flood", 0)])
    fast = m.connected(ward.port, "fast", v5=True)
    fast.sub([("flood", 1)])
    pub = m.connected(ward.port, "flood-pub", v5=True)
    seen, result = [], []

    def read_all():
        try:
            while True:
                p = fast.expect(m.PUBLISH, timeout=20.0)
                if p.payload == b"end":
                    fast.ack_msg(p)
                    return
                seen.append(int(p.payload[:6]))
        except AssertionError as e:
            result.append(str(e))

    reader = threading.Thread(target=read_all)
    reader.start()
    for i in range(3000):
        pub.send(m.publish("flood", b"%06d" % i + b"x" * 4090, v5=True))
    pub.pub("flood", b"end", qos=1)
    reader.join(60)
    assert not reader.is_alive(), "the fast subscriber stalled after %d" % len(seen)
    assert result == [], result
    assert seen == list(range(3000)), "lost, out of order or duplicated"
    ward.wait_log("slow consumer")
