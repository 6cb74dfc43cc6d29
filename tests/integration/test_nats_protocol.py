"""The NATS client protocol, differentially (issue 13): every test sends the
same raw transcript to Debian's nats-server 2.9 and to ward (the ward run is
skipped until `ward serve -l nats://` answers with INFO) and asserts the
bytes nats-server 2.9 sends: operation lines, header blocks, -ERR texts, and
which errors close the connection. Facts checked against nats-server 2.9.10
are stated in each test's docstring."""
import json
import re
import time

import pytest

import natswire as nw
from natswire import connect

PW_CONF = "pw.conf"


def test_info_keys_and_types(nk):
    """INFO is plaintext JSON on one line; ids, versions and ports differ, so
    keys and types are compared, and the values that must agree."""
    b = nk()
    c = nw.Conn(b.port)
    line = c.read_line()
    assert line.startswith(b"INFO {") and line.rstrip(b" ").endswith(b"}"), line
    info = json.loads(line[5:])
    types = {"server_id": str, "server_name": str, "version": str, "proto": int,
             "host": str, "port": int, "headers": bool, "max_payload": int,
             "client_id": int, "client_ip": str}
    for key, t in types.items():
        assert isinstance(info.get(key), t), (key, info)
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["version"]), info["version"]
    assert info["proto"] == 1 and info["headers"] is True
    assert info["port"] == b.port and info["host"] == "127.0.0.1"
    assert info["max_payload"] == 1048576
    assert info["client_ip"] == "127.0.0.1"
    for key in ("auth_required", "tls_required", "tls_verify", "nonce"):
        assert not info.get(key), (key, info)
    # A second client gets another client id.
    c2 = nw.Conn(b.port)
    assert nw.read_info(c2)["client_id"] != info["client_id"]


def test_ping_pong_any_case(nk):
    b = nk()
    c = connect(b.port)
    for cmd in (b"PING\r\n", b"ping\r\n", b"PiNg\r\n"):
        c.send(cmd)
        assert c.expect("PONG").raw == b"PONG"


def test_verbose_ok(nk):
    """verbose: every CONNECT, SUB, UNSUB and PUB is answered +OK; PING
    gets only PONG."""
    b = nk()
    c = nw.Conn(b.port)
    nw.read_info(c)
    c.connect_op(verbose=True, headers=True)
    assert c.expect("+OK").raw == b"+OK"
    c.sub("v", 1)
    assert c.expect("+OK").raw == b"+OK"
    c.pub("v", b"hi")
    ops = [c.read_op(), c.read_op()]
    assert sorted(op.name for op in ops) == ["+OK", "MSG"], ops
    c.unsub(1)
    assert c.expect("+OK").raw == b"+OK"
    assert c.flush() == []


def test_pub_msg_bytes(nk):
    b = nk()
    sub = connect(b.port)
    sub.sub("a.b", "s1")
    sub.flush()
    pub = connect(b.port)
    payloads = [b"hi", b"", b"line\r\nbreak\r\n", bytes(range(256))]
    for p in payloads:
        pub.pub("a.b", p)
    pub.pub("a.b", b"req", reply="inbox.1")
    pub.flush()
    ops = sub.msgs(sub.flush())
    assert [op.raw for op in ops] == [b"MSG a.b s1 %d" % len(p) for p in payloads] + [
        b"MSG a.b s1 inbox.1 3"]
    assert [op.payload for op in ops] == payloads + [b"req"]


def test_hpub_hmsg_header_bytes(nk):
    """Header blocks pass byte for byte, odd spacing, repeated names, a
    status and all."""
    b = nk()
    sub = connect(b.port)
    sub.sub("h.>", 7)
    sub.flush()
    pub = connect(b.port)
    blocks = [b"NATS/1.0\r\nA: 1\r\n\r\n",
              b"NATS/1.0\r\nProto-Type: mir.v1.Telemetry\r\nX:  two  spaces \r\nX: again\r\n\r\n",
              b"NATS/1.0 100 Idle Heartbeat\r\n\r\n"]
    for i, h in enumerate(blocks):
        pub.hpub("h.%d" % i, h, b"pay%d" % i, reply="r.%d" % i if i == 1 else None)
    pub.hpub("h.e", blocks[0], b"")
    pub.flush()
    ops = sub.msgs(sub.flush())
    want = [b"HMSG h.0 7 %d %d" % (len(blocks[0]), len(blocks[0]) + 4),
            b"HMSG h.1 7 r.1 %d %d" % (len(blocks[1]), len(blocks[1]) + 4),
            b"HMSG h.2 7 %d %d" % (len(blocks[2]), len(blocks[2]) + 4),
            b"HMSG h.e 7 %d %d" % (len(blocks[0]), len(blocks[0]))]
    assert [op.raw for op in ops] == want
    assert [op.headers for op in ops] == blocks + [blocks[0]]
    assert [op.payload for op in ops] == [b"pay0", b"pay1", b"pay2", b""]


