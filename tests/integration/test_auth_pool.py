"""Password checks run on auth's hashing threads, never on the I/O workers
(issue 11 item 13). Everything here is asserted on counters the broker
publishes under $SYS, not on timings:

  $SYS/broker/auth/hashes              PBKDF2 hashes computed since start
  $SYS/broker/auth/hashes_on_workers   of those, how many ran on a net worker

Every attacker connects from its own loopback address (127.0.0.N), so the
per-address failure limit (5 in 10 s) never turns an attempt away before
its hash and the counts are exact."""
import base64
import hashlib
import socket
import struct
import time

import mqttwire as m
from conftest import serve_conf

V5_BAD_CREDENTIALS, V311_BAD_CREDENTIALS = 0x86, 4
V5_BUSY, V311_BUSY = 0x9F, 3


class From(m.Client):
    """A raw client whose connection comes from a chosen loopback address."""

    def __init__(self, port, src, v5=False):
        self.v5 = v5
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                             source_address=(src, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    def reset(self):
        """Closes with a TCP reset, which the broker sees at once even while
        it holds this connection's input."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()


def entry(user, password, iterations):
    """A password file line as `ward passwd` writes it, at a lower cost than
    its 100000 iterations: the counts asserted here do not depend on the
    cost, and a loaded machine then still answers within the broker's
    10 s connect timeout (which runs while a check waits its turn)."""
    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return '"%s" = "$pbkdf2-sha512$%d$%s$%s"\n' % (
        user, iterations, base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def slow_entry(user, iterations):
    """A password file line whose hash no password matches, with a chosen
    PBKDF2 cost: each check of it takes long enough that many CONNECTs
    arrive while one is being hashed."""
    salt = base64.b64encode(b"s" * 16).decode()
    digest = base64.b64encode(b"h" * 64).decode()
    return '"%s" = "$pbkdf2-sha512$%d$%s$%s"\n' % (user, iterations, salt, digest)


def serve(ward_factory, tmp_path, auth_extra="", slow=False):
    """A broker with a password file: alice (alice-pw) and no anonymous
    access; or (slow) only a costly entry nobody can log in as, with
    anonymous access on so a watcher can read $SYS without a hash."""
    pw = tmp_path / "pw.conf"
    if slow:
        pw.write_text(slow_entry("victim", 200000))
    else:
        pw.write_text(entry("alice", "alice-pw", 20000))
    return serve_conf(ward_factory, tmp_path, 'mqtt { sys_interval = 1s }\n'
                      'auth {\n  allow_anonymous = %s\n  password = {include "pw.conf"}\n'
                      '%s}\n' % ("true" if slow else "false", auth_extra), timeout=15)


def attackers(port, n, user_of, password=b"guess", first=2):
    """n connections from 127.0.0.<first>.., CONNECTs built but not sent."""
    out = []
    for i in range(n):
        v5 = i % 2 == 0
        c = From(port, "127.0.0.%d" % (first + i), v5=v5)
        out.append((c, m.connect("guess-%d" % i, v5=v5, username=user_of(i), password=password)))
    return out


def auth_counters(c, want_hashes, timeout=15.0):
    """Reads the $SYS hash counters the broker publishes (once a second)
    until `hashes` reaches want_hashes; returns every (hashes, on_workers)
    pair seen. Retained copies may predate the test and are skipped. Other
    packets (PINGRESP) are ignored."""
    seen, cur, deadline = [], {}, time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = c.recv(0.2)
        if p is None or p.type != m.PUBLISH or p.retain:
            continue
        cur[p.topic.rsplit("/", 1)[1]] = int(p.payload)
        if "hashes" in cur and "hashes_on_workers" in cur:
            seen.append((cur["hashes"], cur["hashes_on_workers"]))
            cur = {}
            if seen[-1][0] >= want_hashes:
                return seen
    raise AssertionError("hashes never reached %d; saw %r" % (want_hashes, seen))


def watcher(port, user="alice"):
    creds = {"username": "alice", "password": b"alice-pw"} if user else {}
    c = m.connected(port, "watch", **creds)
    c.sub([("$SYS/broker/auth/+", 0)])
    return c


def connack_rc(c):
    p = c.expect(m.CONNACK, timeout=30)
    return p.rc


def test_guesses_are_hashed_off_the_workers(ward_factory, tmp_path):
    w = serve(ward_factory, tmp_path)
    # One hash: alice's own login. Then 40 wrong passwords from 40 addresses,
    # half for alice, half for user names that do not exist.
    alice = watcher(w.port)
    conns = attackers(w.port, 40, lambda i: "alice" if i % 2 else "nobody-%d" % i)
    for c, connect in conns:
        c.send(connect)
    # While they are checked, the logged-in client is answered every time.
    for i in range(20):
        alice.send(m.pingreq())
        deadline = time.monotonic() + 10
        while True:
            p = alice.recv(max(deadline - time.monotonic(), 0.01))
            assert p is not None, "PINGREQ %d: no PINGRESP within 10 s" % i
            if p.type == m.PINGRESP:
                break
            assert p.type == m.PUBLISH, p
    # Unknown user or wrong password: the same answer.
    for i, (c, _) in enumerate(conns):
        want = V5_BAD_CREDENTIALS if c.v5 else V311_BAD_CREDENTIALS
        assert connack_rc(c) == want, "attacker %d" % i
        c.close()
    seen = auth_counters(alice, 41)
    assert seen[-1] == (41, 0), seen
    assert all(on_workers == 0 for _, on_workers in seen), seen
    w.wait_count("unknown user", 20)
    log = w.wait_count("wrong password", 20)
    assert log.count("unknown user") == 20 and log.count("wrong password") == 20, log
    # The good password is remembered: logging in again hashes nothing.
    m.connected(w.port, "again", username="alice", password=b"alice-pw").close()
    alice.send(m.pingreq())
    assert auth_counters(alice, 41)[-1] == (41, 0)


def test_a_full_queue_refuses_at_once(ward_factory, tmp_path):
    w = serve(ward_factory, tmp_path, "  hash_threads = 1\n  max_pending = 1\n", slow=True)
    watch = watcher(w.port, user=None)  # anonymous: no hash
    conns = attackers(w.port, 20, lambda i: "victim")
    for c, connect in conns:
        c.send(connect)
    rcs = [connack_rc(c) for c, _ in conns]
    for c, _ in conns:
        c.close()
    busy = [i for i, rc in enumerate(rcs) if rc == (V5_BUSY if i % 2 == 0 else V311_BUSY)]
    bad = [i for i, rc in enumerate(rcs)
           if rc == (V5_BAD_CREDENTIALS if i % 2 == 0 else V311_BAD_CREDENTIALS)]
    assert len(busy) + len(bad) == 20, rcs
    # One check at a time, each twice the cost of a default entry: 20
    # CONNECTs sent together cannot all have been taken in turn.
    assert busy and bad, rcs
    # Each hashed check answered "bad credentials"; a refused one hashed
    # nothing.
    seen = auth_counters(watch, len(bad))
    assert seen[-1] == (len(bad), 0), (seen, rcs)
    log = w.wait_count("too many password checks pending", len(busy))
    assert log.count("too many password checks pending") == len(busy), log
    # The overload warning is rate-limited (at most once a second).
    warnings = log.count("password checks already pending (auth.max_pending)")
    assert 1 <= warnings <= len(busy), log
    if len(busy) > 2:
        assert warnings < len(busy), log


def test_clients_gone_before_their_verdict(ward_factory, tmp_path):
    # Connections reset while their passwords are being hashed (one thread,
    # twice the default cost a check): each check finishes into nothing (an
    # ASan build catches any use of the freed client) and the broker goes
    # on. Then the broker
    # stops with checks still queued, which must be clean: conftest fails the
    # test on a sanitizer report or a bad exit code.
    w = serve(ward_factory, tmp_path, "  hash_threads = 1\n  max_pending = 3\n", slow=True)
    watch = watcher(w.port, user=None)
    conns = attackers(w.port, 3, lambda i: "victim")
    for c, connect in conns:
        c.send(connect)
    for c, _ in conns:
        c.reset()
    seen = auth_counters(watch, 3, timeout=30)
    assert seen[-1] == (3, 0), seen
    # No verdict reached a client: a delivered one would have been logged
    # as a refusal.
    log = w.read_log()
    assert "wrong password" not in log and "too many password checks" not in log, log
    watch.ping()  # fails on a close or a missing PINGRESP
    # Six CONNECTs at once: once one is refused as busy, three checks are
    # pending and, with one thread, at least two wait in the queue.
    late = attackers(w.port, 6, lambda i: "victim", first=50)
    for c, connect in late:
        c.send(connect)
    deadline, refused = time.monotonic() + 30, False
    while not refused and time.monotonic() < deadline:
        for c, _ in late:
            try:
                p = c.recv(0.02)
            except m.Closed:
                continue
            refused = refused or (p is not None and p.type == m.CONNACK
                                  and p.rc == (V5_BUSY if c.v5 else V311_BUSY))
    assert refused, w.read_log()
    w.stop()
