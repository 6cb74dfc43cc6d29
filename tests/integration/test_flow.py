"""Flow control (issue 12): an acknowledged message is never dropped because
a consumer is slower than its producers. Each case runs once with
mqtt.overload = drop, where it must see loss (so the test can fail), and
once with the default (backpressure), where it must see none. Assertions
are on message sets and $SYS counters, never on timings."""
import socket
import struct
import threading
import time

import pytest

from conftest import free_port, serve_conf, wait_port
from test_auth import Raw
from test_identity import connack
from test_session_limits import SysReader


TIMEOUT = ("timeout",)


def poll(c, timeout):
    """The next packet, None on a close, TIMEOUT if nothing came in time
    (test_auth's Raw.read fails the test on a timeout; here waiting is normal)."""
    try:
        return c.read(timeout)
    except AssertionError:
        return TIMEOUT


def start(ward_factory, tmp_path, mqtt, name="ward.conf", listener=""):
    """ward with these mqtt keys; `listener` keys go into the listener block
    (where they override the global ones)."""
    if not listener:
        return serve_conf(ward_factory, tmp_path,
                          "mqtt {\n  sys_interval = 1s\n%s\n}\n" % mqtt, name)
    port = free_port()
    conf = tmp_path / name
    conf.write_text('listeners.tcp {\n  bind = "127.0.0.1:%d"\n%s\n}\n'
                    'mqtt {\n  sys_interval = 1s\n%s\n}\n' % (port, listener, mqtt))
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert wait_port(port, proc=w.proc), "ward is not listening:\n" + w.read_log()
    w.port = port
    return w


def publish_bytes(topic, payload, qos, pid):
    body = struct.pack("!H", len(topic)) + topic.encode()
    if qos:
        body += struct.pack("!H", pid)
    body += payload
    head = bytes([0x30 | (qos << 1)])
    n, vbi = len(body), b""
    while True:
        d, n = n % 128, n // 128
        vbi += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return head + vbi + body


def sys_wait(w, topic, pred):
    """Waits up to 30 s for the numeric $SYS value `topic` to satisfy pred;
    returns it. Read by a 3.1.1 client named after the value."""
    r = SysReader(w, topic, v5=False, cid="sys-%s" % topic.rsplit("/", 1)[-1])
    return r.wait(pred, 30)


class SlowAcker(threading.Thread):
    """A QoS 1 subscriber that keeps reading but holds each PUBACK for
    `delay` seconds (pipelined): a healthy consumer with a 10 ms round trip."""

    def __init__(self, port, filt, delay, expect, timeout):
        super().__init__(daemon=True)
        self.c = Raw(port, False)
        assert connack(self.c, "acker")[1] == 0
        self.c.subscribe(filt, 1)
        self.delay, self.expect, self.timeout = delay, expect, timeout
        self.got = []
        self.stop = False

    def run(self):
        pending = []
        self.c.sock.settimeout(0.002)
        deadline = time.monotonic() + self.timeout
        while not self.stop and time.monotonic() < deadline and len(self.got) < self.expect:
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                self.c.send(4, 0, pending.pop(0)[1])
            p = poll(self.c, 0.002)
            if p is None:
                return
            if p[0] != 3:
                continue
            body = p[2]
            tl = struct.unpack("!H", body[:2])[0]
            pid = body[2 + tl:4 + tl]
            self.got.append(body[4 + tl:])
            pending.append((time.monotonic() + self.delay, pid))


def publisher(port, cid, topic, count, qos, results):
    """Sends `count` PUBLISHes in one write, then reads every acknowledgement."""
    c = Raw(port, False)
    assert connack(c, cid)[1] == 0
    data = b"".join(publish_bytes(topic, ("%s-%d" % (cid, i)).encode(), qos, i + 1)
                    for i in range(count))
    c.sock.sendall(data)
    acks = 0
    deadline = time.monotonic() + 120
    while qos and acks < count and time.monotonic() < deadline:
        p = c.read(max(0.1, deadline - time.monotonic()))
        if p is None:
            break
        acks += p[0] == 4
    results[cid] = acks
    c.disconnect()


FAN_IN = "  max_mqueue_len = 20\n  max_inflight_window = 10\n"


@pytest.mark.parametrize("overload", ["drop", "backpressure"])
def test_fan_in_to_a_consumer_with_a_round_trip(ward_factory, tmp_path, overload):
    """20 publishers x 50 QoS 1 messages into one subscriber that acks each
    after 10 ms: every acknowledged message arrives, or (drop) some do not."""
    w = start(ward_factory, tmp_path, FAN_IN + "  overload = %s" % overload)
    total = 20 * 50
    acker = SlowAcker(w.port, "fan/#", 0.010, total, 60)
    acker.start()
    results = {}
    pubs = [threading.Thread(target=publisher, args=(w.port, "p%d" % i, "fan/%d" % i, 50, 1,
                                                     results)) for i in range(20)]
    for t in pubs:
        t.start()
    for t in pubs:
        t.join(130)
    assert sum(results.values()) == total  # every PUBLISH was acknowledged
    if overload == "drop":
        sys_wait(w, "$SYS/broker/publish/messages/dropped/queue_full", lambda v: v > 0)
        acker.stop = True
        acker.join(10)
        assert len(acker.got) < total  # acknowledged, then dropped: the old way
        return
    acker.join(90)
    got = sorted(acker.got)
    want = sorted(("p%d-%d" % (p, i)).encode() for p in range(20) for i in range(50))
    assert got == want  # all of them, once each
    sys_wait(w, "$SYS/broker/flow/throttled", lambda v: v > 0)
    sys_wait(w, "$SYS/broker/publish/messages/dropped/queue_full", lambda v: v == 0)