def test_headers_stripped_for_subscriber_without_headers(nk):
    """nats-server 2.9: a client that did not say headers:true gets a plain
    MSG holding only the payload (an empty one too)."""
    b = nk()
    sub = connect(b.port, headers=False, no_responders=False)
    sub.sub("h", 1)
    sub.flush()
    pub = connect(b.port)
    pub.hpub("h", b"NATS/1.0\r\nA: 1\r\n\r\n", b"pay")
    pub.hpub("h", b"NATS/1.0\r\nA: 1\r\n\r\n", b"", reply="r")
    pub.flush()
    ops = sub.msgs(sub.flush())
    assert [op.raw for op in ops] == [b"MSG h 1 3", b"MSG h 1 r 0"]
    assert [op.payload for op in ops] == [b"pay", b""]


def test_hpub_from_client_without_headers_closes(nk):
    """nats-server 2.9 closes a client that sends HPUB after CONNECT without
    headers:true (it sends no -ERR); the message goes nowhere."""
    b = nk()
    sub = connect(b.port)
    sub.sub("h", 1)
    sub.flush()
    c = connect(b.port, headers=False, no_responders=False)
    c.hpub("h", b"NATS/1.0\r\nA: 1\r\n\r\n", b"pay")
    c.expect_close()
    assert sub.flush() == []


def test_queue_groups(nk):
    """Over N messages each group delivers each message to exactly one of
    its members; a plain subscriber gets them all; every member gets some."""
    b = nk()
    n = 60
    members = {"g1": [connect(b.port) for _ in range(3)], "g2": [connect(b.port) for _ in range(2)]}
    for g, conns in members.items():
        for c in conns:
            c.sub("work.q", 1, queue=g)
            c.flush()
    plain = connect(b.port)
    plain.sub("work.*", 1)
    plain.flush()
    pub = connect(b.port)
    for i in range(n):
        pub.pub("work.q", b"%d" % i)
    pub.flush()
    assert sorted(int(op.payload) for op in plain.msgs(plain.flush())) == list(range(n))
    for g, conns in members.items():
        got = [[int(op.payload) for op in c.msgs(c.flush())] for c in conns]
        assert sorted(sum(got, [])) == list(range(n)), (g, got)
        assert all(got), "a member of %s got nothing: %r" % (g, got)
        for op_list in got:
            assert op_list == sorted(op_list), "out of order in %s: %r" % (g, op_list)


def test_unsub_max_and_trailing_space(nk):
    """UNSUB sid max removes the subscription after max messages in all
    (counting those already delivered); `UNSUB sid ` with a trailing space,
    as nats.go's drain sends it, is a plain UNSUB."""
    b = nk()
    c = connect(b.port)
    pub = connect(b.port)
    c.sub("a", 1)
    c.unsub(1, 3)
    c.flush()
    for i in range(5):
        pub.pub("a", b"%d" % i)
    pub.flush()
    assert [op.payload for op in c.msgs(c.flush())] == [b"0", b"1", b"2"]
    c.sub("b", 2)
    c.flush()
    for i in range(3):
        pub.pub("b", b"x")
    pub.flush()
    assert len(c.msgs(c.flush())) == 3
    c.unsub(2, 2)  # already past the maximum: gone at once
    assert c.flush() == []
    pub.pub("b", b"x")
    pub.flush()
    assert c.flush() == []
    c.sub("c", 3)
    c.flush()
    c.send(b"UNSUB 3 \r\n")
    assert c.flush() == []
    pub.pub("c", b"x")
    pub.flush()
    assert c.flush() == []
    c.send(b"UNSUB 99\r\n")  # an unknown sid is no error
    assert c.flush() == []


