"""A test PKI made at test time with python3-cryptography (never committed),
independent of `ward cert`: every case the TLS matrix needs, including the
ones no sane CA tool makes (expired, not yet valid, wrong usage)."""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.utcnow()
DAY = datetime.timedelta(days=1)


def _key(kind="ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn, ou=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if ou:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    return x509.Name(attrs)


def _cert(subject, key, issuer, issuer_key, ca=False, eku=None, sans=(), ips=(),
          not_before=None, not_after=None, pathlen=None, emails=(), uris=()):
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer.subject if issuer else subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before or NOW - DAY).not_valid_after(not_after or NOW + 30 * DAY)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, False, isinstance(key, rsa.RSAPrivateKey), False,
                                          False, False, False, False, False), critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    names = [x509.DNSName(s) for s in sans] + [x509.IPAddress(ipaddress.ip_address(i))
                                                for i in ips]
    names += [x509.RFC822Name(e) for e in emails] + [x509.UniformResourceIdentifier(u)
                                                      for u in uris]
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if issuer:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(d, name, data, mode=0o644):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def _pem(c):
    return c.public_bytes(serialization.Encoding.PEM)


def _keypem(k, password=None, pkcs8=True):
    enc = (serialization.BestAvailableEncryption(password.encode()) if password
           else serialization.NoEncryption())
    fmt = (serialization.PrivateFormat.PKCS8 if pkcs8
           else serialization.PrivateFormat.TraditionalOpenSSL)
    return k.private_bytes(serialization.Encoding.PEM, fmt, enc)


def _crl(issuer, issuer_key, revoked, next_update):
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
         .last_update(NOW - DAY).next_update(next_update))
    for c in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                      .serial_number(c.serial_number)
                                      .revocation_date(NOW - DAY).build())
    return b.sign(issuer_key, hashes.SHA256())


def make_pki(d):
    """Writes everything into d; returns {name: path}."""
    os.makedirs(d, exist_ok=True)
    p = {}
    root_k = _key()
    root = _cert(_name("Test Root CA"), root_k, None, root_k, ca=True)
    int_k = _key()
    inter = _cert(_name("Test Issuing CA"), int_k, root, root_k, ca=True, pathlen=0)
    rogue_k = _key()
    rogue = _cert(_name("Rogue CA"), rogue_k, None, rogue_k, ca=True)
    p["ca"] = _write(d, "ca.crt", _pem(root))
    p["ca_bundle"] = _write(d, "ca-bundle.crt", _pem(root) + _pem(inter))
    server = EKU_SERVER = [ExtendedKeyUsageOID.SERVER_AUTH]
    client = [ExtendedKeyUsageOID.CLIENT_AUTH]

    def leaf(name, cn, eku, kind="ec", issuer=(inter, int_k), password=None, pkcs8=True,
             chain=True, **kw):
        k = _key(kind)
        subject = kw.pop("subject", None) or _name(cn, kw.pop("ou", None))
        c = _cert(subject, k, issuer[0], issuer[1], eku=eku, **kw)
        pem = _pem(c) + (_pem(issuer[0]) if chain and issuer[0] is inter else b"")
        p[name + "_crt"] = _write(d, name + ".crt", pem)
        p[name + "_key"] = _write(d, name + ".key", _keypem(k, password, pkcs8), 0o600)
        return c

    leaf("server", "localhost", server, sans=["localhost"], ips=["127.0.0.1", "::1"])
    leaf("server_rsa", "localhost", server, kind="rsa", sans=["localhost"], ips=["127.0.0.1"])
    leaf("server_wrong", "elsewhere.test", server, sans=["elsewhere.test"])
    leaf("server_enc", "localhost", server, sans=["localhost"], ips=["127.0.0.1"],
         password="server-pw", pkcs8=True)
    leaf("server_expired", "localhost", server, sans=["localhost"], ips=["127.0.0.1"],
         not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    leaf("client", "device-1", client, ou="Devices", emails=["dev1@example.test"],
         uris=["urn:dev:1"])
    leaf("client_rsa", "device-rsa", client, kind="rsa", ou="Devices")
    leaf("client_enc_pem", "device-enc", client, password="pw", pkcs8=False)
    leaf("client_enc_pkcs8", "device-p8", client, password="pw", pkcs8=True)
    leaf("client_expired", "old-device", client, not_before=NOW - 30 * DAY,
         not_after=NOW - DAY)
    leaf("client_notyet", "future-device", client, not_before=NOW + 10 * DAY,
         not_after=NOW + 40 * DAY)
    revoked = leaf("client_revoked", "stolen-device", client)
    leaf("client_rogue", "rogue-device", client, issuer=(rogue, rogue_k))
    leaf("client_serverauth", "wrong-usage", server)
    # Bridges (test_bridge.py): the rogue CA itself, as a wrong trust anchor,
    # and client identities for observers and certificate rotation.
    p["rogue_ca"] = _write(d, "rogue-ca.crt", _pem(rogue))
    leaf("client_obs", "observer", client)
    leaf("client_obs2", "observer-2", client)
    leaf("client_rotated", "bridge-rotated", client)
    # Names no identity can be taken from (test_identity.py): two CNs, and
    # a CN with a NUL in it ("admin" followed by more).
    leaf("client_two_cn", None, client, subject=x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "device-1"),
        x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
    leaf("client_nul_cn", None, client, subject=x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "admin\x00.evil")]))
    crl_int = _crl(inter, int_k, [revoked], NOW + 7 * DAY)
    crl_root = _crl(root, root_k, [], NOW + 7 * DAY)
    p["crl"] = _write(d, "crl.pem", crl_int.public_bytes(serialization.Encoding.PEM) +
                      crl_root.public_bytes(serialization.Encoding.PEM))
    p["crl_empty"] = _write(d, "crl-empty.pem",
                            _crl(inter, int_k, [], NOW + 7 * DAY).public_bytes(
                                serialization.Encoding.PEM) +
                            crl_root.public_bytes(serialization.Encoding.PEM))
    p["crl_stale"] = _write(d, "crl-stale.pem",
                            _crl(inter, int_k, [revoked], NOW - DAY).public_bytes(
                                serialization.Encoding.PEM) +
                            _crl(root, root_k, [], NOW - DAY).public_bytes(
                                serialization.Encoding.PEM))
    return p