def test_client_feeding_its_own_queue_keeps_flowing(ward_factory, tmp_path):
    """A client subscribed to its own topic publishes 500 QoS 1 messages in
    one write and acknowledges what comes back: its PUBACKs sit behind its
    own held PUBLISHes in the stream and must still be seen."""
    w = start(ward_factory, tmp_path, FAN_IN)
    c = Raw(w.port, False)
    assert connack(c, "self")[1] == 0
    c.subscribe("self/#", 1)
    n = 500
    c.sock.sendall(b"".join(publish_bytes("self/x", b"m%d" % i, 1, i + 1) for i in range(n)))
    acks, got = 0, []
    deadline = time.monotonic() + 60
    while (acks < n or len(got) < n) and time.monotonic() < deadline:
        p = c.read(max(0.1, deadline - time.monotonic()))
        assert p is not None, "stalled at %d acks, %d messages\n%s" % (acks, len(got), w.read_log())
        if p[0] == 4:
            acks += 1
        elif p[0] == 3:
            body = p[2]
            tl = struct.unpack("!H", body[:2])[0]
            c.send(4, 0, body[2 + tl:4 + tl])
            got.append(body[4 + tl:])
    assert acks == n
    assert sorted(got) == sorted(b"m%d" % i for i in range(n))
    sys_wait(w, "$SYS/broker/flow/throttled", lambda v: v > 0)
    c.disconnect()


@pytest.mark.parametrize("where", ["global", "listener"])
def test_stalled_consumer_is_cut_off_and_producers_resume(ward_factory, tmp_path, where):
    """A subscriber that never acknowledges holds its producer back; after
    slow_consumer_timeout it is disconnected and the producer carries on.
    Set on the listener, the timeout overrides a global one of an hour."""
    if where == "global":
        w = start(ward_factory, tmp_path, FAN_IN + "  slow_consumer_timeout = 1s")
    else:
        w = start(ward_factory, tmp_path, FAN_IN + "  slow_consumer_timeout = 1h",
                  listener="  slow_consumer_timeout = 1s")
    dead = Raw(w.port, True)
    assert connack(dead, "dead")[1] == 0
    dead.subscribe("stall/#", 1)
    results = {}
    publisher(w.port, "prod", "stall/x", 200, 1, results)
    assert results["prod"] == 200
    w.wait_log("slow consumer")
    p = dead.read(10)
    while p is not None and p[0] == 3:
        p = dead.read(10)
    assert p is not None and p[0] == 14 and p[2][0] == 0x97, p  # DISCONNECT, quota exceeded


@pytest.mark.parametrize("where", ["global", "listener"])
@pytest.mark.parametrize("overload", ["drop", "backpressure"])
def test_qos0_flood_slowed_not_lost(ward_factory, tmp_path, overload, where):
    """A QoS 0 flood larger than every buffer on the way into a consumer
    that starts reading only once the broker met its bound: with
    backpressure everything arrives, with drop some is lost. Set on the
    listener, overload and max_output_bytes override the opposite global
    policy and a large global bound."""
    if where == "global":
        w = start(ward_factory, tmp_path,
                  "  max_output_bytes = 16KB\n  overload = %s" % overload)
    else:
        other = "backpressure" if overload == "drop" else "drop"
        w = start(ward_factory, tmp_path, "  max_output_bytes = 64MB\n  overload = %s" % other,
                  listener="  max_output_bytes = 16KB\n  overload = %s" % overload)
    sub = socket.create_connection(("127.0.0.1", w.port))
    sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    s = Raw.__new__(Raw)
    s.sock, s.v5, s.buf = sub, False, b""
    assert connack(s, "slow0")[1] == 0
    s.subscribe("flood", 0)
    n, payload = 6000, b"x" * 1000
    data = b"".join(publish_bytes("flood", payload, 0, 0) for _ in range(n))
    pub = Raw(w.port, False)
    assert connack(pub, "flooder")[1] == 0
    sender = threading.Thread(target=pub.sock.sendall, args=(data,), daemon=True)
    sender.start()
    # Read only once the bound was met (the event, from $SYS).
    if overload == "drop":
        sys_wait(w, "$SYS/broker/publish/messages/dropped/output_full", lambda v: v > 0)
    else:
        sys_wait(w, "$SYS/broker/flow/throttled", lambda v: v > 0)
    count = 0
    deadline = time.monotonic() + 60
    while count < n and time.monotonic() < deadline:
        p = poll(s, 2 if overload == "drop" else 10)
        if p is None or p is TIMEOUT:
            break
        count += p[0] == 3
    sender.join(30)
    if overload == "drop":
        assert count < n
    else:
        assert count == n
        sys_wait(w, "$SYS/broker/publish/messages/dropped/output_full", lambda v: v == 0)
    pub.disconnect()