def test_case_insensitive_ops_tabs_and_spaces(nk):
    b = nk()
    c = connect(b.port)
    c.send(b"sub\tt.x \t q1  5\r\n")
    c.send(b"SuB  t.y\t6\r\n")
    c.flush()
    c.send(b"pub\tt.x  \t2\r\nhi\r\n")
    c.send(b"Pub t.y   r.1\t 2\r\nho\r\n")
    c.send(b"hPuB t.y 12\t14\r\nNATS/1.0\r\n\r\nhh\r\n")
    ops = c.msgs(c.flush())
    assert [op.raw for op in ops] == [b"MSG t.x 5 2", b"MSG t.y 6 r.1 2", b"HMSG t.y 6 12 14"]
    c.send(b"uNsUb\t5\r\n")
    c.pub("t.x", b"gone")
    assert c.flush() == []


def test_max_control_line(nk):
    """A control line far over max_control_line (4096): -ERR 'maximum
    control line exceeded' and a close. (nats-server checks the limit only
    when a line spans reads, so the test does not probe the exact edge.)"""
    b = nk()
    c = connect(b.port)
    c.send(b"PUB a " + b"x" * 8192 + b" 1\r\nx\r\n")
    ops = [op for op in c.expect_close() if op.name != "PING"]
    assert [op.raw for op in ops] == [b"-ERR 'maximum control line exceeded'"]


def test_max_payload(nk):
    """INFO advertises max_payload; a PUB or HPUB (headers counted) at the
    limit passes; one byte over: -ERR 'Maximum Payload Violation', close."""
    b = nk(ns="max_payload: 1024", ward=["--max-payload", "1024"])
    sub = connect(b.port)
    assert sub.info["max_payload"] == 1024
    sub.sub("a", 1)
    sub.flush()
    c = connect(b.port)
    c.pub("a", b"x" * 1024)
    c.hpub("a", b"NATS/1.0\r\n\r\n", b"y" * 1012)
    assert c.flush() == []
    assert [len(op.payload) for op in sub.msgs(sub.flush())] == [1024, 1012]
    c.send(b"PUB a 1025\r\n" + b"x" * 1025 + b"\r\n")
    assert [op.raw for op in c.expect_close()] == [b"-ERR 'Maximum Payload Violation'"]
    c = connect(b.port)
    c.send(b"HPUB a 12 1025\r\nNATS/1.0\r\n\r\n" + b"x" * 1013 + b"\r\n")
    assert [op.raw for op in c.expect_close()] == [b"-ERR 'Maximum Payload Violation'"]
    assert sub.flush() == []


@pytest.mark.parametrize("subject", ["a..b", ".a", "a.", "a.>.b", "a.>.>", ">.a"])
def test_invalid_subscribe_subject(nk, subject):
    """-ERR 'Invalid Subject'; the connection stays open and works."""
    b = nk()
    c = connect(b.port)
    c.sub(subject, 1)
    assert [op.raw for op in c.flush()] == [b"-ERR 'Invalid Subject'"]
    c.sub("ok", 2)
    c.pub("ok", b"x")
    assert [op.raw for op in c.flush()] == [b"MSG ok 2 1"]


def test_literal_tokens_that_look_like_wildcards(nk):
    """`a.b>` and `a*` are literal tokens, not wildcards."""
    b = nk()
    c = connect(b.port)
    c.sub("a.b>", 1)
    c.sub("a*", 2)
    c.pub("a.b>", b"1")
    c.pub("a.bc", b"2")
    c.pub("a*", b"3")
    c.pub("ab", b"4")
    assert [op.raw for op in c.flush()] == [b"MSG a.b> 1 1", b"MSG a* 2 1"]


def test_pedantic_publish_subject(nk):
    """pedantic: a PUB to a wildcard or malformed subject gets -ERR 'Invalid
    Publish Subject' and the connection stays."""
    b = nk()
    c = connect(b.port, pedantic=True)
    for subject in ("a.*", "a.>", "a..b"):
        c.pub(subject, b"x")
        assert [op.raw for op in c.flush()] == [b"-ERR 'Invalid Publish Subject'"], subject


@pytest.mark.parametrize("line", [b"PUB a\r\n", b"PUB a b c 1\r\n", b"PUB a x\r\n",
                                  b"SUB a\r\n", b"SUB a b c d\r\n", b"HPUB a 20 10\r\n"])
def test_malformed_arguments_close(nk, line):
    """Wrong argument counts or sizes: nats-server 2.9 closes the connection
    (it sends no -ERR for these)."""
    b = nk()
    c = connect(b.port)
    c.send(line)
    assert [op for op in c.expect_close() if op.name not in ("PING", "-ERR")] == []


