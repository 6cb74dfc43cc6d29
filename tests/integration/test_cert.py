"""`ward cert` (issue 4): everything it makes verifies with `openssl verify`
and is accepted by independent TLS software (mosquitto with
require_certificate and crlfile, nats-server with verify, openssl s_server),
a revoked client is refused by each that checks revocation, and every error
names the file and the cause and leaves the PKI unchanged."""
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import WARD, free_port, wait_port


def cert(*args, cwd=None, env=None, input=None, check=True, preexec=None):
    r = subprocess.run([WARD, "cert"] + list(args), capture_output=True, text=True, timeout=60,
                       cwd=cwd, env=env, input=input, preexec_fn=preexec)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def verify(*args):
    return subprocess.run(["openssl", "verify"] + list(args), capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path / "pki")
    cert("init", "--dir", d, "--intermediate", "--name", "Test Root")
    cert("server", "localhost", "--dir", d, "--ip", "127.0.0.1", "--ip", "::1")
    cert("client", "device", "--dir", d, "--ou", "Devices", "--count", "3")
    return d


def p(d, *parts):
    return os.path.join(d, *parts)


def test_layout_modes_and_verify(pki):
    assert stat.S_IMODE(os.stat(pki).st_mode) == 0o700
    for key in os.listdir(p(pki, "private")):
        assert stat.S_IMODE(os.stat(p(pki, "private", key)).st_mode) == 0o600, key
    chain = ["-CAfile", p(pki, "ca.crt"), "-untrusted", p(pki, "intermediate.crt")]
    r = verify(*chain, "-purpose", "sslserver", p(pki, "certs", "localhost.crt"))
    assert r.returncode == 0, r.stdout + r.stderr
    r = verify(*chain, "-purpose", "sslclient", p(pki, "certs", "device-0001.crt"))
    assert r.returncode == 0, r.stdout + r.stderr
    # A client certificate is not a server certificate (EKU), and back.
    r = verify(*chain, "-purpose", "sslserver", p(pki, "certs", "device-0001.crt"))
    assert r.returncode != 0
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in",
                           p(pki, "certs", "localhost.crt")], capture_output=True,
                          text=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    assert "IP Address:0:0:0:0:0:0:0:1" in text or "IP Address:::1" in text
    assert "OU = Devices" in subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", p(pki, "certs", "device-0002.crt")],
        capture_output=True, text=True).stdout
    listing = cert("list", "--dir", pki).stdout
    for name in ("Test Root", "localhost", "device-0001", "device-0003"):
        assert name in listing


def test_revoke_and_crl(pki):
    cert("revoke", "device-0002", "--dir", pki, "--reason", "keyCompromise")
    chain = ["-crl_check", "-CAfile", p(pki, "ca.crt"), "-untrusted", p(pki, "intermediate.crt"),
             "-CRLfile", p(pki, "crl.pem")]
    r = verify(*chain, p(pki, "certs", "device-0002.crt"))
    assert r.returncode != 0 and "revoked" in r.stdout + r.stderr
    assert verify(*chain, p(pki, "certs", "device-0001.crt")).returncode == 0
    assert "revoked keyCompromise" in cert("list", "--dir", pki).stdout
    r = cert("revoke", "device-0002", "--dir", pki, check=False)
    assert r.returncode == 1 and "already revoked" in r.stderr
    # By serial too.
    serial = [l.split()[3] for l in cert("list", "--dir", pki).stdout.splitlines()
              if l.startswith("device-0003")][0]
    cert("revoke", serial, "--dir", pki)
    assert verify(*chain, p(pki, "certs", "device-0003.crt")).returncode != 0


