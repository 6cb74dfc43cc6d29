"""TLS and mutual TLS listeners (issue 3) against a PKI made at test time by
python3-cryptography: every client-certificate case against every listener
mode, with Python's ssl module (as paho uses it), mosquitto_pub and ward pub,
checking both the outcome and the cause ward logs; start-up refusals;
identities from certificates; reloads under a running broker."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import paho.mqtt.client as paho
import pytest

import mqttwire as w
import tls_pki
from conftest import WARD, free_port, paho_connack, wait_port

CONNECT = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_pki.make_pki(str(tmp_path_factory.mktemp("pki")))


def listening(b, port):
    """Fails the test unless ward is running and accepting on port."""
    assert wait_port(port, proc=b.proc, timeout=15), "ward is not listening:\n" + b.read_log()


def wait_count(b, needle, n, timeout=10.0):
    """Waits until needle appears n times in ward's log (a new occurrence,
    not one an earlier step left)."""
    deadline = time.monotonic() + timeout
    while b.read_log().count(needle) < n:
        assert time.monotonic() < deadline, "%r not logged %d times:\n%s" % (
            needle, n, b.read_log())
        time.sleep(0.05)


def serve(ward_factory, pki, scheme, *extra, crl=True, cert="server"):
    port = free_port()
    args = ["-l", "%s://127.0.0.1:%d" % (scheme, port), "--certfile", pki[cert + "_crt"],
            "--keyfile", pki[cert + "_key"], "--cafile", pki["ca"]]
    if crl:
        args += ["--crlfile", pki["crl"]]
    b = ward_factory(args + list(extra), port=port, listen=False)
    b.start(wait=False)
    listening(b, port)
    b.port = port
    return b


def mqtt_tls(port, pki, client=None, password=None, host="localhost", tls13=True):
    """CONNECT over TLS the way paho does it (Python's ssl). Returns None on
    success (a CONNACK came back) or the error text."""
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if not tls13:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if client:
        ctx.load_cert_chain(pki[client + "_crt"], pki[client + "_key"], password=password)
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname=host)
        s.sendall(CONNECT)
        data = s.recv(4)
        s.close()
        return None if data[:1] == b"\x20" else "no CONNACK (%r)" % data
    except (ssl.SSLError, OSError) as e:
        return str(e)


CASES = [  # client, password, expected in none / optional / required mode
    (None, None, "ok", "ok", "no client certificate"),
    ("client", None, "ok", "ok", "ok"),
    ("client_rsa", None, "ok", "ok", "ok"),
    ("client_enc_pem", "pw", "ok", "ok", "ok"),
    ("client_enc_pkcs8", "pw", "ok", "ok", "ok"),
    ("client_expired", None, "ok", "certificate expired", "certificate expired"),
    ("client_notyet", None, "ok", "certificate not yet valid", "certificate not yet valid"),
    ("client_revoked", None, "ok", "certificate revoked", "certificate revoked"),
    ("client_rogue", None, "ok", "unknown CA", "unknown CA"),
    ("client_serverauth", None, "ok", "wrong key usage", "wrong key usage"),
]
MODES = [("tls", ()), ("tls", ("--client-cert", "optional")), ("mtls", ())]


@pytest.mark.parametrize("mode", [0, 1, 2], ids=["none", "optional", "required"])
def test_matrix(ward_factory, pki, mode):
    scheme, extra = MODES[mode]
    b = serve(ward_factory, pki, scheme, *extra)
    for client, pw, *expect in CASES:
        want = expect[mode]
        for tls13 in (True, False):
            if want == "ok":
                got = mqtt_tls(b.port, pki, client, pw, tls13=tls13)
                assert got is None, "%s (TLS 1.%d): %s" % (client, 3 if tls13 else 2, got)
            else:
                before = b.read_log().count("TLS handshake failed: " + want)
                got = mqtt_tls(b.port, pki, client, pw, tls13=tls13)
                assert got is not None, "%s accepted, wanted %s" % (client, want)
                wait_count(b, "TLS handshake failed: " + want, before + 1)
    # Counted failures never disturbed anyone: a good client still works.
    assert mqtt_tls(b.port, pki, "client") is None


def test_optional_mode_does_not_trust_rogue_certificates(ward_factory, pki):
    # NanoMQ accepts an untrusted certificate in this mode; ward must not.
    b = serve(ward_factory, pki, "tls", "--client-cert", "optional")
    assert mqtt_tls(b.port, pki, "client_rogue") is not None
    b.wait_log("TLS handshake failed: unknown CA")
    assert mqtt_tls(b.port, pki, None) is None


def test_independent_clients(ward_factory, pki):
    b = serve(ward_factory, pki, "mtls")
    args = ["-h", "localhost", "-p", str(b.port), "--cafile", pki["ca"], "-t", "t", "-m", "x"]
    ok = subprocess.run(["mosquitto_pub"] + args + ["--cert", pki["client_crt"], "--key",
                                                    pki["client_key"]],
                        capture_output=True, text=True, timeout=20)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["mosquitto_pub"] + args + ["--cert", pki["client_rogue_crt"], "--key",
                                                     pki["client_rogue_key"]],
                         capture_output=True, text=True, timeout=20)
    assert bad.returncode != 0
    # paho-mqtt with the ssl module, MQTT 5.
    got = []
    c = paho.Client("paho-tls", protocol=paho.MQTTv5)
    c.tls_set(ca_certs=pki["ca"], certfile=pki["client_crt"], keyfile=pki["client_key"])
    c.on_connect = lambda cl, u, f, rc, props=None: got.append(int(rc.value))
    paho_connack(c, "localhost", b.port, got)
    assert got == [0]
    # openssl s_client, TLS 1.2 and 1.3, with ALPN "mqtt".
    for ver in ("-tls1_2", "-tls1_3"):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port, ver,
                            "-CAfile", pki["ca"], "-cert", pki["client_crt"], "-key",
                            pki["client_key"], "-verify_return_error", "-alpn", "mqtt"],
                           input="", capture_output=True, text=True, timeout=20)
        assert "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr
        assert "ALPN protocol: mqtt" in r.stdout


def test_ward_clients_verify_the_host(ward_factory, pki):
    b = serve(ward_factory, pki, "tls", cert="server_wrong")
    base = ["pub", "-h", "localhost", "-p", str(b.port), "--cafile", pki["ca"], "-t", "t",
            "-m", "x"]
    r = subprocess.run([WARD] + base, capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "does not name 'localhost'" in r.stderr, r.stderr
    r = subprocess.run([WARD] + base + ["--insecure"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and "--insecure" in r.stderr
    r = subprocess.run([WARD] + base + ["--servername", "elsewhere.test"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stderr


def test_ward_clients_mtls_round_trip(ward_factory, pki):
    b = serve(ward_factory, pki, "mtls")
    tls = ["-h", "localhost", "-p", str(b.port), "--cafile", pki["ca"], "--cert",
           pki["client_crt"], "--key", pki["client_key"]]
    sub = subprocess.Popen([WARD, "sub"] + tls + ["-t", "m/#", "-C", "1", "-v"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Retained, so the subscriber gets it whether its SUBSCRIBE lands first or not.
    r = subprocess.run([WARD, "pub"] + tls[:-4] + ["--cert", pki["client_enc_pkcs8_crt"],
                                                   "--key", pki["client_enc_pkcs8_key"],
                                                   "--key-password", "pw", "-t", "m/1", "-m",
                                                   "secure", "-r"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    out, err = sub.communicate(timeout=10)
    assert out == "m/1 secure\n", err
    r = subprocess.run([WARD, "pub"] + tls[:-4] + ["-t", "m/1", "-m", "x"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 1
    b.wait_log("TLS handshake failed: no client certificate")


def test_plaintext_on_tls_port(ward_factory, pki):
    b = serve(ward_factory, pki, "tls")
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s.sendall(CONNECT)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass  # closed with our CONNECT unread: a reset is a close too
    b.wait_log("plaintext on a TLS port (an MQTT CONNECT)")


def test_minimum_version_and_timeout(ward_factory, pki):
    b = serve(ward_factory, pki, "tls", "--tls-version", "1.3")
    assert mqtt_tls(b.port, pki, tls13=False) is not None
    b.wait_log("TLS handshake failed: protocol version")
    assert mqtt_tls(b.port, pki) is None


@pytest.mark.parametrize("cert, extra, cause", [
    ("server_enc", [], "the private key is encrypted: set key_password"),
    ("server_enc", ["--key-password", "nope"], "wrong key_password"),
    ("server_expired", [], "the certificate expired on"),
])
def test_startup_refusals(pki, cert, extra, cause):
    r = subprocess.run([WARD, "serve", "-l", "tls://127.0.0.1:%d" % free_port(), "--certfile",
                        pki[cert + "_crt"], "--keyfile", pki[cert + "_key"]] + extra,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and cause in r.stderr, r.stderr
    assert os.path.basename(pki[cert + "_crt" if "expired" in cause else cert + "_key"]) \
        in r.stderr


def test_mismatched_key_and_encrypted_key_with_password(ward_factory, pki):
    r = subprocess.run([WARD, "serve", "-l", "tls://127.0.0.1:%d" % free_port(), "--certfile",
                        pki["server_crt"], "--keyfile", pki["server_rsa_key"]],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "does not match" in r.stderr
    b = serve(ward_factory, pki, "tls", "--key-password", "server-pw", cert="server_enc")
    assert mqtt_tls(b.port, pki) is None


def test_certificate_identity_and_acl(ward_factory, pki, tmp_path):
    acl = tmp_path / "acl.conf"
    acl.write_text('rules = [\n {"permit": "allow", "cert_ou": "Devices", "action": "publish",'
                   ' "topics": ["devices/${cert_cn}/#"]}\n'
                   ' {"permit": "allow", "action": "subscribe"}\n {"permit": "deny"}\n]\n')
    b = serve(ward_factory, pki, "mtls", "--peer-cert-as-clientid", "cn",
              "--peer-cert-as-username", "san_email", "--acl-file", str(acl))
    tls = ["-h", "localhost", "-p", str(b.port), "--cafile", pki["ca"], "--cert",
           pki["client_crt"], "--key", pki["client_key"], "-q", "1"]
    ok = subprocess.run([WARD, "pub"] + tls + ["-t", "devices/device-1/temp", "-m", "1"],
                        capture_output=True, text=True, timeout=20)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([WARD, "pub"] + tls + ["-t", "devices/device-2/temp", "-m", "1"],
                         capture_output=True, text=True, timeout=20)
    assert bad.returncode == 1 and "not authorized" in bad.stderr
    # The certificate named the client: its CN is the client id.
    b.wait_log("client 'device-1'")


def test_reload_crl_disconnects_revoked_and_swaps_certificates(ward_factory, pki, tmp_path):
    crl = str(tmp_path / "crl.pem")
    shutil.copy(pki["crl_empty"], crl)
    crt, key = str(tmp_path / "server.crt"), str(tmp_path / "server.key")
    shutil.copy(pki["server_crt"], crt)
    shutil.copy(pki["server_key"], key)
    port = free_port()
    b = ward_factory(["-l", "mtls://127.0.0.1:%d" % port, "--certfile", crt, "--keyfile", key,
                      "--cafile", pki["ca"], "--crlfile", crl], port=port, listen=False)
    b.start(wait=False)
    listening(b, port)
    # A v5 client with the soon-to-be-revoked certificate, connected.
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.load_cert_chain(pki["client_revoked_crt"], pki["client_revoked_key"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x04stol")
    head = s.recv(2)
    assert head[:1] == b"\x20"
    s.recv(head[1])  # the rest of the CONNACK
    # A broken CRL is refused and changes nothing.
    with open(crl, "w") as f:
        f.write("garbage")
    b.signal(signal.SIGHUP)
    b.wait_log("the running TLS material stays")
    # The real CRL: the revoked client is disconnected with 0x87.
    shutil.copy(pki["crl"], crl)
    b.signal(signal.SIGHUP)
    b.wait_log("certificate revoked by the reloaded CRL")
    s.settimeout(5)
    data = s.recv(10)
    assert data[:3] == b"\xe0\x01\x87" or data[:2] == b"\xe0\x02" and data[2] == 0x87, data
    # Rotation: a new server certificate (RSA) is used by new handshakes,
    # picked up from the changed files without a signal.
    before = b.read_log().count("TLS material reloaded")
    shutil.copy(pki["server_rsa_crt"], crt + ".new")
    shutil.copy(pki["server_rsa_key"], key + ".new")
    os.rename(key + ".new", key)
    os.rename(crt + ".new", crt)
    deadline = time.monotonic() + 15
    while b.read_log().count("TLS material reloaded") == before:
        assert time.monotonic() < deadline, b.read_log()
        time.sleep(0.2)
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-cert",
                        pki["client_crt"], "-key", pki["client_key"], "-CAfile", pki["ca"]],
                       input="", capture_output=True, text=True, timeout=20)
    assert "Server public key is 2048 bit" in r.stdout, r.stdout  # the RSA one now
    assert mqtt_tls(port, pki, "client") is None


def test_stale_crl_is_reported_not_fatal(ward_factory, pki):
    port = free_port()
    b = ward_factory(["-l", "mtls://127.0.0.1:%d" % port, "--certfile", pki["server_crt"],
                      "--keyfile", pki["server_key"], "--cafile", pki["ca"], "--crlfile",
                      pki["crl_stale"]], port=port, listen=False).start(wait=False)
    listening(b, port)
    assert mqtt_tls(port, pki, "client") is None
    assert mqtt_tls(port, pki, "client_revoked") is not None
    b.wait_log("TLS handshake failed: certificate revoked")
    b.wait_log("past its next update")


def test_config_ssl_listener_certificate_and_password(ward_factory, pki, tmp_path):
    """NanoMQ's listener keys in a config file, plus ward's require_password:
    on this listener a certificate alone is not enough."""
    pw = str(tmp_path / "pw.conf")
    r = subprocess.run([WARD, "passwd", pw, "device-1"], input="s3cret\n", text=True,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text(
        'listeners.ssl.devices {\n  bind = "127.0.0.1:%d"\n  keyfile = "%s"\n  certfile = "%s"\n'
        '  cacertfile = "%s"\n  verify_peer = true\n  fail_if_no_peer_cert = true\n'
        '  require_password = true\n}\n'
        'auth { allow_anonymous = false\n  password = {include "pw.conf"} }\n'
        % (port, pki["server_key"], pki["server_crt"], pki["ca"]))
    b = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    listening(b, port)
    tls = ["-h", "localhost", "-p", str(port), "--cafile", pki["ca"], "--cert",
           pki["client_crt"], "--key", pki["client_key"], "-t", "t", "-m", "x"]
    r = subprocess.run([WARD, "pub"] + tls, capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "bad user name or password" in r.stderr, r.stderr
    r = subprocess.run([WARD, "pub"] + tls + ["-u", "device-1", "-P", "s3cret"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    b.wait_log("a password is required in addition to the certificate")


def test_sys_counters_expiry_and_resumption(ward_factory, pki):
    b = serve(ward_factory, pki, "tls", "--sys-interval", "1")
    # The test PKI's certificates live 30 days: within the default warning.
    b.wait_log("server certificate 'localhost'")
    assert "expires in" in b.read_log()
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s.sendall(CONNECT)
    try:
        s.recv(10)
    except ConnectionResetError:
        pass
    # $SYS over the TLS listener itself.
    ctx = ssl.create_default_context(cafile=pki["ca"])
    raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    c = ctx.wrap_socket(raw, server_hostname="localhost")
    c.sendall(CONNECT)
    assert c.recv(4)[:1] == b"\x20"
    topic = b"$SYS/broker/tls/%d/handshake_failures/plaintext_on_a_TLS_port" % b.port
    c.sendall(b"\x82" + bytes([2 + 2 + len(topic) + 1]) + b"\x00\x01" +
              len(topic).to_bytes(2, "big") + topic + b"\x00")
    # Retained values from before come first; read until the count shows.
    data, count = b"", 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and count < 1:
        data += c.recv(4096)
        while b"plaintext_on_a_TLS_port" in data:
            i = data.index(b"plaintext_on_a_TLS_port") + len(b"plaintext_on_a_TLS_port")
            digits = data[i:i + 8]
            n = len(digits) - len(digits.lstrip(b"0123456789"))
            if n == 0 or i + n >= len(data):
                break  # the payload has not arrived whole yet
            count = int(digits[:n])
            data = data[i + n:]
    assert count >= 1
    # Session resumption: the second handshake reuses the first's session.
    sess = os.path.join(os.path.dirname(pki["ca"]), "sess-%d.pem" % b.port)
    for flag, want in (("-sess_out", "New,"), ("-sess_in", "Reused,")):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port,
                            "-tls1_2", "-CAfile", pki["ca"], flag, sess],
                           input="", capture_output=True, text=True, timeout=20)
        assert want in r.stdout, r.stdout


def test_sni_selects_the_certificate(ward_factory, pki):
    b = serve(ward_factory, pki, "tls", "--sni",
              "elsewhere.test,%s,%s" % (pki["server_wrong_crt"], pki["server_wrong_key"]))

    def subject(name):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port,
                            "-servername", name, "-CAfile", pki["ca"]],
                           input="", capture_output=True, text=True, timeout=20)
        return r.stdout.split("subject=")[1].splitlines()[0] if "subject=" in r.stdout else ""

    assert "elsewhere.test" in subject("elsewhere.test")
    assert "localhost" in subject("localhost")
    assert "localhost" in subject("unknown.test")  # no match: the listener's own
    # ward's own client checks the name against the certificate SNI chose.
    r = subprocess.run([WARD, "pub", "-h", "127.0.0.1", "-p", str(b.port), "--cafile", pki["ca"],
                        "--servername", "elsewhere.test", "-t", "t", "-m", "x"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr


def crl_strict_listener(ward_factory, pki, tmp_path, strict, crl):
    port = free_port()
    conf = tmp_path / ("ward-%d.conf" % port)
    conf.write_text(
        'listeners.ssl.strict {\n  bind = "127.0.0.1:%d"\n  keyfile = "%s"\n  certfile = "%s"\n'
        '  cacertfile = "%s"\n  crlfile = "%s"\n  verify_peer = true\n'
        '  fail_if_no_peer_cert = true\n  crl_strict = %s\n}\n'
        % (port, pki["server_key"], pki["server_crt"], pki["ca"], pki[crl],
           "true" if strict else "false"))
    b = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    listening(b, port)
    return b


def test_config_crl_strict(ward_factory, pki, tmp_path):
    """crl_strict = true: while the CRL is past its next update, even a good
    client certificate is refused; with false the same one is accepted (and
    the staleness logged). A revoked one is refused either way, and with a
    current CRL strict mode accepts the good certificate."""
    strict = crl_strict_listener(ward_factory, pki, tmp_path, True, "crl_stale")
    lax = crl_strict_listener(ward_factory, pki, tmp_path, False, "crl_stale")
    fresh = crl_strict_listener(ward_factory, pki, tmp_path, True, "crl")
    # Each outcome below is a completed handshake or a logged refusal, so a
    # broker that is not there cannot pass.
    got = mqtt_tls(strict.port, pki, "client")
    assert got is not None, "crl_strict = true accepted a client while the CRL is stale"
    assert "refused" not in got, got
    strict.wait_log("TLS handshake failed: other (CRL has expired)")
    assert mqtt_tls(lax.port, pki, "client") is None
    lax.wait_log("past its next update; accepting anyway")
    assert "CRL has expired)" not in lax.read_log()
    assert mqtt_tls(lax.port, pki, "client_revoked") is not None
    lax.wait_log("TLS handshake failed: certificate revoked")
    assert mqtt_tls(fresh.port, pki, "client") is None
    assert mqtt_tls(fresh.port, pki, "client_revoked") is not None
    fresh.wait_log("TLS handshake failed: certificate revoked")


def test_groups_and_verify_depth(ward_factory, pki):
    b = serve(ward_factory, pki, "tls", "--groups", "P-384")

    def hello(groups):
        return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port,
                               "-groups", groups, "-CAfile", pki["ca"]],
                              input="", capture_output=True, text=True, timeout=20)

    assert "Cipher is TLS_" in hello("P-384").stdout
    assert "Cipher is (NONE)" in hello("X25519").stdout
    b.wait_log("TLS handshake failed: no shared cipher")
    # The client chain is leaf <- issuing CA <- root: one intermediate, so a
    # depth of 0 refuses it and 1 accepts it.
    d = serve(ward_factory, pki, "mtls", "--verify-depth", "0")
    assert mqtt_tls(d.port, pki, "client") is not None
    d.wait_log("TLS handshake failed: other (certificate chain too long)")
    e = serve(ward_factory, pki, "mtls", "--verify-depth", "1")
    assert mqtt_tls(e.port, pki, "client") is None
    r = subprocess.run([WARD, "serve", "-l", "tls://127.0.0.1:%d" % free_port(), "--certfile",
                        pki["server_crt"], "--keyfile", pki["server_key"], "--groups", "nonsense"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "groups: unknown group in 'nonsense'" in r.stderr


def test_sni_from_config(ward_factory, pki, tmp_path):
    port = free_port()
    conf = tmp_path / "ward.conf"
    conf.write_text(
        'listeners.ssl.multi {\n  bind = "127.0.0.1:%d"\n  keyfile = "%s"\n  certfile = "%s"\n'
        '  sni = [ {host = "*.test", certfile = "%s", keyfile = "%s"} ]\n}\n'
        % (port, pki["server_key"], pki["server_crt"], pki["server_wrong_crt"],
           pki["server_wrong_key"]))
    b = ward_factory(["-c", str(conf)], port=port, listen=False).start(wait=False)
    listening(b, port)
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "elsewhere.test"], input="", capture_output=True,
                       text=True, timeout=20)
    assert "CN = elsewhere.test" in r.stdout or "CN=elsewhere.test" in r.stdout, r.stdout
