"""NATS listeners in the configuration file and on the command line (issue
13): `ward check` takes a Mir-style nats-server block (nats-server's option
names, `key: value`, `users = [ {user: a, password: "$2a$..."} ]`, an
included authorization file) and refuses bad ones with a sentence naming
the key; `ward serve` opens the listeners. What a NATS client sees on them
(INFO, CONNECT ...) is the broker's, tested elsewhere; the greeting bytes
themselves are tested in tests/unit/net/test_server_greeting.c."""
import socket
import subprocess

import pytest

import tls_pki
from conftest import WARD, free_port, wait_port

# bcrypt hashes in nats-server's form (test data, not secrets: no password
# is known for them).
HASH_A = "$2a$11$" + "3kIDaCxw.Glsl1.u1nKa6eUviPL9yW0c4v6ySN6mDIcPn12rk/bgq"[:53]
HASH_B = "$2b$10$" + "Cq1kGVxXoHD8pMW4bOhf9e6qB3Kx0P1t3kA0mOFPpXb7OJ8u6mmQa"[:53]
NKEY = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"


def check(path):
    return subprocess.run([WARD, "check", "-c", str(path)], capture_output=True, text=True,
                          timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


def mir_conf(tmp_path, pki, port=4222):
    """A Mir deployment's nats-server.conf, as a ward listener block: TLS
    with client certificates, an authorization file included."""
    (tmp_path / "auth.conf").write_text("""
# users of the Mir deployment (nats-server syntax)
authorization {
  timeout: 2
  users = [
    {user: "mir-core", password: "%s", permissions: {publish: ">", subscribe: ">"}}
    {user: "device-1", password: "%s", permissions: {
      publish: {allow: ["device.device-1.>"]}
      subscribe: {allow: ["device-1.>", "_INBOX_device-1.>"], deny: ["device-1.secret"]}
      allow_responses: {max: 1, expires: "1m"}
    }}
    {nkey: %s, permissions: {sub: "_INBOX.>", pub: ["cli.>"]}}
  ]
}
""" % (HASH_A, HASH_B, NKEY))
    conf = tmp_path / "nats.conf"
    conf.write_text("""
listeners.nats.mir {
  bind: "127.0.0.1:%d"
  max_payload: 8MB
  max_control_line: 4KB
  max_pending: 64MB
  write_deadline: "10s"
  ping_interval: "2m"
  ping_max: 2
  max_connections: 1000
  tls {
    cert_file: "%s"
    key_file: "%s"
    ca_file: "%s"
    verify: true   # mutual TLS, as Mir's mTLS guide
    timeout: 2
    min_version: "1.2"
    curve_preferences: ["CurveP256", "X25519"]
    cipher_suites: ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"]
    expiry_warn_days: 14
  }
  include "auth.conf"
}
""" % (port, pki["server_crt"], pki["server_key"], pki["ca"]))
    return conf


def test_mir_block_accepted_and_printed(tmp_path, pki):
    r = check(mir_conf(tmp_path, pki))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "listeners.nats.mir {" in out
    assert "max_payload = 8388608" in out
    assert "max_output_bytes = 67108864" in out  # max_pending is its alias
    assert "slow_consumer_timeout = 10000ms" in out  # write_deadline is its alias
    assert "auth_timeout = 2000ms" in out  # authorization.timeout
    assert "verify = true" in out and "expiry_warn_days = 14" in out
    assert 'user = "device-1", password = "******"' in out
    assert 'allow = ["device.device-1.>"]' in out
    assert 'deny = ["device-1.secret"]' in out
    assert "allow_responses { max = 1, expires = 60000ms }" in out
    assert 'nkey = "%s"' % NKEY in out
    assert HASH_A not in out and HASH_B not in out  # secrets never printed


def bad(tmp_path, body):
    p = tmp_path / "bad.conf"
    p.write_text('listeners.nats.x {\n  bind: "127.0.0.1:4222"\n%s\n}\n' % body)
    r = check(p)
    assert r.returncode != 0, r.stdout
    return r.stderr


@pytest.mark.parametrize("body, needle", [
    ('  max_payload: 65MB', "listeners.nats.x.max_payload: 65MB is out of range (1 to 67108864)"),
    ('  max_paylaod: 1MB', "did you mean 'listeners.nats.x.max_payload'"),
    ('  tls { cert_file: "a", key_file: "b", colour: "red" }', "listeners.nats.x.tls.colour: "
     "unknown key"),
    ('  authorization { users = [ {user: a, password: "s3cret"} ] }',
     "listeners.nats.x.authorization.users[0]: a plaintext password"),
    ('  authorization { user: a, password: "s3cret" }', "a plaintext password"),
    ('  authorization { users = [ {user: a, password: "$2a$11$short"} ] }',
     "a plaintext password"),
    ('  authorization { users = [ {user: a, pasword: "x"} ] }',
     "users[0].pasword: unknown key (did you mean 'listeners.nats.x.authorization.users[0]."
     "password'?)"),
    ('  authorization { token: t, users = [ {user: a, password: "%s"} ] }' % HASH_A,
     "users cannot be combined with user/password or token"),
    ('  authorization { users = [ {user: a, password: "%s"}, {user: a, password: "%s"} ] }'
     % (HASH_A, HASH_B), "user 'a' is listed twice"),
    ('  authorization { users = [ {user: a} ] }', "user 'a' has no password"),
    ('  authorization { users = [ {nkey: "Ubad"} ] }', "not an NKey user public key"),
    ('  authorization { users = [ {user: a, password: "%s", permissions: {publish: {allw: '
     '"x"}}} ] }' % HASH_A, "permissions.publish.allw: unknown key (allow or deny)"),
    ('  authorization { users = [ {user: a, password: "%s", permissions: {publish: ["ok", '
     '""]}} ] }' % HASH_A, "expected a subject"),
    ('  no_auth_user: nobody', "no_auth_user: 'nobody' is not in authorization.users"),
    ('  tls { cert_file: "a", key_file: "b", verify: true }', "need tls.ca_file"),
    ('  tls { cert_file: "a" }', "tls needs cert_file and key_file"),
    ('  tls { handshake_first: true }', "tls.handshake_first needs a TLS listener"),
    ('  tls { cert_file: "a", key_file: "b", curve_preferences: ["CurveP999"] }',
     "'CurveP999' is not one of"),
])
def test_bad_blocks_refused(tmp_path, body, needle):
    err = bad(tmp_path, body)
    assert needle in err, err


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.1:99999", "127.0.0.1:42x", "a b:1"])
def test_bad_bind_refused(tmp_path, bind):
    p = tmp_path / "bad.conf"
    p.write_text('listeners.nats.x { bind: "%s" }\n' % bind)
    r = check(p)
    assert r.returncode != 0
    assert "listeners.nats.x.bind: '%s' is not HOST:PORT" % bind in r.stderr, r.stderr


def test_plaintext_password_message_says_how_to_hash(tmp_path):
    err = bad(tmp_path, '  authorization { users = [ {user: a, password: "s3cret"} ] }')
    assert "bcrypt" in err and "make one with `ward passwd --bcrypt`" in err, err


def test_printed_block_reads_back(tmp_path, pki):
    """What `ward check` prints for a block without secrets is a valid file."""
    p = tmp_path / "sni.conf"
    p.write_text('listeners.nats { listen: "127.0.0.1:4333", auth_timeout: 3s\n'
                 '  tls { cert_file: "%s", key_file: "%s", crlfile: "c.pem",\n'
                 '        sni = [ {host: "x.test", certfile: "%s", keyfile: "%s"} ] } }\n'
                 % (pki["server_crt"], pki["server_key"], pki["server_crt"], pki["server_key"]))
    r = check(p)
    assert r.returncode == 0, r.stderr
    body = r.stdout[r.stdout.index("listeners.nats.default {"):]
    assert 'bind = "127.0.0.1:4333"' in body and 'crlfile = "c.pem"' in body
    assert 'host = "x.test"' in body
    again = tmp_path / "again.conf"
    again.write_text(body)
    r2 = check(again)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout[r2.stdout.index("listeners.nats.default {"):] == body


def test_unnamed_block_and_every_error_listed(tmp_path):
    p = tmp_path / "bad.conf"
    p.write_text('listeners.nats { bind: "127.0.0.1:1", max_payload: 0, ping_max: 0 }\n')
    r = check(p)
    assert r.returncode != 0
    assert "listeners.nats.max_payload: 0 is out of range" in r.stderr
    assert "listeners.nats.ping_max: 0 is out of range" in r.stderr


# ---- ward serve ------------------------------------------------------------

def run_serve(tmp_path, args, needles, port):
    log = tmp_path / ("serve-%d.log" % port)
    with open(log, "wb") as f:
        p = subprocess.Popen([WARD, "serve", "--workers", "1", *args], stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_port(port, proc=p, timeout=15), log.read_text()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        text = log.read_text()
        for n in needles:
            assert n in text, text
    finally:
        p.terminate()
        assert p.wait(timeout=15) == 0, log.read_text()


def test_serve_nats_urls(tmp_path, pki):
    a, b, c = free_port(), free_port(), free_port()
    run_serve(tmp_path, ["-l", "nats://127.0.0.1:%d" % a, "-l", "nats+tls://127.0.0.1:%d" % b,
                         "-l", "nats+mtls://127.0.0.1:%d" % c, "--max-payload", "8MB",
                         "--certfile", pki["server_crt"], "--keyfile", pki["server_key"],
                         "--cafile", pki["ca"]],
              ["listening on nats://127.0.0.1:%d" % a, "listening on nats+tls://127.0.0.1:%d" % b,
               "listening on nats+mtls://127.0.0.1:%d" % c], c)


@pytest.mark.parametrize("size", ["0", "65MB", "lots"])
def test_serve_refuses_bad_max_payload(size):
    r = subprocess.run([WARD, "serve", "-l", "nats://127.0.0.1:0", "--max-payload", size],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "--max-payload: '%s' is not a size from 1 byte to 64MB" % size in r.stderr


def test_serve_plain_block(tmp_path):
    port = free_port()
    conf = tmp_path / "plain.conf"
    # nats-server's `listen` for bind
    conf.write_text('listeners.nats.dev { listen: "127.0.0.1:%d", max_payload: 2MB }\n' % port)
    run_serve(tmp_path, ["-c", str(conf)], ["listening on nats://127.0.0.1:%d" % port], port)


def test_serve_mir_block(tmp_path, pki):
    port = free_port()
    run_serve(tmp_path, ["-c", str(mir_conf(tmp_path, pki, port))],
              ["listening on nats+mtls://127.0.0.1:%d" % port], port)


def nats_login(port, ctx, connect):
    """INFO in plaintext, the TLS handshake, CONNECT and PING; returns the
    first line after (PONG, or -ERR ...)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    line = b""
    while not line.endswith(b"\r\n") and len(line) < 8192:
        b = raw.recv(1)
        if not b:
            break
        line += b
    assert line.startswith(b"INFO {") and b'"tls_verify":true' in line, line
    t = ctx.wrap_socket(raw, server_hostname="localhost")
    try:
        t.sendall(b"CONNECT " + connect.encode() + b"\r\nPING\r\n")
        f = t.makefile("rb")
        return f.readline()
    finally:
        t.close()


def test_serve_verify_and_map_user_without_password(tmp_path, pki):
    """A user listed without a password under verify_and_map logs in by its
    certificate only: naming it with any password is refused."""
    import ssl
    port = free_port()
    conf = tmp_path / "map.conf"
    conf.write_text('listeners.nats.m {\n  bind: "127.0.0.1:%d"\n'
                    '  tls { cert_file: "%s", key_file: "%s", ca_file: "%s", verify_and_map: true }\n'
                    '  authorization { users = [ {user: "dev1@example.test", permissions: '
                    '{publish: "dev.>"}} ] }\n}\n'
                    % (port, pki["server_crt"], pki["server_key"], pki["ca"]))
    log = tmp_path / "map.log"
    with open(log, "wb") as f:
        p = subprocess.Popen([WARD, "serve", "--workers", "1", "-c", str(conf)], stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_port(port, proc=p, timeout=15), log.read_text()
        ctx = ssl.create_default_context(cafile=pki["ca"])
        ctx.load_cert_chain(pki["client_crt"], pki["client_key"])
        assert nats_login(port, ctx, '{"verbose":false}') == b"PONG\r\n"
        other = ssl.create_default_context(cafile=pki["ca"])
        other.load_cert_chain(pki["client_rsa_crt"], pki["client_rsa_key"])  # maps to nobody
        got = nats_login(port, other, '{"verbose":false,"user":"dev1@example.test","pass":""}')
        assert got.startswith(b"-ERR 'Authorization Violation'"), got
    finally:
        p.terminate()
        assert p.wait(timeout=15) == 0, log.read_text()


def test_serve_no_auth_user_without_password(tmp_path):
    """no_auth_user listed without a password: clients without credentials
    get its rights; naming it with any password is refused."""
    port = free_port()
    conf = tmp_path / "guest.conf"
    conf.write_text('listeners.nats.g {\n  bind: "127.0.0.1:%d"\n  no_auth_user: guest\n'
                    '  authorization { users = [ {user: guest, permissions: {publish: "pub.>"}} '
                    '{user: admin, password: "%s"} ] }\n}\n' % (port, HASH_A))
    log = tmp_path / "guest.log"
    with open(log, "wb") as f:
        p = subprocess.Popen([WARD, "serve", "--workers", "1", "-c", str(conf)], stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_port(port, proc=p, timeout=15), log.read_text()

        def login(connect):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            f = s.makefile("rb")
            assert f.readline().startswith(b"INFO {")
            s.sendall(b"CONNECT " + connect + b"\r\nPING\r\n")
            got = f.readline()
            s.close()
            return got

        assert login(b'{"verbose":false}') == b"PONG\r\n"
        for pw in (b"", b"guest", b"x"):
            got = login(b'{"verbose":false,"user":"guest","pass":"' + pw + b'"}')
            assert got.startswith(b"-ERR 'Authorization Violation'"), got
    finally:
        p.terminate()
        assert p.wait(timeout=15) == 0, log.read_text()


def test_passwd_bcrypt_hash_logs_in(tmp_path):
    """`ward passwd --bcrypt` (what the plaintext refusal names) makes a hash
    `ward check` takes and a NATS client logs in with."""
    r = subprocess.run([WARD, "passwd", "--bcrypt", "--cost", "4"], input="s3cret\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert h.startswith("$2b$04$") and len(h) == 60, h
    port = free_port()
    conf = tmp_path / "pw.conf"
    conf.write_text('listeners.nats.p {\n  bind: "127.0.0.1:%d"\n'
                    '  authorization { users = [ {user: carol, password: "%s"} ] }\n}\n'
                    % (port, h))
    assert check(conf).returncode == 0
    log = tmp_path / "pw.log"
    with open(log, "wb") as f:
        p = subprocess.Popen([WARD, "serve", "--workers", "1", "-c", str(conf)], stdout=f,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_port(port, proc=p, timeout=15), log.read_text()
        for pw, want in ((b"s3cret", b"PONG\r\n"), (b"wrong", b"-ERR 'Authorization Violation'")):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            f = s.makefile("rb")
            assert f.readline().startswith(b"INFO {")
            s.sendall(b'CONNECT {"verbose":false,"user":"carol","pass":"' + pw + b'"}\r\nPING\r\n')
            assert f.readline().startswith(want)
            s.close()
    finally:
        p.terminate()
        assert p.wait(timeout=15) == 0, log.read_text()


@pytest.mark.parametrize("args", [["--bcrypt", "f", "u"], ["--cost", "5", "f", "u"],
                                  ["--bcrypt", "--cost", "17"]])
def test_passwd_bcrypt_usage(args):
    r = subprocess.run([WARD, "passwd", *args], input="x\n", capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2, r.stderr


def test_serve_refuses_unknown_cipher_suite(tmp_path, pki):
    """cipher_suites take IANA names (as nats-server); one OpenSSL does not
    know stops ward serve with its name."""
    conf = tmp_path / "c.conf"
    conf.write_text('listeners.nats.c {\n  bind: "127.0.0.1:%d"\n'
                    '  tls { cert_file: "%s", key_file: "%s", '
                    'cipher_suites: ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_NOPE"] }\n}\n'
                    % (free_port(), pki["server_crt"], pki["server_key"]))
    r = subprocess.run([WARD, "serve", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "tls.cipher_suites: 'TLS_NOPE' is not a cipher suite OpenSSL knows" in r.stderr, r.stderr
