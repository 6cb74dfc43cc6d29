"""NATS authentication and permissions (issue 13), differentially against
nats-server 2.9 and ward: user/password (ward's password file; nats-server's
users list), token, NKeys (a key pair made at test time with Debian's Go
nkeys package, the nonce signed), bcrypt users in an `authorization { }`
block, verify_and_map with client certificates made at test time,
permission -ERR texts, and allow_responses. ward gets the same
`authorization { }` / `tls { }` text inside `listeners.nats { }` that
nats-server gets at top level (ward accepts nats-server's option names)."""
import ssl
import subprocess

import pytest

import natswire as nw
import tls_pki
from conftest import WARD

VIOLATION = b"-ERR 'Authorization Violation'"


def serve(nk, inner, ward_args=()):
    return nk(ns=inner, ward=ward_args,
              ward_conf='listeners.nats {\n  bind = "127.0.0.1:{port}"\n%s\n}\n' % inner)


def tool(nats_build, *args):
    r = subprocess.run([nats_build("natstool.go")] + list(args), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def login(port, tls=None, **opts):
    """INFO, CONNECT with opts; returns (conn, INFO, operations before the
    PONG or the close, closed?)."""
    c = nw.Conn(port)
    info = nw.read_info(c)
    if tls is not None:
        c.starttls(tls)
    c.connect_op(headers=True, **opts)
    c.send(b"PING\r\n")
    ops = []
    while True:
        try:
            op = c.read_op()
        except nw.Closed:
            return c, info, ops, True
        if op.name == "PONG":
            return c, info, ops, False
        ops.append(op)


def accepted(port, **opts):
    c, info, ops, closed = login(port, **opts)
    assert not closed and ops == [], ops
    return c


def refused(port, **opts):
    c, info, ops, closed = login(port, **opts)
    assert closed and [op.raw for op in ops] == [VIOLATION], ops
    return info


def go_ping(nats_build, port, *args, scheme="nats"):
    r = subprocess.run([nats_build("goclient.go"), "-url", "%s://127.0.0.1:%d" % (scheme, port),
                        "-mode", "ping"] + list(args), capture_output=True, text=True, timeout=60)
    return r.returncode == 0 and r.stdout.strip().endswith("ok ping"), r.stdout + r.stderr


def test_user_password(nk, tmp_path, nats_build):
    """ward: the password file MQTT uses (`ward passwd`); nats-server: its
    users list. INFO says auth_required; a wrong password, an unknown user
    and no credentials: -ERR 'Authorization Violation' and a close."""
    if nk.kind == "ward":
        from test_auth import passwd
        pw = str(tmp_path / "pw.conf")
        passwd(pw, "alice", "alice-pw")
        b = nk(ward=["--password-file", pw, "--allow-anonymous", "false"])
    else:
        b = nk(ns='authorization { users = [ { user = "alice", password = "alice-pw" } ] }')
    info = refused(b.port, user="alice", **{"pass": "wrong"})
    assert info["auth_required"] is True
    refused(b.port, user="mallory", **{"pass": "alice-pw"})
    refused(b.port)
    accepted(b.port, user="alice", **{"pass": "alice-pw"})
    ok, out = go_ping(nats_build, b.port, "-user", "alice", "-pass", "alice-pw")
    assert ok, out
    ok, out = go_ping(nats_build, b.port, "-user", "alice", "-pass", "nope")
    assert not ok and "Authorization Violation" in out, out


def test_token(nk, nats_build):
    b = serve(nk, 'authorization { token = "s3cret-token" }')
    accepted(b.port, auth_token="s3cret-token")
    refused(b.port, auth_token="s3cret")
    refused(b.port, user="s3cret-token")
    refused(b.port)
    ok, out = go_ping(nats_build, b.port, "-token", "s3cret-token")
    assert ok, out


def test_nkey(nk, nats_build, tmp_path):
    """INFO carries a nonce; CONNECT with the public key and the seed's
    signature over that nonce is accepted; a signature over another nonce,
    another key, or no signature is refused."""
    pub, seed = tool(nats_build, "nkey")
    other_pub, other_seed = tool(nats_build, "nkey")
    b = serve(nk, 'authorization { users = [ { nkey = "%s" } ] }' % pub)
    c = nw.Conn(b.port)
    info = nw.read_info(c)
    assert info["auth_required"] is True and isinstance(info.get("nonce"), str), info
    [sig] = tool(nats_build, "sign", seed, info["nonce"])
    c.connect_op(nkey=pub, sig=sig)
    assert c.flush() == []
    c2 = nw.Conn(b.port)
    nonce2 = nw.read_info(c2)["nonce"]
    assert nonce2 != info["nonce"]
    c2.connect_op(nkey=pub, sig=sig)  # a replayed signature
    assert [op.raw for op in c2.expect_close()] == [VIOLATION]
    c3 = nw.Conn(b.port)
    [sig3] = tool(nats_build, "sign", other_seed, nw.read_info(c3)["nonce"])
    c3.connect_op(nkey=other_pub, sig=sig3)
    assert [op.raw for op in c3.expect_close()] == [VIOLATION]
    refused(b.port, nkey=pub)
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(seed + "\n")
    ok, out = go_ping(nats_build, b.port, "-nkey-seed", str(seed_file))
    assert ok, out


def test_bcrypt_users(nk, nats_build):
    """bcrypt hashes ($2a$, as nats-server's configs hold them) in an
    authorization users list."""
    [h] = tool(nats_build, "bcrypt", "bob-pw")
    assert h.startswith("$2a$")
    b = serve(nk, 'authorization { users = [ { user = "bob", password = "%s" } ] }' % h)
    accepted(b.port, user="bob", **{"pass": "bob-pw"})
    refused(b.port, user="bob", **{"pass": h})
    refused(b.port, user="bob", **{"pass": "bob-p"})
    ok, out = go_ping(nats_build, b.port, "-user", "bob", "-pass", "bob-pw")
    assert ok, out


def test_ward_refuses_plaintext_passwords(tmp_path):
    """ward (not nats-server, which takes them) refuses plaintext passwords
    in an authorization block: `ward check` fails and says to use bcrypt."""
    from conftest import ward_speaks_nats
    if not ward_speaks_nats():
        pytest.skip("this ward does not serve NATS yet")
    conf = tmp_path / "ward.conf"
    conf.write_text('listeners.nats {\n  bind = "127.0.0.1:4222"\n'
                    '  authorization { users = [ { user = "carol", password = "plain" } ] }\n}\n')
    r = subprocess.run([WARD, "check", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0 and "bcrypt" in r.stdout + r.stderr, r.stdout + r.stderr


PERMS = '''authorization { users = [
  { user = "dev", password = "%s",
    permissions = { publish = { allow = ["device.>"] },
                    subscribe = { allow = ["dev.>"], deny = ["dev.secret"] },
                    allow_responses = { max = 1 } } }
  { user = "req", password = "%s" }
] }'''


@pytest.fixture
def perm_server(nk, nats_build):
    [h] = tool(nats_build, "bcrypt", "pw")
    return serve(nk, PERMS % (h, h))


def test_permission_error_texts(perm_server):
    """nats-server's texts; the connection stays open after each."""
    c = accepted(perm_server.port, user="dev", **{"pass": "pw"})
    c.pub("other.x", b"x")
    assert [op.raw for op in c.flush()] == [
        b"-ERR 'Permissions Violation for Publish to \"other.x\"'"]
    c.sub("other.x", 1)
    assert [op.raw for op in c.flush()] == [
        b"-ERR 'Permissions Violation for Subscription to \"other.x\"'"]
    c.sub("other.x", 2, queue="q")
    assert [op.raw for op in c.flush()] == [
        b"-ERR 'Permissions Violation for Subscription to \"other.x\" using queue \"q\"'"]
    c.sub("dev.secret", 3)
    assert [op.raw for op in c.flush()] == [
        b"-ERR 'Permissions Violation for Subscription to \"dev.secret\"'"]
    c.sub("dev.>", 4)
    c.pub("device.1.tlm", b"t")
    assert c.flush() == []
    r = accepted(perm_server.port, user="req", **{"pass": "pw"})
    r.sub("device.>", 1)
    r.flush()
    c.pub("device.1.tlm", b"t")
    c.pub("nope", b"n")
    assert [op.raw for op in c.flush()] == [b"-ERR 'Permissions Violation for Publish to \"nope\"'"]
    assert [op.raw for op in r.flush()] == [b"MSG device.1.tlm 1 1"]


def test_allow_responses(perm_server):
    """A client may publish to the reply subject of a request it received,
    once (max 1), without a publish permission for it; a second reply, or
    a reply subject it never received, is a publish violation."""
    dev = accepted(perm_server.port, user="dev", **{"pass": "pw"})
    dev.sub("dev.cmd", 1)
    dev.flush()
    req = accepted(perm_server.port, user="req", **{"pass": "pw"})
    req.sub("_INBOX.abc.*", 9)
    req.pub("dev.cmd", b"do", reply="_INBOX.abc.1")
    req.flush()
    [m] = dev.msgs(dev.flush())
    assert m.reply == "_INBOX.abc.1"
    dev.pub(m.reply, b"ok1")
    assert dev.flush() == []
    dev.pub(m.reply, b"ok2")
    dev.pub("_INBOX.abc.2", b"unasked")
    assert [op.raw for op in dev.flush()] == [
        b"-ERR 'Permissions Violation for Publish to \"_INBOX.abc.1\"'",
        b"-ERR 'Permissions Violation for Publish to \"_INBOX.abc.2\"'"]
    assert [(op.raw, op.payload) for op in req.flush()] == [(b"MSG _INBOX.abc.1 9 3", b"ok1")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


def tls_ctx(pki, client=None):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if client:
        ctx.load_cert_chain(pki[client + "_crt"], pki[client + "_key"])
    return ctx


def test_verify_and_map(nk, pki, nats_build):
    """verify_and_map: the client certificate is required and a name from it
    (here its e-mail SAN, dev1@example.test) must be a listed user, whose
    permissions then apply; a valid certificate naming nobody listed is an
    Authorization Violation."""
    inner = ('tls {\n  cert_file = "%s"\n  key_file = "%s"\n  ca_file = "%s"\n'
             '  verify_and_map = true\n}\n'
             'authorization { users = [\n'
             '  { user = "dev1@example.test", permissions = { publish = ["dev.>"], '
             'subscribe = ["dev.>"] } }\n] }' % (pki["server_crt"], pki["server_key"], pki["ca"]))
    b = serve(nk, inner)
    c, info, ops, closed = login(b.port, tls=tls_ctx(pki, "client"))
    assert info.get("tls_required") is True and info.get("tls_verify") is True, info
    assert not closed and ops == [], ops
    c.sub("dev.x", 1)
    c.pub("dev.x", b"hi")
    c.pub("other", b"no")
    assert [op.raw for op in c.flush()] == [
        b"MSG dev.x 1 2", b"-ERR 'Permissions Violation for Publish to \"other\"'"]
    c, info, ops, closed = login(b.port, tls=tls_ctx(pki, "client_rsa"))
    assert closed and [op.raw for op in ops] == [VIOLATION], ops
    ok, out = go_ping(nats_build, b.port, "-ca", pki["ca"], "-cert", pki["client_crt"], "-key",
                      pki["client_key"], "-subject", "dev.ping", scheme="tls")
    assert ok, out
    try:  # no client certificate: the handshake fails, or the first read
        c, info, ops, closed = login(b.port, tls=tls_ctx(pki))
        assert closed and not [op for op in ops if op.name != "-ERR"], ops
    except (ssl.SSLError, OSError):
        pass


ACL = """rules = [
  {"permit": "allow", "action": "publish", "topics": ["devices/${username}/#"]}
  {"permit": "allow", "action": "subscribe",
   "topics": ["public/#", "inbox/${username}/#", "devices/${username}/#"]}
  {"permit": "deny"}
]
"""


def test_ward_acl_file_on_nats_subjects(nats_ward, tmp_path):
    """ward only: the ACL file MQTT listeners use (MQTT topic patterns with
    ${username}) decides NATS publishes and subscriptions, mapped by the
    subject mapping, with nats-server's -ERR texts; the connection stays."""
    from test_auth import passwd
    pw = str(tmp_path / "pw.conf")
    passwd(pw, "alice", "alice-pw")
    acl = tmp_path / "acl.conf"
    acl.write_text(ACL)
    w = nats_ward(["--password-file", pw, "--acl-file", str(acl), "--allow-anonymous", "false"])
    c = accepted(w.nats_port, user="alice", **{"pass": "alice-pw"})
    c.sub("public.>", 1)
    c.sub("inbox.alice.*", 2)
    c.sub("inbox.bob.x", 3)
    c.sub(">", 4)
    assert [op.raw for op in c.flush()] == [
        b"-ERR 'Permissions Violation for Subscription to \"inbox.bob.x\"'",
        b"-ERR 'Permissions Violation for Subscription to \">\"'"]
    c.pub("devices.alice.t", b"ok")
    c.pub("devices.bob.t", b"no")
    c.pub("public.news", b"no")
    assert [op.raw for op in c.flush()] == [
        b"-ERR 'Permissions Violation for Publish to \"devices.bob.t\"'",
        b"-ERR 'Permissions Violation for Publish to \"public.news\"'"]
    import mqttwire as mw
    m = mw.connected(w.port, "m-alice", username="alice", password="alice-pw")
    m.sub([("devices/alice/#", 0)])
    c.pub("devices.alice.t", b"to-mqtt")
    assert c.flush() == []
    assert [(p.topic, p.payload) for p in m.collect(1)] == [("devices/alice/t", b"to-mqtt")]