@pytest.mark.parametrize("keyopt", [["--rsa", "2048"], ["--ec", "P-384"], ["--ed25519"]])
def test_key_types(tmp_path, keyopt):
    d = str(tmp_path / "k")
    cert("init", "--dir", d, *keyopt)
    cert("server", "host.test", "--dir", d, *keyopt)
    r = verify("-CAfile", p(d, "ca.crt"), p(d, "certs", "host.test.crt"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_encrypted_keys_and_formats(tmp_path):
    d = str(tmp_path / "enc")
    cert("init", "--dir", d, "--key-password", "ca-secret")
    assert "ENCRYPTED PRIVATE KEY" in open(p(d, "private", "ca.key")).read()
    r = cert("client", "c1", "--dir", d, "--key-password", "wrong", check=False)
    assert r.returncode == 1 and "ca.key" in r.stderr and "wrong password" in r.stderr
    r = cert("client", "c1", "--dir", d, check=False)
    assert r.returncode == 1 and "a password is needed" in r.stderr
    env = dict(os.environ, WARD_KEY_PASSWORD="ca-secret")
    cert("client", "c1", "--dir", d, env=env)
    assert "ENCRYPTED PRIVATE KEY" in open(p(d, "private", "c1.key")).read()
    r = subprocess.run(["openssl", "pkey", "-in", p(d, "private", "c1.key"), "-passin",
                        "pass:ca-secret", "-noout"], capture_output=True)
    assert r.returncode == 0
    cert("client", "c2", "--dir", d, "--format", "der", env=env)
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-in",
                        p(d, "certs", "c2.der")], capture_output=True)
    assert r.returncode == 0
    cert("client", "c3", "--dir", d, "--format", "p12", env=env)
    r = subprocess.run(["openssl", "pkcs12", "-in", p(d, "certs", "c3.p12"), "-passin",
                        "pass:ca-secret", "-noout"], capture_output=True)
    assert r.returncode == 0
    out = cert("client", "c4", "--dir", d, "--k8s-secret", "dev", env=env).stdout
    assert "kind: Secret" in out and "type: kubernetes.io/tls" in out and "tls.key: " in out


def test_sign_csr(pki, tmp_path):
    key, csr = str(tmp_path / "hw.key"), str(tmp_path / "hw.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-subj",
                    "/OU=Devices/CN=hsm-device", "-out", csr], check=True, capture_output=True)
    cert("sign", csr, "--dir", pki)
    crt = p(pki, "certs", "hsm-device.crt")
    r = verify("-CAfile", p(pki, "ca.crt"), "-untrusted", p(pki, "intermediate.crt"), crt)
    assert r.returncode == 0
    # The key never left the device: the certificate holds its public key.
    pub1 = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], capture_output=True).stdout
    pub2 = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"],
                          capture_output=True).stdout
    assert pub1 == pub2
    # Role checks.
    bad_key, bad_csr = str(tmp_path / "b.key"), str(tmp_path / "b.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", bad_key, "-subj",
                    "/OU=Admins/CN=sneaky", "-out", bad_csr], check=True, capture_output=True)
    r = cert("sign", bad_csr, "--dir", pki, check=False)
    assert r.returncode == 1 and "unknown role 'Admins'" in r.stderr
    r = cert("sign", csr, "--dir", pki, "--ou", "Services", check=False)
    assert r.returncode == 1 and "requests role 'Devices'" in r.stderr
    # A tampered request: its signature no longer verifies.
    der = str(tmp_path / "t.der")
    subprocess.run(["openssl", "req", "-in", csr, "-outform", "DER", "-out", der], check=True)
    data = bytearray(open(der, "rb").read())
    i = data.find(b"hsm-device")
    data[i] = ord("X")
    tampered = str(tmp_path / "t.csr")
    subprocess.run(["openssl", "req", "-inform", "DER", "-out", tampered],
                   input=bytes(data), check=True, capture_output=True)
    r = cert("sign", tampered, "--dir", pki, check=False)
    assert r.returncode == 1 and "signature is invalid" in r.stderr


def test_renew(pki):
    old = open(p(pki, "certs", "device-0001.crt")).read()
    oldkey = open(p(pki, "private", "device-0001.key")).read()
    cert("renew", "device-0001", "--dir", pki)
    assert open(p(pki, "certs", "device-0001.crt")).read() != old
    assert open(p(pki, "private", "device-0001.key")).read() == oldkey
    cert("renew", "localhost", "--dir", pki, "--rekey")
    assert "DNS:localhost" in subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
         p(pki, "certs", "localhost.crt")], capture_output=True, text=True).stdout
    listing = cert("list", "--dir", pki).stdout
    assert "superseded" in listing


def test_errors_leave_the_pki_unchanged(pki, tmp_path):
    index = open(p(pki, "index.txt")).read()
    r = cert("server", "localhost", "--dir", pki, check=False)
    assert r.returncode == 1 and "already issued" in r.stderr
    r = cert("init", "--dir", pki, check=False)
    assert r.returncode == 1 and "ca.crt already exists" in r.stderr
    r = cert("client", "x", "--dir", str(tmp_path / "none"), check=False)
    assert r.returncode == 1 and "no PKI here" in r.stderr
    r = cert("revoke", "nobody", "--dir", pki, check=False)
    assert r.returncode == 1 and "nothing issued as 'nobody'" in r.stderr
    assert open(p(pki, "index.txt")).read() == index
    for bad in (["server", "h", "--ip", "300.1.1.1"], ["client"], ["init", "--ec", "P-999"],
                ["bogus"], ["revoke", "x", "--reason", "because"], ["client", "x", "--days", "0"]):
        r = cert(*bad, "--dir", pki, check=False)
        assert r.returncode == 2, bad
    # A directory it cannot write: the error names the file and the index
    # stays. root writes anywhere, so as root the command runs as nobody on a
    # copy of the PKI that nobody owns.
    d, drop, top = unprivileged_copy(pki)
    try:
        os.chmod(p(d, "certs"), 0o500)
        r = cert("client", "blocked", "--dir", d, check=False, preexec=drop)
        assert r.returncode == 1, r.stderr
        assert "certs/blocked.crt" in r.stderr and "Permission denied" in r.stderr
        assert open(p(d, "index.txt")).read() == index
    finally:
        os.chmod(p(d, "certs"), 0o700)
        if top:
            shutil.rmtree(top)