@pytest.mark.parametrize("line", [b"FOO\r\n", b"PUBX a 1\r\n", b"UNSUB\r\n"])
def test_unknown_operation(nk, line):
    b = nk()
    c = connect(b.port)
    c.send(line)
    assert [op.raw for op in c.expect_close()] == [b"-ERR 'Unknown Protocol Operation'"]


def test_payload_not_followed_by_crlf(nk):
    b = nk()
    c = connect(b.port)
    c.send(b"PUB a 2\r\nabc\r\n")
    assert [op.raw for op in c.expect_close()] == [b"-ERR 'Unknown Protocol Operation'"]


def test_echo(nk):
    """echo defaults to on (Mir's modules need it); echo:false keeps a
    client's own messages from it but not from others."""
    b = nk()
    on = connect(b.port)
    off = connect(b.port, echo=False)
    for c in (on, off):
        c.sub("e", 1)
        c.flush()
    on.pub("e", b"from-on")
    got_on = on.msgs(on.flush())
    off.pub("e", b"from-off")
    got_off = off.msgs(off.flush())
    got_on += on.msgs(on.flush())
    got_off += off.msgs(off.flush())
    assert [op.payload for op in got_on] == [b"from-on", b"from-off"]
    assert [op.payload for op in got_off] == [b"from-on"]


def test_no_responders(nk):
    """A request (a PUB with a reply subject) nobody subscribes to: a client
    that asked for no_responders gets nats-server 2.9's zero-payload 503
    HMSG on its reply subject (no Nats-Subject header in 2.9); one that did
    not gets nothing; with a subscriber there is no 503."""
    b = nk()
    c = connect(b.port)
    c.sub("_INBOX.x.*", 5)
    c.pub("nobody.home", b"", reply="_INBOX.x.1")
    c.pub("nobody.home", b"body", reply="_INBOX.x.2")
    ops = c.flush()
    assert [op.raw for op in ops] == [b"HMSG _INBOX.x.1 5 16 16", b"HMSG _INBOX.x.2 5 16 16"]
    assert [(op.headers, op.payload) for op in ops] == [(b"NATS/1.0 503\r\n\r\n", b"")] * 2
    quiet = connect(b.port, no_responders=False)
    quiet.sub("_INBOX.y.*", 1)
    quiet.pub("nobody.home", b"", reply="_INBOX.y.1")
    assert quiet.flush() == []
    c.sub("somebody", 6)
    c.pub("somebody", b"", reply="_INBOX.x.3")
    assert [op.raw for op in c.flush()] == [b"MSG somebody 6 _INBOX.x.3 0"]


def test_no_responders_requires_headers(nk):
    b = nk()
    c = nw.Conn(b.port)
    nw.read_info(c)
    c.connect_op(no_responders=True, headers=False)
    assert [op.raw for op in c.expect_close()] == [
        b"-ERR 'no responders requires headers support'"]


def test_wildcards(nk):
    b = nk()
    c = connect(b.port)
    subs = {"1": "a.*", "2": "a.>", "3": "*.b.*", "4": ">", "5": "a.*.c", "6": "a"}
    for sid, subject in subs.items():
        c.sub(subject, sid)
    for subject in ("a", "a.b", "a.b.c", "x.b.y", "a.b.c.d"):
        c.pub(subject, b"")
    got = {}
    for op in c.msgs(c.flush()):
        got.setdefault(op.subject, []).append(op.sid)
    assert {k: sorted(v) for k, v in got.items()} == {
        "a": ["4", "6"], "a.b": ["1", "2", "4"], "a.b.c": ["2", "3", "4", "5"],
        "x.b.y": ["3", "4"], "a.b.c.d": ["2", "4"]}


def test_pub_before_connect_without_auth(nk):
    """nats-server 2.9 without authentication takes PUB, SUB and PING before
    CONNECT, under its default options (verbose: +OK) and delivers."""
    b = nk()
    sub = connect(b.port)
    sub.sub("early", 1)
    sub.flush()
    c = nw.Conn(b.port)
    nw.read_info(c)
    c.send(b"PUB early 1\r\nx\r\nPING\r\n")
    assert [op.raw for op in (c.read_op(), c.read_op())] == [b"+OK", b"PONG"]
    assert [op.raw for op in sub.flush()] == [b"MSG early 1 1"]


