"""Durable state (`ward serve --data DIR`, docs/persistence.md): nothing a
publisher saw acknowledged is lost through kill -9; sessions keep their
owner, subscriptions and queues; retained messages survive; a full offline
queue is refused with 0x97 (v5); a damaged or newer store file is moved
aside or refused as configured."""
import os
import signal
import sqlite3
import struct
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import mqttwire
from conftest import WARD, Ward, free_port, wait_port

ROUNDS = 5
STREAM_MAX = 3000  # messages per publisher per round, at most
TIMEOUT = 15.0


def wait_for(cond, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def connect(port, cid, clean=True, v5=False, user=None, password=None, expiry=None):
    """A paho client connected (network loop running); returns (client, rc)."""
    c = mqtt.Client(client_id=cid, clean_session=None if v5 else clean,
                    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    if user:
        c.username_pw_set(user, password)
    got = {}

    def on_connect(cl, ud, flags, rc, props=None):
        got["rc"] = rc if isinstance(rc, int) else rc.value
        got["present"] = flags.get("session present")

    c.on_connect = on_connect
    if v5:
        p = Properties(PacketTypes.CONNECT)
        if expiry is not None:
            p.SessionExpiryInterval = expiry
        c.connect("127.0.0.1", port, clean_start=clean, properties=p)
    else:
        c.connect("127.0.0.1", port)
    c.loop_start()
    wait_for(lambda: "rc" in got, 5)
    return c, got


def subscribed(c, topic, qos=0):
    """Subscribes and waits for the SUBACK (a message published before it
    would not match)."""
    done = threading.Event()
    prev = c.on_subscribe
    c.on_subscribe = lambda *a: done.set()
    c.subscribe(topic, qos)
    assert done.wait(5), "no SUBACK for %r" % (topic,)
    c.on_subscribe = prev


def close(c):
    c.disconnect()
    c.loop_stop()


def start(tmp_path, port, data, extra=()):
    w = Ward(tmp_path, ["--data", str(data)] + list(extra), port=port)
    return w.start()


def kill9(w):
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait()
    w.proc = None
    w.log.close()


class Publisher:
    """Publishes "NAME:SEQ" at `qos` until stopped; records the packet ids
    whose PUBACK (QoS 1) or PUBCOMP (QoS 2) came back. Its lock is never
    held while calling paho (whose callbacks take paho's own locks)."""

    def __init__(self, port, name, qos):
        self.name, self.qos = name, qos
        self.done_mids, self.mids = set(), {}
        self.lock = threading.Lock()
        self.c, self.got = connect(port, name)
        self.c.max_inflight_messages_set(50)
        self.c.on_publish = self.on_publish
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)

    def on_publish(self, c, ud, mid):
        with self.lock:
            self.done_mids.add(mid)

    def acked(self):
        with self.lock:
            return {self.mids[m] for m in self.done_mids if m in self.mids}

    def run(self):
        for seq in range(STREAM_MAX):
            if self.stop:
                return
            info = self.c.publish("stream/%s" % self.name, "%s:%d" % (self.name, seq), self.qos)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return
            with self.lock:
                self.mids[info.mid] = seq
            time.sleep(0.0005)


def test_kill9_in_qos1_and_qos2_streams(tmp_path):
    """Five rounds of kill -9 in the middle of a QoS 1 and a QoS 2 stream:
    after each restart the persistent subscriber gets every message its
    publisher saw acknowledged; QoS 2 exactly once; order per publisher."""
    port, data = free_port(), tmp_path / "data"
    w = start(tmp_path, port, data)
    received = []
    rlock = threading.Lock()
    sub, got = connect(port, "sub", clean=False)
    assert got.get("rc") == 0

    def on_message(c, ud, m):
        with rlock:
            received.append(m.payload.decode())

    sub.on_message = on_message
    sub.reconnect_delay_set(0.05, 0.2)
    subscribed(sub, "stream/#", 2)
    acked = {}
    try:
        for rnd in range(ROUNDS):
            pubs = [Publisher(port, "q1r%d" % rnd, 1), Publisher(port, "q2r%d" % rnd, 2)]
            for p in pubs:
                p.t.start()
            # Kill once both streams are well under way (bounded wait).
            wait_for(lambda: all(len(p.acked()) >= 200 for p in pubs), 10)
            kill9(w)
            for p in pubs:
                p.stop = True
                p.t.join(5)
                p.c.loop_stop()
                acked[p.name] = p.acked()
                assert acked[p.name], "round %d: nothing acknowledged for %s" % (rnd, p.name)
            w = start(tmp_path, port, data)

            def complete():
                with rlock:
                    have = set(received)
                return all("%s:%d" % (n, s) in have for n, a in acked.items() for s in a)

            if not wait_for(complete):
                with rlock:
                    have = set(received)
                lost = sorted("%s:%d" % (n, q) for n, a in acked.items() for q in a
                              if "%s:%d" % (n, q) not in have)
                raise AssertionError("round %d: %d acknowledged messages missing after restart: %s"
                                     % (rnd, len(lost), lost[:20]))
    finally:
        close(sub)
        w.stop()
    with rlock:
        msgs = list(received)
    for name in acked:
        seqs = [int(m.split(":")[1]) for m in msgs if m.split(":")[0] == name]
        if name.startswith("q2"):
            assert len(seqs) == len(set(seqs)), "%s: QoS 2 delivered twice" % name
        firsts = []
        seen = set()
        for s in seqs:
            if s not in seen:
                seen.add(s)
                firsts.append(s)
        assert firsts == sorted(firsts), "%s: order not kept" % name


def test_retained_and_subscriptions_survive_kill9(tmp_path):
    port, data = free_port(), tmp_path / "data"
    w = start(tmp_path, port, data)
    c, _ = connect(port, "keeper", clean=False)
    subscribed(c, "cfg/+", 1)
    close(c)
    p, _ = connect(port, "setter")
    infos = [p.publish("cfg/%d" % i, "value-%d" % i, 1, retain=True) for i in range(20)]
    for i in infos:
        i.wait_for_publish(5)
    close(p)
    kill9(w)
    w = start(tmp_path, port, data)
    try:
        got = []
        c, st = connect(port, "keeper", clean=False)
        assert st.get("present") == 1  # the session, with its subscription
        c.on_message = lambda cl, ud, m: got.append((m.topic, m.payload.decode(), m.retain))
        p, _ = connect(port, "setter2")
        p.publish("cfg/live", "after", 1).wait_for_publish(5)
        assert wait_for(lambda: ("cfg/live", "after", False) in got)
        close(c)
        fresh = []
        n, _ = connect(port, "newcomer")
        n.on_message = lambda cl, ud, m: fresh.append(m.payload.decode())
        n.subscribe("cfg/#", 1)
        assert wait_for(lambda: len(fresh) >= 20)
        assert {"value-%d" % i for i in range(20)} <= set(fresh)
        close(n)
        close(p)
    finally:
        w.stop()


def test_owner_survives_kill9(tmp_path):
    """A session belongs to the identity that made it, also after kill -9."""
    pwfile = tmp_path / "passwd"
    for user, pw in (("alice", "alice-pw-1"), ("bob", "bob-pw-22")):
        subprocess.run([WARD, "passwd", str(pwfile), user], input=pw + "\n", text=True,
                       check=True, capture_output=True)
    port, data = free_port(), tmp_path / "data"
    args = ["--password-file", str(pwfile), "--allow-anonymous", "false"]
    w = start(tmp_path, port, data, args)
    c, st = connect(port, "dev1", clean=False, user="alice", password="alice-pw-1")
    assert st.get("rc") == 0
    close(c)
    kill9(w)
    w = start(tmp_path, port, data, args)
    try:
        c, st = connect(port, "dev1", clean=False, user="bob", password="bob-pw-22")
        assert st.get("rc") == 5, st  # not authorized: another identity's session
        close(c)
        c, st = connect(port, "dev1", clean=False, user="alice", password="alice-pw-1")
        assert st.get("rc") == 0 and st.get("present") == 1, st
        close(c)
    finally:
        w.stop()


def test_offline_queue_full_refuses_v5(tmp_path):
    """An offline stored session's full queue: a v5 publisher hears 0x97 and
    nothing of that PUBLISH is kept; a 3.1.1 one with drop_oldest pushes the
    oldest out."""
    port, data = free_port(), tmp_path / "data"
    conf = tmp_path / "q.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                    'mqtt { max_mqueue_len = 5, queue_full_policy = drop_oldest }\n'
                    'persistence { dir = "%s" }\n' % (port, data))
    w = Ward(tmp_path, ["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert wait_port(port, proc=w.proc), w.read_log()
    try:
        s = mqttwire.connected(port, "slow", v5=True, clean=True,
                               props=[(mqttwire.SESSION_EXPIRY, 3600)])
        s.sub([("q/x", 1)])
        s.disconnect()
        p = mqttwire.connected(port, "v5pub", v5=True)
        codes = []
        for i in range(8):
            pid = i + 1
            p.send(mqttwire.publish("q/x", b"m%d" % i, qos=1, pid=pid, v5=True))
            codes.append(p.expect_answer(mqttwire.PUBACK, pid).rc)
        assert codes == [0] * 5 + [0x97] * 3, codes
        p.disconnect()
        old = mqttwire.connected(port, "v3pub")
        for i in range(2):
            old.send(mqttwire.publish("q/x", b"n%d" % i, qos=1, pid=i + 1))
            assert old.expect_answer(mqttwire.PUBACK, i + 1).rc == 0
        old.disconnect()
        s = mqttwire.connected(port, "slow", v5=True, clean=False,
                               props=[(mqttwire.SESSION_EXPIRY, 3600)])
        got = [m.payload for m in s.collect(5)]
        assert got == [b"m2", b"m3", b"m4", b"n0", b"n1"], got
        s.disconnect()
    finally:
        w.stop()


def test_damaged_file_moved_aside_or_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "ward.db").write_bytes(b"this is not a database at all" * 200)
    port = free_port()
    # refuse: ward does not start, and says why.
    conf = tmp_path / "refuse.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                    'persistence { dir = "%s", on_damage = refuse }\n' % (port, data))
    w = Ward(tmp_path, ["-c", str(conf)], port=port, listen=False).start(wait=False)
    assert w.proc.wait(15) != 0
    w.proc = None
    w.log.close()
    assert "ward.db" in w.read_log()
    assert (data / "ward.db").read_bytes().startswith(b"this is not")
    # move_aside (the default): started afresh, the old file kept aside.
    w = start(tmp_path, port, data)
    try:
        # The port is bound before the store opens (nothing is accepted
        # until it has loaded): wait for the store's own log line.
        wait_for(lambda: "persistence:" in w.read_log())
        aside = [f for f in os.listdir(data) if f.startswith("ward.db.damaged-")]
        assert aside, os.listdir(data)
        assert "damaged" in w.read_log()
    finally:
        w.stop()


def test_store_from_a_newer_ward_refused(tmp_path):
    port, data = free_port(), tmp_path / "data"
    w = start(tmp_path, port, data)
    w.stop()
    con = sqlite3.connect(str(data / "ward.db"))
    con.execute("pragma user_version = 999")
    con.commit()
    con.close()
    w = Ward(tmp_path, ["--data", str(data)], port=port).start(wait=False)
    assert w.proc.wait(15) != 0
    w.proc = None
    w.log.close()
    assert "newer" in w.read_log()
    assert not wait_port(port, timeout=0.2)


def test_nanomq_sqlite_block_maps_to_persistence(tmp_path):
    """NanoMQ's sqlite { }: enable + mounted_file_path turn persistence on in
    that directory; the other keys load and are reported as not used."""
    port, data = free_port(), tmp_path / "nanomq-sqlite"
    conf = tmp_path / "n.conf"
    conf.write_text('listeners.tcp { bind = "127.0.0.1:%d" }\n'
                    'sqlite {\n  enable = true\n  disk_cache_size = 102400\n'
                    '  mounted_file_path = "%s"\n  flush_mem_threshold = 100\n'
                    '  resend_interval = 5000\n}\n' % (port, data))
    r = subprocess.run([WARD, "check", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    for key in ("disk_cache_size", "flush_mem_threshold", "resend_interval"):
        assert "sqlite.%s: NanoMQ setting not used by ward" % key in r.stderr, r.stderr
    w = Ward(tmp_path, ["-c", str(conf)], port=port, listen=False).start(wait=False)
    try:
        assert wait_port(port, proc=w.proc), w.read_log()
        # The port is bound before the store loads; the log says when it did.
        w.wait_log("persistence: process mode")
        assert (data / "ward.db").exists()
    finally:
        w.stop()


def test_store_counters_in_sys(tmp_path):
    port, data = free_port(), tmp_path / "data"
    w = start(tmp_path, port, data, ["--sys-interval", "1"])
    try:
        s = mqttwire.connected(port, "keep", clean=False)
        s.sub([("c/#", 1)])
        s.disconnect()
        p = mqttwire.connected(port, "p")
        p.pub("c/1", b"x", qos=1)
        p.disconnect()
        mon = mqttwire.connected(port, "mon")
        mon.sub([("$SYS/broker/store/+", 0)])
        seen = {}
        deadline = time.monotonic() + 10
        def enough():
            return int(seen.get("commits", 0)) > 0 and int(seen.get("ops", 0)) >= 3

        while time.monotonic() < deadline and not enough():
            m = mon.recv(1)
            if m is not None and m.type == mqttwire.PUBLISH:
                seen[m.topic.rsplit("/", 1)[1]] = m.payload.decode()
        for k in ("commits", "ops", "syncs", "failures", "bytes", "full_refused"):
            assert k in seen, seen
        assert int(seen["commits"]) > 0 and int(seen["ops"]) >= 3, seen
        mon.disconnect()
    finally:
        w.stop()


def test_acks_keep_publish_order_and_closing_is_safe(tmp_path):
    """PUBACKs come in the order of the PUBLISHes even when only some of them
    wait for a commit (MQTT-4.6.0-2); a publisher that closes with
    acknowledgements pending leaves the broker well (ASan builds check)."""
    port, data = free_port(), tmp_path / "data"
    w = start(tmp_path, port, data)
    try:
        s = mqttwire.connected(port, "stored", clean=False)
        s.sub([("kept/#", 1)])
        s.disconnect()
        p = mqttwire.connected(port, "orderly")
        burst = b"".join(mqttwire.publish("kept/a" if i % 3 else "nobody/a", b"%d" % i, qos=1,
                                          pid=i + 1) for i in range(300))
        p.send(burst)
        pids = [p.expect(mqttwire.PUBACK).pid for _ in range(300)]
        assert pids == list(range(1, 301))
        p.disconnect()
        for round_ in range(20):
            q = mqttwire.connected(port, "leaver%d" % round_)
            q.send(b"".join(mqttwire.publish("kept/b", b"x", qos=1 + (i % 2), pid=i + 1)
                            for i in range(50)))
            q.close()
        alive = mqttwire.connected(port, "after")
        alive.pub("kept/c", b"y", qos=1)
        alive.disconnect()
    finally:
        w.stop()


# ---- a bridge's send queue (its stored local session $bridge/NAME) ----------

def start_edge(tmp_path, port, data, up_port, extra_conf=""):
    """An edge ward with --data and a bridge "hub" forwarding b/# (QoS 1)
    and c/# (QoS 2) to a plain ward upstream on up_port."""
    conf = tmp_path / "edge.conf"
    conf.write_text(
        'listeners.tcp { bind = "127.0.0.1:%d" }\n%s'
        'bridges.mqtt.hub {\n  server = "mqtt-tcp://127.0.0.1:%d"\n  proto_ver = 5\n'
        '  clientid = "edge-hub"\n  backoff_max = 1s\n  connect_timeout = 2s\n'
        '  forwards = [\n'
        '    { local_topic = "b/#", remote_topic = "", qos = 1 }\n'
        '    { local_topic = "c/#", remote_topic = "", qos = 2 }\n  ]\n}\n'
        % (port, extra_conf, up_port))
    w = Ward(tmp_path, ["-c", str(conf), "--data", str(data)], port=port, listen=False)
    w.start(wait=False)
    assert wait_port(port, proc=w.proc), w.read_log()
    return w


def start_up(tmp_path, up_port, up_data):
    """The upstream: a ward with its own store, so the observer's session
    (made once, stored) queues what arrives while the observer is away."""
    return start(tmp_path, up_port, up_data)


class Observer:
    """A persistent QoS 2 session on the upstream that records payloads."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.got = []
        self.c = None

    def connect(self):
        self.c, st = connect(self.port, "observer", clean=False)
        assert st.get("rc") == 0, st
        self.c.on_message = self.on_message
        return st

    def on_message(self, c, ud, m):
        with self.lock:
            self.got.append(m.payload.decode())

    def payloads(self, prefix):
        with self.lock:
            return [p for p in self.got if p.startswith(prefix)]

    def close(self):
        if self.c is not None:
            close(self.c)
            self.c = None


def firsts(seq):
    seen, out = set(), []
    for s in seq:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def test_bridge_backlog_survives_kill9_while_link_down(tmp_path):
    """Three rounds: the link is down, a local publisher sends N QoS 1
    messages (each acknowledged), ward is killed (-9) and restarted with the
    same --data, then the upstream comes up: all N arrive upstream, in
    order."""
    port, data = free_port(), tmp_path / "edge-data"
    up_port, up_data = free_port(), tmp_path / "up-data"
    up = start_up(tmp_path, up_port, up_data)
    obs = Observer(up_port)
    st = obs.connect()
    subscribed(obs.c, "b/#", 2)
    obs.close()
    up.stop()
    edge = start_edge(tmp_path, port, data, up_port)
    n = 40
    try:
        for rnd in range(3):
            edge.wait_log("bridge hub: link down; the local session queues for it", 10)
            p, got = connect(port, "edge-pub-%d" % rnd)
            assert got.get("rc") == 0
            infos = [p.publish("b/r%d" % rnd, "r%d:%d" % (rnd, i), 1) for i in range(n)]
            for i in infos:
                i.wait_for_publish(5)
                assert i.is_published()
            close(p)
            kill9(edge)
            edge = start_edge(tmp_path, port, data, up_port)
            up = start_up(tmp_path, up_port, up_data)
            st = obs.connect()
            assert st.get("present") == 1, st
            want = ["r%d:%d" % (rnd, i) for i in range(n)]
            ok = wait_for(lambda: set(want) <= set(obs.payloads("r%d:" % rnd)), 20)
            got = obs.payloads("r%d:" % rnd)
            assert ok, "round %d: missing %r\nedge log:\n%s" % (
                rnd, sorted(set(want) - set(got))[:10], edge.read_log()[-3000:])
            assert firsts(got) == want, got
            obs.close()
            # Next round: the link goes down again.
            kill9(up)
    finally:
        obs.close()
        edge.stop()


def test_bridge_kill9_mid_stream(tmp_path):
    """The link is up and a QoS 1 and a QoS 2 stream run through the bridge;
    ward is killed (-9) in the middle and restarted: every message the local
    publishers saw acknowledged arrives upstream, in order per publisher.

    QoS 2 upstream is exactly once only while the broker resends a message
    to the bridge under the packet id it had: today a PUBLISH can go out
    before its packet id is committed, and after a crash it is sent again
    under a new one; the bridge then releases the upstream session's old ids
    (see docs/persistence.md, "Bridges") and a message in flight at the kill
    may arrive twice. Duplicates are counted and limited to those."""
    port, data = free_port(), tmp_path / "edge-data"
    up_port, up_data = free_port(), tmp_path / "up-data"
    up = start_up(tmp_path, up_port, up_data)
    obs = Observer(up_port)
    obs.connect()
    subscribed(obs.c, [("b/#", 2), ("c/#", 2)])
    edge = start_edge(tmp_path, port, data, up_port,
                      'mqtt { max_mqueue_len = 100000 }\n')
    try:
        edge.wait_log("bridge hub: connected to", 10)
        acked = {}
        for rnd in range(2):
            pubs = [Publisher(port, "bq1r%d" % rnd, 1), Publisher(port, "bq2r%d" % rnd, 2)]
            # b/# goes up at QoS 1, c/# at QoS 2.
            pubs[0].topic, pubs[1].topic = "b/", "c/"
            for p in pubs:
                p.t = threading.Thread(target=run_to, args=(p,), daemon=True)
                p.t.start()
            wait_for(lambda: all(len(p.acked()) >= 150 for p in pubs), 15)
            kill9(edge)
            for p in pubs:
                p.stop = True
                p.t.join(5)
                p.c.loop_stop()
                acked[p.name] = p.acked()
                assert acked[p.name], "round %d: nothing acknowledged for %s" % (rnd, p.name)
            edge = start_edge(tmp_path, port, data, up_port,
                              'mqtt { max_mqueue_len = 100000 }\n')

            def complete():
                have = set(obs.payloads(""))
                return all("%s:%d" % (n, s) in have for n, a in acked.items() for s in a)

            if not wait_for(complete, 30):
                have = set(obs.payloads(""))
                lost = sorted("%s:%d" % (n, q) for n, a in acked.items() for q in a
                              if "%s:%d" % (n, q) not in have)
                raise AssertionError("round %d: %d acknowledged messages missing upstream: %s\n%s"
                                     % (rnd, len(lost), lost[:20], edge.read_log()[-3000:]))
    finally:
        obs.close()
        edge.stop()
        up.stop()
    msgs = obs.payloads("")
    for name in acked:
        seqs = [int(m.split(":")[1]) for m in msgs if m.split(":")[0] == name]
        if name.startswith("bq2"):
            # At most what the bridge's local window held at the kill.
            dups = sorted({s for s in seqs if seqs.count(s) > 1})
            assert len(dups) <= 512, "%s: %d QoS 2 duplicates" % (name, len(dups))
            print("%s: %d acknowledged, %d QoS 2 duplicates upstream"
                  % (name, len(acked[name]), len(dups)))
        f = firsts(seqs)
        assert f == sorted(f), "%s: order not kept" % name


def run_to(p):
    """Publisher.run on the publisher's own topic prefix (b/ or c/)."""
    for seq in range(STREAM_MAX):
        if p.stop:
            return
        info = p.c.publish(p.topic + p.name, "%s:%d" % (p.name, seq), p.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return
        with p.lock:
            p.mids[info.mid] = seq
        time.sleep(0.0005)


def test_bridge_backlog_bound_refuses_v5_with_0x97(tmp_path):
    """While the link is down the backlog is the offline session's queue:
    bounded by mqtt.max_mqueue_len, and with persistence on a v5 publisher
    hears 0x97 at the bound (nothing acknowledged is dropped)."""
    port, data = free_port(), tmp_path / "edge-data"
    edge = start_edge(tmp_path, port, data, free_port(), 'mqtt { max_mqueue_len = 5 }\n')
    try:
        edge.wait_log("bridge hub: link down; the local session queues for it", 10)
        p = mqttwire.connected(port, "v5pub", v5=True)
        codes = []
        for i in range(8):
            p.send(mqttwire.publish("b/x", b"m%d" % i, qos=1, pid=i + 1, v5=True))
            codes.append(p.expect_answer(mqttwire.PUBACK, i + 1).rc)
        assert codes == [0] * 5 + [0x97] * 3, codes
        p.disconnect()
    finally:
        edge.stop()


def test_qos2_publish_goes_out_only_with_its_packet_id_stored(tmp_path):
    """A QoS 2 PUBLISH reaches a stored session only once its packet id is
    committed: killed the moment the subscriber has it (not yet PUBREC'd),
    ward sends it again after the restart with DUP and the same packet id,
    so the receiver can tell it is the same message (exactly once)."""
    port, data = free_port(), tmp_path / "data"
    w = start(tmp_path, port, data)
    try:
        for r in range(3):
            sub = mqttwire.Client(port)
            sub.handshake("q2-sub", clean=False)
            sub.sub([("q2/t", 2)])
            pub = mqttwire.connected(port, "q2-pub-%d" % r)
            pub.send(mqttwire.publish("q2/t", b"m%d" % r, qos=2, pid=7))
            first = sub.expect(mqttwire.PUBLISH)
            kill9(w)  # the subscriber never answered it
            sub.close()
            pub.close()
            w = start(tmp_path, port, data)
            sub = mqttwire.Client(port)
            ack = sub.handshake("q2-sub", clean=False)
            assert ack.session_present
            again = sub.expect(mqttwire.PUBLISH)
            assert (again.payload, again.qos, again.dup, again.pid) == (
                b"m%d" % r, 2, True, first.pid), (first, again)
            # Complete it: PUBREC, PUBREL, PUBCOMP; nothing comes twice.
            sub.send(mqttwire.frame(mqttwire.PUBREC, 0, struct.pack("!H", again.pid)))
            sub.expect(mqttwire.PUBREL)
            sub.send(mqttwire.frame(mqttwire.PUBCOMP, 0, struct.pack("!H", again.pid)))
            assert sub.ping() == []
            sub.close()
    finally:
        if w.proc:
            kill9(w)