NOBODY = 65534


def drop_to_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def unprivileged_copy(pki):
    """(dir, preexec_fn, temporary top): as root, a copy of the PKI owned by
    nobody where nobody can reach it and a preexec_fn that becomes nobody;
    otherwise the PKI itself as this user."""
    if os.geteuid() != 0:
        return pki, None, None
    top = tempfile.mkdtemp(prefix="ward-cert-")
    os.chmod(top, 0o755)
    d = os.path.join(top, "pki")
    shutil.copytree(pki, d, symlinks=True)
    for root, dirs, files in os.walk(d):
        for name in [root] + [os.path.join(root, f) for f in files]:
            os.chown(name, NOBODY, NOBODY)
    return d, drop_to_nobody, top


def test_refuses_a_pki_others_can_change(pki, tmp_path):
    """A PKI directory or key another user owns or may write is refused
    with its path, before anything is read from it or written to it."""
    index = open(p(pki, "index.txt")).read()
    os.chmod(pki, 0o777)
    try:
        r = cert("client", "x", "--dir", pki, check=False)
        assert r.returncode == 1 and pki in r.stderr
        assert "writable by group or others" in r.stderr and "chmod go-w" in r.stderr
    finally:
        os.chmod(pki, 0o700)
    os.chmod(p(pki, "private", "intermediate.key"), 0o666)
    try:
        r = cert("client", "x", "--dir", pki, check=False)
        assert r.returncode == 1 and "intermediate.key" in r.stderr
        assert "writable by group or others" in r.stderr
    finally:
        os.chmod(p(pki, "private", "intermediate.key"), 0o600)
    if os.geteuid() == 0:  # (`make test` runs as root; without root: tests/unit/pki)
        # The PKI of another user (nobody) is refused too.
        os.chown(pki, NOBODY, NOBODY)
        try:
            r = cert("client", "x", "--dir", pki, check=False)
            assert r.returncode == 1 and "owned by uid 65534" in r.stderr
        finally:
            os.chown(pki, 0, 0)
    assert open(p(pki, "index.txt")).read() == index
    cert("client", "x", "--dir", pki)


def test_dev_refuses_to_write_through_symlinks(tmp_path):
    d = str(tmp_path / "dev")
    cert("dev", d)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    for link in ("server.key", os.path.join("private", "ca.key")):
        target = p(d, link)
        saved = open(target, "rb").read()
        os.unlink(target)
        os.symlink(str(victim), target)
        r = cert("dev", d, "--force", check=False)
        assert r.returncode == 1, r.stderr
        assert target in r.stderr and "symbolic link" in r.stderr
        assert victim.read_text() == "precious"
        assert os.path.islink(target)
        os.unlink(target)
        with open(target, "wb") as f:
            f.write(saved)
        os.chmod(target, 0o600)
    # With the links gone, --force makes everything again, keys 0600.
    cert("dev", d, "--force")
    for key in ("server.key", "client.key", "private/ca.key"):
        assert stat.S_IMODE(os.lstat(p(d, key)).st_mode) == 0o600, key


