"""The Mir-shaped scenario (issue 13, "What Mir uses") with nats.go over
mutual TLS, against nats-server 2.9 and ward: see tests/integration/nats/
mir.go for the parties and what each checks (telemetry with headers into
module queue groups, config requests answered and followed by +ACK, a
command answered by the device, an 8 MB payload, per-device inboxes that
another device cannot read, a config request on reconnect after a server
restart). Certificates are made at test time, one per party, with
OU=Devices/Services/Operators and the CN naming it.

Device scope, the same in both servers' terms:
- nats-server: verify_and_map users named by the certificate's DN with
  `permissions` (publish device.<cn>.> and client.<cn>.>, subscribe <cn>.>
  and _INBOX.<cn>.>, allow_responses for answering commands);
- ward: its ACL file (MQTT topic patterns with ${cert_cn}, see ACL below;
  ward maps NATS subjects onto them), on a `nats+mtls://` listener.
Revocation is ward only: nats-server 2.9 reads no CRL."""
import os
import select
import signal
import ssl
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

import natswire as nw
import tls_pki as tp

PARTIES = {"dev-1": "Devices", "dev-2": "Devices", "core": "Services", "cli": "Operators"}

ACL = """rules = [
  {"permit": "allow", "cert_ou": "Devices", "action": "publish",
   "topics": ["device/${cert_cn}/#", "client/${cert_cn}/#", "_INBOX/#"]}
  {"permit": "allow", "cert_ou": "Devices", "action": "subscribe",
   "topics": ["${cert_cn}/#", "_INBOX/${cert_cn}/#"]}
  {"permit": "deny", "cert_ou": "Devices"}
  {"permit": "allow", "cert_ou": "Services"}
  {"permit": "allow", "cert_ou": "Operators"}
  {"permit": "deny"}
]
"""


def device_user(cn):
    return ('{ user = "CN=%s,OU=Devices", permissions = {\n'
            '    publish = { allow = ["device.%s.>", "client.%s.>"] }\n'
            '    subscribe = { allow = ["%s.>", "_INBOX.%s.>"] }\n'
            '    allow_responses = true } }' % ((cn,) * 5))


class MirPki:
    """A root CA, a server certificate for 127.0.0.1 / localhost, one client
    certificate per party, and a CRL that `revoke` rewrites."""

    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.ca_key = tp._key()
        self.ca = tp._cert(tp._name("Mir Test CA"), self.ca_key, None, self.ca_key, ca=True)
        self.ca_path = tp._write(d, "ca.crt", tp._pem(self.ca))
        self.certs = {}
        self.leaf("server", "localhost", None, [ExtendedKeyUsageOID.SERVER_AUTH],
                  sans=["localhost"], ips=["127.0.0.1"])
        for cn, ou in PARTIES.items():
            self.leaf(cn, cn, ou, [ExtendedKeyUsageOID.CLIENT_AUTH])
        self.crl = os.path.join(d, "crl.pem")
        self.revoke()

    def leaf(self, name, cn, ou, eku, **kw):
        k = tp._key()
        c = tp._cert(tp._name(cn, ou), k, self.ca, self.ca_key, eku=eku, **kw)
        tp._write(self.d, name + ".crt", tp._pem(c))
        tp._write(self.d, name + ".key", tp._keypem(k), 0o600)
        self.certs[name] = c

    def path(self, name, ext):
        return os.path.join(self.d, "%s.%s" % (name, ext))

    def revoke(self, *names):
        crl = tp._crl(self.ca, self.ca_key, [self.certs[n] for n in names], tp.NOW + 7 * tp.DAY)
        tmp = self.crl + ".new"
        with open(tmp, "wb") as f:
            f.write(crl.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, self.crl)


@pytest.fixture
def pki(tmp_path):
    return MirPki(str(tmp_path / "mir-pki"))


def mir_server(nk, pki, tmp_path, port=None):
    ns = ("max_payload: 8MB\n"
          'tls {\n  cert_file: "%s"\n  key_file: "%s"\n  ca_file: "%s"\n'
          "  verify_and_map: true\n}\n"
          "authorization { users = [\n  %s\n  %s\n"
          '  { user = "CN=core,OU=Services" }\n  { user = "CN=cli,OU=Operators" }\n] }\n'
          % (pki.path("server", "crt"), pki.path("server", "key"), pki.ca_path,
             device_user("dev-1"), device_user("dev-2")))
    acl = tmp_path / "mir-acl.conf"
    acl.write_text(ACL)
    ward = ["--certfile", pki.path("server", "crt"), "--keyfile", pki.path("server", "key"),
            "--cafile", pki.ca_path, "--crlfile", pki.crl, "--max-payload", "8MB",
            "--acl-file", str(acl)]
    return nk(ns=ns, ward=ward, scheme="nats+mtls", port=port)


def test_mir_scenario(nk, nats_build, pki, tmp_path):
    exe = nats_build("mir.go")
    b = mir_server(nk, pki, tmp_path)
    p = subprocess.Popen([exe, "-url", "tls://127.0.0.1:%d" % b.port, "-pki", pki.d],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert select.select([p.stdout], [], [], 60)[0], "the scenario did not get ready"
        line = p.stdout.readline()
        assert line.strip() == "ready", line + p.stdout.read()
        b.stop()
        mir_server(nk, pki, tmp_path, port=b.port)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and out.strip().endswith("ok mir"), out


def tls_login(port, pki, name):
    ctx = ssl.create_default_context(cafile=pki.ca_path)
    ctx.load_cert_chain(pki.path(name, "crt"), pki.path(name, "key"))
    c = nw.Conn(port)
    info = nw.read_info(c)
    assert info.get("tls_required") is True, info
    c.starttls(ctx)
    c.connect_op(headers=True, no_responders=True)
    assert c.flush() == []
    return c


def test_revoked_device_disconnected_live(nk, pki, tmp_path):
    """A device whose certificate is revoked while it is connected: the CRL
    is rewritten, ward gets SIGHUP, and the device's NATS connection
    closes; the other device stays; a new connection with the revoked
    certificate fails."""
    if nk.kind != "ward":
        pytest.skip("nats-server 2.9 reads no CRL")
    b = mir_server(nk, pki, tmp_path)
    dev1 = tls_login(b.port, pki, "dev-1")
    dev2 = tls_login(b.port, pki, "dev-2")
    pki.revoke("dev-1")
    b.signal(signal.SIGHUP)
    dev1.expect_close(10)
    assert dev2.flush() == []
    with pytest.raises((ssl.SSLError, OSError, AssertionError)):
        tls_login(b.port, pki, "dev-1")