def auth_server(nk, tmp_path, timeout="1s", extra_ns=""):
    """A server with one user, alice/alice-pw, and an authentication timeout."""
    if nk.kind == "ward":
        from test_auth import passwd
        passwd(str(tmp_path / PW_CONF), "alice", "alice-pw")
        return nk(ward_conf='listeners.nats { bind = "127.0.0.1:{port}"\n  auth_timeout = %s }\n'
                            'auth {\n  allow_anonymous = false\n  password = {include "%s"}\n}\n'
                  % (timeout, PW_CONF))
    return nk(ns="authorization { user: alice, password: alice-pw, timeout: %s }\n%s"
              % (timeout.rstrip("s"), extra_ns))


def test_auth_timeout(nk, tmp_path):
    """With authentication required, a client that sends no CONNECT gets
    -ERR 'Authentication Timeout' and a close after auth_timeout."""
    b = auth_server(nk, tmp_path)
    c = nw.Conn(b.port)
    assert nw.read_info(c)["auth_required"] is True
    t0 = time.monotonic()
    assert [op.raw for op in c.expect_close(8)] == [b"-ERR 'Authentication Timeout'"]
    assert 0.5 < time.monotonic() - t0 < 5
    ok = nw.Conn(b.port)
    nw.read_info(ok)
    ok.connect_op(user="alice", **{"pass": "alice-pw"})
    assert ok.flush() == []


def test_ops_before_connect_with_auth(nk, tmp_path):
    """With authentication required, PUB or PING before CONNECT, or a wrong
    password: -ERR 'Authorization Violation' and a close."""
    b = auth_server(nk, tmp_path, timeout="5s")
    for send in (b"PUB x 1\r\nx\r\n", b"PING\r\n",
                 b'CONNECT {"user":"alice","pass":"nope"}\r\n'):
        c = nw.Conn(b.port)
        nw.read_info(c)
        c.send(send)
        assert [op.raw for op in c.expect_close()] == [b"-ERR 'Authorization Violation'"], send


def test_server_ping_and_stale_connection(nk):
    """ping_interval 1s, ping_max 2: the server PINGs; a client answering
    PONG stays; one that stops answering gets -ERR 'Stale Connection' and
    a close after ping_max unanswered PINGs."""
    b = nk(ns='ping_interval: "1s"\nping_max: 2\n',
           ward_conf='listeners.nats { bind = "127.0.0.1:{port}"\n'
                     '  ping_interval = 1s\n  ping_max = 2 }\n')
    t0 = time.monotonic()
    alive = connect(b.port)
    stale = connect(b.port)
    for _ in range(3):
        assert alive.expect("PING", 5).raw == b"PING"
        alive.send(b"PONG\r\n")
    ops = stale.expect_close(10)
    assert [op.raw for op in ops] == [b"PING", b"PING", b"-ERR 'Stale Connection'"]
    assert time.monotonic() - t0 < 8
    assert alive.flush() == []


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    import tls_pki
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


def test_tls_info_in_plaintext_then_handshake(nk, pki):
    """Server-only TLS (nats+tls://): INFO in plaintext says tls_required
    (no tls_verify), then the client's TLS handshake, then CONNECT and
    everything else inside TLS. A client that sends CONNECT in plaintext
    instead is closed (nats-server 2.9 sends nothing more)."""
    import ssl
    b = nk(ns='tls {\n  cert_file: "%s"\n  key_file: "%s"\n  ca_file: "%s"\n}\n'
              % (pki["server_crt"], pki["server_key"], pki["ca"]),
           ward=["--certfile", pki["server_crt"], "--keyfile", pki["server_key"],
                 "--cafile", pki["ca"]], scheme="nats+tls")
    ctx = ssl.create_default_context(cafile=pki["ca"])
    c = connect(b.port, tls=ctx)
    assert c.info.get("tls_required") is True and not c.info.get("tls_verify"), c.info
    c.sub("t", 1)
    c.hpub("t", b"NATS/1.0\r\nA: 1\r\n\r\n", b"secret")
    [op] = c.flush()
    assert (op.raw, op.headers, op.payload) == (b"HMSG t 1 18 24", b"NATS/1.0\r\nA: 1\r\n\r\n",
                                                b"secret")
    plain = nw.Conn(b.port)
    assert nw.read_info(plain)["tls_required"] is True
    plain.connect_op()
    plain.send(b"PING\r\n")
    assert [op for op in plain.expect_close(15) if op.name == "PONG"] == []
