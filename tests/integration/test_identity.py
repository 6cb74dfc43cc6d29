"""Identities that cannot be borrowed (issue 11 items 1-4): the identity
access control sees is one the broker verified, sessions belong to the
identity that made them, a stale CRL never strips a certificate's rules,
server-assigned client ids are unpredictable, and nothing a peer chose can
forge a log line. Each test drives ward with raw packets over TCP or TLS,
as an attacker would."""
import os
import re
import socket
import ssl
import struct
import time

import pytest

import tls_pki
from conftest import free_port
from test_auth import Raw, passwd


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


class TlsRaw(Raw):
    """The raw client of test_auth.py over TLS with a client certificate."""

    def __init__(self, port, pki, client="client", v5=True):
        ctx = ssl.create_default_context(cafile=pki["ca"])
        if client:
            ctx.load_cert_chain(pki[client + "_crt"], pki[client + "_key"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.v5 = v5
        self.buf = b""


def connack(c, cid, user=None, pw=None, clean=True, expiry=None, will=None):
    """Sends CONNECT; returns (session present, reason code)."""
    flags = 0x02 if clean else 0
    payload = struct.pack("!H", len(cid)) + cid.encode()
    props = b""
    if c.v5 and expiry is not None:
        props = b"\x11" + struct.pack("!I", expiry)
    if will:
        flags |= 0x04
        wp = b"\x00" if c.v5 else b""
        payload += wp + struct.pack("!H", len(will[0])) + will[0].encode()
        payload += struct.pack("!H", len(will[1])) + will[1].encode()
    if user is not None:
        flags |= 0x80
        payload += struct.pack("!H", len(user)) + user.encode()
    if pw is not None:
        flags |= 0x40
        payload += struct.pack("!H", len(pw)) + pw.encode()
    body = b"\x00\x04MQTT" + bytes([5 if c.v5 else 4, flags]) + struct.pack("!H", 60)
    if c.v5:
        body += bytes([len(props)]) + props
    c.send(1, 0, body + payload)
    p = c.read(5)
    assert p is not None, "no CONNACK (closed or timed out)"
    assert p[0] == 2, p
    return p[2][0] & 1, p[2][1]


def wait_listening(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("ward is not listening on %d" % port)


def start(ward_factory, tmp_path, listener, acl, auth_extra=""):
    pw = str(tmp_path / "pw.conf")
    for user in ("alice", "bob", "admin"):
        passwd(pw, user, user + "-pw")
    (tmp_path / "acl.conf").write_text(acl)
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text(listener % {"port": port} +
                    'auth {\n  allow_anonymous = false\n  no_match = deny\n'
                    '  password = {include "pw.conf"}\n  acl = {include "acl.conf"}\n%s}\n'
                    % auth_extra)
    w = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    wait_listening(port)
    w.port = port
    return w


def mtls_listener(pki, extra=""):
    return ('listeners.ssl {\n  bind = "127.0.0.1:%%(port)d"\n  keyfile = "%s"\n'
            '  certfile = "%s"\n  cacertfile = "%s"\n  verify_peer = true\n'
            '  fail_if_no_peer_cert = true\n%s}\n'
            % (pki["server_key"], pki["server_crt"], pki["ca"], extra))


TCP = 'listeners.tcp { bind = "127.0.0.1:%(port)d" }\n'

ADMIN_ACL = """rules = [
  {"permit": "allow", "username": "admin"}
  {"permit": "allow", "cert_ou": "Devices", "topics": ["devices/${cert_cn}/#"]}
]
"""


# ---- item 1: a certificate does not let a device name its own user --------

@pytest.mark.parametrize("v5", [True, False])
def test_certificate_login_cannot_claim_a_user_name(ward_factory, tmp_path, pki, v5):
    w = start(ward_factory, tmp_path, mtls_listener(pki), ADMIN_ACL)
    # The device's own rights work.
    c = TlsRaw(w.port, pki, v5=v5)
    assert connack(c, "dev-a")[1] == 0
    assert c.subscribe("devices/device-1/#", 1)[0] == 1
    c.disconnect()
    # Claiming "admin" without a password: the name is ignored, not trusted.
    c = TlsRaw(w.port, pki, v5=v5)
    assert connack(c, "dev-b", user="admin")[1] == 0
    assert c.subscribe("admin/#", 1)[0] == (0x87 if v5 else 0x80)
    assert c.publish("admin/x", b"p", qos=1) == (0x87 if v5 else 0)
    c.disconnect()
    w.wait_log("user name 'admin' ignored")
    # With a wrong password the claim is refused outright.
    c = TlsRaw(w.port, pki, v5=v5)
    assert connack(c, "dev-c", user="admin", pw="guess")[1] == (0x86 if v5 else 4)
    c.drop()
    # With the right one it is admin's.
    c = TlsRaw(w.port, pki, v5=v5)
    assert connack(c, "dev-d", user="admin", pw="admin-pw")[1] == 0
    assert c.subscribe("admin/#", 1)[0] == 1
    c.disconnect()


def test_require_password_still_needs_the_users_password(ward_factory, tmp_path, pki):
    w = start(ward_factory, tmp_path, mtls_listener(pki, "  require_password = true\n"),
              ADMIN_ACL)
    c = TlsRaw(w.port, pki)
    assert connack(c, "dev-a", user="admin")[1] == 0x86
    c.drop()
    c = TlsRaw(w.port, pki)
    assert connack(c, "dev-a", user="admin", pw="admin-pw")[1] == 0
    assert c.subscribe("admin/#", 1)[0] == 1
    c.disconnect()


# ---- item 2: sessions belong to their identity ------------------------------

OPEN_ACL = """rules = [
  {"permit": "allow"}
]
"""


@pytest.mark.parametrize("v5, refused", [(True, 0x87), (False, 5)])
def test_another_identity_cannot_take_over_or_resume(ward_factory, tmp_path, v5, refused):
    w = start(ward_factory, tmp_path, TCP, OPEN_ACL)
    alice = Raw(w.port, v5)
    assert connack(alice, "shared", "alice", "alice-pw", clean=False, expiry=600,
                   will=("wills/alice", "gone")) == (0, 0)
    assert alice.subscribe("inbox/#", 1)[0] == 1
    watcher = Raw(w.port, v5)
    assert connack(watcher, "watcher", "admin", "admin-pw")[1] == 0
    watcher.subscribe("wills/#", 0)
    # Live takeover by bob: refused, and alice keeps her connection.
    bob = Raw(w.port, v5)
    assert connack(bob, "shared", "bob", "bob-pw", clean=False, expiry=600) == (0, refused)
    bob.drop()
    w.wait_log("belongs to another identity")
    p = Raw(w.port, v5)
    assert connack(p, "pub", "admin", "admin-pw")[1] == 0
    p.publish("inbox/1", b"still alice's", qos=1)
    assert alice.next_publish(5) == ("inbox/1", b"still alice's", False)
    # Her session offline with a message queued: bob may neither resume it
    # nor discard it with clean start.
    alice.disconnect()
    # Her DISCONNECT (and the PUBACK before it) handled before she comes back.
    w.wait_log("disconnected: client disconnected")
    p.publish("inbox/2", b"queued", qos=1)
    for clean in (False, True):
        bob = Raw(w.port, v5)
        assert connack(bob, "shared", "bob", "bob-pw", clean=clean, expiry=600)[1] == refused
        bob.drop()
    # The same identity resumes it, with what was queued.
    alice = Raw(w.port, v5)
    assert connack(alice, "shared", "alice", "alice-pw", clean=False, expiry=600) == (1, 0)
    assert alice.next_publish(5) == ("inbox/2", b"queued", False)
    # No will fired on the refused takeovers (alice disconnected normally):
    # the next thing the watcher sees is a marker published after them.
    p.publish("wills/marker", b"m", qos=1)
    assert watcher.next_publish(5) == ("wills/marker", b"m", False)
    alice.disconnect()
    watcher.disconnect()
    p.disconnect()


def test_same_identity_takes_over(ward_factory, tmp_path):
    w = start(ward_factory, tmp_path, TCP, OPEN_ACL)
    a1 = Raw(w.port)
    assert connack(a1, "mine", "alice", "alice-pw", clean=False, expiry=600) == (0, 0)
    a2 = Raw(w.port)
    assert connack(a2, "mine", "alice", "alice-pw", clean=False, expiry=600) == (1, 0)
    p = a1.read(5)  # DISCONNECT 0x8E (MQTT-3.1.4-3)
    assert p is not None and p[0] == 14 and p[2][0] == 0x8E, p
    a2.disconnect()


ID_ACL = OPEN_ACL


@pytest.mark.parametrize("v5, refused", [(True, 0x85), (False, 2)])
def test_clientid_must_match_username(ward_factory, tmp_path, v5, refused):
    listener = ('listeners.tcp {\n  bind = "127.0.0.1:%(port)d"\n'
                '  clientid_must_match = username\n}\n')
    w = start(ward_factory, tmp_path, listener, ID_ACL)
    c = Raw(w.port, v5)
    assert connack(c, "alice", "alice", "alice-pw")[1] == 0
    c.disconnect()
    c = Raw(w.port, v5)
    assert connack(c, "bob", "alice", "alice-pw")[1] == refused
    c.drop()
    w.wait_log("the client id must be the verified user name")


def test_clientid_must_match_cert_cn(ward_factory, tmp_path, pki):
    w = start(ward_factory, tmp_path, mtls_listener(pki, "  clientid_must_match = cert_cn\n"),
              ID_ACL)
    c = TlsRaw(w.port, pki)
    assert connack(c, "device-1")[1] == 0
    c.disconnect()
    c = TlsRaw(w.port, pki)
    assert connack(c, "device-2")[1] == 0x85
    c.drop()


# ---- item 3: a stale CRL keeps the certificate's restrictions ---------------

DENY_ACL = """rules = [
  {"permit": "deny", "cert_cn": "device-1", "topics": ["blocked/#"]}
  {"permit": "allow"}
]
"""


def test_stale_crl_keeps_certificate_identity(ward_factory, tmp_path, pki):
    listener = mtls_listener(pki, '  crlfile = "%s"\n  crl_strict = false\n' % pki["crl_stale"])
    w = start(ward_factory, tmp_path, listener, DENY_ACL)
    c = TlsRaw(w.port, pki)
    assert connack(c, "dev")[1] == 0  # accepted despite the stale CRL...
    w.wait_log("past its next update")
    assert c.subscribe("blocked/#", 1)[0] == 0x87  # ...with its deny rule in force
    assert c.publish("blocked/x", b"p", qos=1) == 0x87
    assert c.subscribe("open/#", 1)[0] == 1
    c.disconnect()


# ---- certificate names that cannot be an identity ----------------------------

@pytest.mark.parametrize("cert", ["client_two_cn", "client_nul_cn"])
def test_ambiguous_certificate_names_are_refused(ward_factory, tmp_path, pki, cert):
    """A CA-signed certificate whose CN repeats, or hides a NUL ("admin\\0.evil"
    once read as "admin"), gives no identity: refused, not let in anonymous."""
    w = start(ward_factory, tmp_path, mtls_listener(pki), ADMIN_ACL)
    c = TlsRaw(w.port, pki, client=cert)
    assert connack(c, "x")[1] == 0x87
    c.drop()
    w.wait_log("certificate's names are ambiguous")


# ---- item 4: assigned ids, log lines ----------------------------------------

def test_assigned_client_ids_are_random(ward):
    ids = set()
    for _ in range(5):
        c = Raw(ward.port)
        c.send(1, 0, b"\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x00")
        p = c.read(5)
        assert p and p[0] == 2 and p[2][1] == 0, p
        m = re.search(rb"\x12\x00(.)(ward-[0-9a-f]+)", p[2])
        assert m, p
        ids.add(m.group(2))
        assert len(m.group(2)) == 5 + 32  # 128 random bits
        c.disconnect()
    assert len(ids) == 5


def test_log_lines_cannot_be_forged(ward):
    forged = "x\n2026-01-01T00:00:00.000Z NOTICE client 'admin' connected"
    c = Raw(ward.port)
    c.send(1, 0, b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + struct.pack("!H", len(forged)) +
           forged.encode())
    p = c.read(5)
    assert p and p[0] == 2, p
    c.disconnect()
    log = ward.wait_log("x\\x0a2026-01-01")
    assert not any(line.startswith("2026-01-01T00:00:00.000Z") for line in log.splitlines())