def make_csr(path, names):
    """A request with these (oid, value) subject entries, in order."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(oid, value) for oid, value in names])
    req = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    with open(path, "wb") as f:
        f.write(req.public_bytes(serialization.Encoding.PEM))
    return path


def test_sign_issues_only_the_checked_subject(pki, tmp_path):
    from cryptography.x509.oid import NameOID as N
    csr = make_csr(str(tmp_path / "extra.csr"),
                   [(N.COUNTRY_NAME, "XX"), (N.ORGANIZATION_NAME, "Evil Corp"),
                    (N.ORGANIZATIONAL_UNIT_NAME, "Devices"), (N.COMMON_NAME, "extra"),
                    (N.EMAIL_ADDRESS, "root@example.com")])
    r = cert("sign", csr, "--dir", pki)
    assert "3 other subject field(s) not copied" in r.stderr
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253",
                              "-in", p(pki, "certs", "extra.crt")], capture_output=True,
                             text=True).stdout.strip()
    assert subject == "subject=CN=extra,OU=Devices", subject
    index = open(p(pki, "index.txt")).read()
    refusals = [
        ([(N.COMMON_NAME, "harmless"), (N.ORGANIZATIONAL_UNIT_NAME, "Devices"),
          (N.COMMON_NAME, "admin")], "more than one common name"),
        ([(N.ORGANIZATIONAL_UNIT_NAME, "Devices"), (N.ORGANIZATIONAL_UNIT_NAME, "Operators"),
          (N.COMMON_NAME, "two-roles")], "more than one organizational unit"),
        ([(N.COMMON_NAME, "../../escape")], "not usable as a file name"),
        ([(N.COMMON_NAME, "line\nbreak")], "control character"),
    ]
    for i, (names, why) in enumerate(refusals):
        bad = make_csr(str(tmp_path / ("bad%d.csr" % i)), names)
        r = cert("sign", bad, "--dir", pki, check=False)
        assert r.returncode == 1 and bad in r.stderr and why in r.stderr, (why, r.stderr)
    assert open(p(pki, "index.txt")).read() == index
    assert not os.path.exists(str(tmp_path / "escape.crt"))


def test_check_exit_codes(pki, tmp_path):
    assert cert("check", "--dir", pki, check=False).returncode == 0
    r = cert("check", p(pki, "certs", "device-0001.crt"), "--warn-days", "400", check=False)
    assert r.returncode == 1 and "EXPIRING" in r.stdout
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate")
    r = cert("check", str(junk), check=False)
    assert r.returncode == 2 and "INVALID" in r.stdout


def test_concurrent_invocations_all_recorded(pki):
    procs = [subprocess.Popen([WARD, "cert", "client", "par-%d" % i, "--dir", pki],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(6)]
    for pr in procs:
        assert pr.wait(timeout=60) == 0
    listing = cert("list", "--dir", pki).stdout
    for i in range(6):
        assert "par-%d" % i in listing


def test_dev(tmp_path):
    d = str(tmp_path / "nested" / "dev")  # parents are made, as `make run` needs
    cert("dev", d)
    for f in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key"):
        assert os.path.exists(p(d, f)), f
    assert verify("-CAfile", p(d, "ca.crt"), p(d, "server.crt")).returncode == 0
    assert verify("-CAfile", p(d, "ca.crt"), "-purpose", "sslclient",
                  p(d, "client.crt")).returncode == 0
    r = cert("dev", d, check=False)
    assert r.returncode == 1 and "already exists" in r.stderr


# ---- independent TLS software accepts what ward cert makes ----------------

def mosquitto_tls(tmp_path, pki, crl=True):
    port = free_port()
    cafile = str(tmp_path / "cabundle.pem")
    with open(cafile, "w") as f:  # mosquitto wants the whole chain to trust
        f.write(open(p(pki, "ca.crt")).read() + open(p(pki, "intermediate.crt")).read())
    conf = tmp_path / "mosq.conf"
    conf.write_text(
        # `user root`: the PKI directory is 0700, mosquitto would drop to its
        # own user and not read it.
        "user root\nlistener %d 127.0.0.1\nallow_anonymous true\ncafile %s\ncertfile %s\n"
        "keyfile %s\n"
        "require_certificate true\n%s" % (port, cafile, p(pki, "certs", "localhost.crt"),
                                          p(pki, "private", "localhost.key"),
                                          "crlfile %s\n" % p(pki, "crl.pem") if crl else ""))
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert wait_port(port, proc=proc)
    return proc, port, cafile


def mosq_pub(port, cafile, pki, name):
    return subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(port), "--cafile", cafile,
                           "--cert", p(pki, "certs", name + ".crt"), "--key",
                           p(pki, "private", name + ".key"), "-t", "t", "-m", "x"],
                          capture_output=True, text=True, timeout=20)


def test_mosquitto_accepts_and_refuses_revoked(pki, tmp_path):
    cert("revoke", "device-0002", "--dir", pki)
    proc, port, cafile = mosquitto_tls(tmp_path, pki)
    try:
        ok = mosq_pub(port, cafile, pki, "device-0001")
        assert ok.returncode == 0, ok.stderr
        bad = mosq_pub(port, cafile, pki, "device-0002")
        assert bad.returncode != 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def nats_ping(port, pki, name, ca=None):
    """A NATS client over TLS with a client certificate: INFO arrives in
    plaintext, then the TLS handshake, then PING/PONG."""
    import ssl
    ctx = ssl.create_default_context(cafile=ca or p(pki, "ca.crt"))
    ctx.load_cert_chain(p(pki, "certs", name + ".crt"), p(pki, "private", name + ".key"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    info = raw.recv(4096)
    assert info.startswith(b"INFO")
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
    data = b""
    while b"PONG" not in data and b"-ERR" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def test_nats_server_verify(pki, tmp_path):
    port = free_port()
    conf = tmp_path / "nats.conf"
    conf.write_text('listen: 127.0.0.1:%d\ntls {\n cert_file: "%s"\n key_file: "%s"\n'
                    ' ca_file: "%s"\n verify: true\n}\n'
                    % (port, p(pki, "certs", "localhost.crt"),
                       p(pki, "private", "localhost.key"), p(pki, "ca.crt")))
    proc = subprocess.Popen(["nats-server", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert wait_port(port, proc=proc)
        assert b"PONG" in nats_ping(port, pki, "device-0001")
        # A client from another CA is refused in the handshake.
        other = str(tmp_path / "other")
        cert("init", "--dir", other)
        cert("client", "rogue", "--dir", other)
        with pytest.raises(OSError):  # ssl.SSLError and resets are OSErrors
            data = nats_ping(port, other, "rogue", ca=p(pki, "ca.crt"))
            if b"PONG" not in data:
                raise OSError("refused")
        # nats-server has no CRL support: revocation is not tested there.
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_openssl_s_server_with_crl(pki, tmp_path):
    cert("revoke", "device-0003", "--dir", pki)
    port = free_port()
    cafile = str(tmp_path / "bundle.pem")
    with open(cafile, "w") as f:
        f.write(open(p(pki, "ca.crt")).read() + open(p(pki, "intermediate.crt")).read())
    srv = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-naccept", "2",
                            "-cert", p(pki, "certs", "localhost.crt"), "-key",
                            p(pki, "private", "localhost.key"), "-CAfile", cafile, "-Verify",
                            "3", "-verify_return_error", "-crl_check", "-CRL",
                            p(pki, "crl.pem"), "-www"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_port(port, proc=srv)

        def s_client(name):
            return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                                   "-CAfile", p(pki, "ca.crt"), "-verify_return_error",
                                   "-verify_hostname", "localhost", "-ign_eof", "-cert",
                                   p(pki, "certs", name + ".crt"), "-key",
                                   p(pki, "private", name + ".key")],
                                  input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True,
                                  timeout=20)

        ok = s_client("device-0001")
        assert "Verify return code: 0 (ok)" in ok.stdout and "HTTP/1.0 200" in ok.stdout
        bad = s_client("device-0003")
        assert "HTTP/1.0 200" not in bad.stdout
    finally:
        srv.kill()
        srv.wait(timeout=10)


def test_ward_listener_accepts_and_refuses_revoked(pki, ward_factory):
    """ward's own mTLS listener with what `ward cert` made: the CA bundle
    with the intermediate, the CRL; a revoked device is refused."""
    cert("revoke", "device-0002", "--dir", pki)
    port = free_port()
    bundle = p(pki, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(p(pki, "ca.crt")).read() + open(p(pki, "intermediate.crt")).read())
    b = ward_factory(["-l", "mtls://127.0.0.1:%d" % port, "--certfile",
                      p(pki, "certs", "localhost.crt"), "--keyfile",
                      p(pki, "private", "localhost.key"), "--cafile", bundle, "--crlfile",
                      p(pki, "crl.pem")], port=port, listen=False).start(wait=False)
    assert wait_port(port)

    def pub(name):
        return subprocess.run([WARD, "pub", "-h", "localhost", "-p", str(port), "--cafile",
                               p(pki, "ca.crt"), "--cert", p(pki, "certs", name + ".crt"),
                               "--key", p(pki, "private", name + ".key"), "-t", "t", "-m", "x"],
                              capture_output=True, text=True, timeout=20)

    ok = pub("device-0001")
    assert ok.returncode == 0, ok.stderr
    assert pub("device-0002").returncode != 0
    b.wait_log("certificate revoked")


def test_key_password_asked_for(tmp_path):
    d = str(tmp_path / "ask")
    cert("init", "--dir", d, "--key-password", "-", input="from-stdin\n")
    assert "ENCRYPTED" in open(p(d, "private", "ca.key")).read()
    cert("client", "c1", "--dir", d, "--key-password", "-", input="from-stdin\n")
    r = cert("client", "c2", "--dir", d, "--key-password", "-", input="\n", check=False)
    assert r.returncode == 2 and "no password given" in r.stderr
