#!/usr/bin/env python3
"""Writes generated seed inputs into fuzz/corpus/<target>/ (file name: the
SHA-1 of the content, as libFuzzer names them). Run it again after changing
it; existing files stay. Certificates and requests are made with throwaway
keys that are never written anywhere: the corpus holds public keys and
signatures only, never private key material.

    python3 fuzz/seeds.py [corpus-dir]        (default: fuzz/corpus)
"""
import datetime
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def save(root, target, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, hashlib.sha1(data).hexdigest())
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)


# ---- MQTT ------------------------------------------------------------------

def vbi(n):
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack("!H", len(x)) + x


BYTE, U16, U32, VBI, STR, BIN, PAIR = range(7)
KIND = {0x01: BYTE, 0x02: U32, 0x03: STR, 0x08: STR, 0x09: BIN, 0x0B: VBI, 0x11: U32,
        0x12: STR, 0x13: U16, 0x15: STR, 0x16: BIN, 0x17: BYTE, 0x18: U32, 0x19: BYTE,
        0x1A: STR, 0x1C: STR, 0x1F: STR, 0x21: U16, 0x22: U16, 0x23: U16, 0x24: BYTE,
        0x25: BYTE, 0x26: PAIR, 0x27: U32, 0x28: BYTE, 0x29: BYTE, 0x2A: BYTE}


def props(*items):
    body = b""
    for pid, v in items:
        k = KIND[pid]
        body += vbi(pid)
        if k == BYTE:
            body += bytes([v])
        elif k == U16:
            body += struct.pack("!H", v)
        elif k == U32:
            body += struct.pack("!I", v)
        elif k == VBI:
            body += vbi(v)
        elif k in (STR, BIN):
            body += s(v)
        else:
            body += s(v[0]) + s(v[1])
    return vbi(len(body)) + body


def pkt(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + vbi(len(body)) + body


def connect(level=5, name="MQTT", flags=0x02, cid="c1", p=b"", will=None, user=None, pw=None,
            keepalive=60):
    v5 = level == 5
    body = s(name) + bytes([level, flags]) + struct.pack("!H", keepalive)
    body += (p or props()) if v5 else b""
    body += s(cid)
    if will:
        wprops, topic, payload = will
        body += (wprops if v5 else b"") + s(topic) + s(payload)
    if user is not None:
        body += s(user)
    if pw is not None:
        body += s(pw)
    return pkt(1, 0, body)


def publish(topic, payload, qos=0, pid=1, p=None, v5=True, retain=False, dup=False):
    body = s(topic) + (struct.pack("!H", pid) if qos else b"")
    body += (p if p is not None else props()) if v5 else b""
    return pkt(3, (dup << 3) | (qos << 1) | retain, body + payload)


def subscribe(pid, subs, p=None, v5=True):
    body = struct.pack("!H", pid) + ((p if p is not None else props()) if v5 else b"")
    for f, opts in subs:
        body += s(f) + bytes([opts])
    return pkt(8, 2, body)


def ack(ptype, pid, rc=None, p=None):
    body = struct.pack("!H", pid)
    if rc is not None:
        body += bytes([rc])
        if p is not None:
            body += p
    return pkt(ptype, 2 if ptype == 6 else 0, body)


def auth(rc=None, p=None):
    body = b"" if rc is None else bytes([rc]) + (p if p is not None else props())
    return pkt(15, 0, body)


def disconnect(rc=None, p=None):
    body = b"" if rc is None else bytes([rc]) + (p if p is not None else b"")
    return pkt(14, 0, body)


def mqtt_seeds():
    # Codec state byte: bits 0-1 version (0 from CONNECT, 1 3.1, 2 3.1.1, 3 5),
    # bit 2 server side (decoding what clients send), bit 3 64-byte packet limit.
    SRV_AUTO, SRV5, CLI5, SRV311, SRV5_SMALL = 0x04, 0x07, 0x03, 0x06, 0x0F
    full_connect = connect(
        flags=0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80,  # clean, will qos1 retain, user, pw
        p=props((0x11, 3600), (0x21, 20), (0x27, 65536), (0x22, 10), (0x19, 1), (0x17, 0),
                (0x26, ("region", "eu")), (0x26, ("region", "us")), (0x15, "SCRAM-SHA-256"),
                (0x16, b"n,,n=user,r=abc")),
        will=(props((0x18, 5), (0x01, 1), (0x02, 60), (0x03, "text/plain"),
                    (0x08, "resp/topic"), (0x09, b"\x00\x01corr"), (0x26, ("k", "v"))),
              "will/topic", b"gone"),
        user="alice", pw=b"secret")
    session = (publish("a/b", b"hello", qos=1, pid=7,
                       p=props((0x01, 1), (0x02, 30), (0x23, 5), (0x08, "reply/to"),
                               (0x09, b"id-1"), (0x26, ("trace", "1")), (0x03, "application/json")))
               + publish("", b"via alias", qos=0, p=props((0x23, 5)))
               + subscribe(3, [("a/+", 0x01 | 0x04 | 0x08 | 0x20), ("$share/g/x/#", 0x02),
                               ("#", 0x10)], p=props((0x0B, 42), (0x26, ("s", "1"))))
               + pkt(10, 2, struct.pack("!H", 4) + props((0x26, ("u", "2"))) + s("a/+") + s("#"))
               + ack(4, 7, 0x10, props((0x1F, "no matching subscribers")))
               + ack(5, 8, 0x00) + ack(6, 8, 0x92, props()) + ack(7, 8)
               + pkt(12, 0, b"")
               + disconnect(0x04, props((0x11, 0), (0x1F, "bye"), (0x26, ("why", "test")))))
    yield bytes([SRV_AUTO]) + full_connect + session
    # Enhanced authentication: CONNECT with a method, AUTH continue/re-auth.
    yield bytes([SRV_AUTO]) + connect(p=props((0x15, "SCRAM-SHA-1"), (0x16, b"client-first"))) \
        + auth(0x18, props((0x15, "SCRAM-SHA-1"), (0x16, b"client-final"))) \
        + auth(0x19, props((0x15, "SCRAM-SHA-1"), (0x16, b"re"), (0x1F, "reauth"))) + auth()
    yield bytes([SRV5]) + auth(0x19, props((0x15, "K"), (0x16, b"\x00" * 20)))
    yield bytes([SRV5]) + auth(0x00, props())
    yield bytes([SRV5]) + auth(0x18)  # no property length: refused or defaulted
    yield bytes([SRV5]) + auth(0x18, props((0x16, b"data without method")))
    yield bytes([SRV5]) + auth(0x87)  # a reason code AUTH may not carry
    yield bytes([CLI5]) + auth(0x18, props((0x15, "SCRAM-SHA-1"), (0x16, b"server-first")))
    # What a server sends (decoded on the client side).
    yield bytes([CLI5]) + pkt(2, 0, bytes([1, 0]) + props(
        (0x11, 60), (0x21, 100), (0x24, 1), (0x25, 0), (0x27, 1024), (0x12, "auto-1"),
        (0x22, 8), (0x1F, "welcome"), (0x26, ("srv", "ward")), (0x28, 1), (0x29, 1),
        (0x2A, 0), (0x13, 30), (0x1A, "resp/"), (0x1C, "other:1883"), (0x15, "K"),
        (0x16, b"final"))) \
        + publish("t", b"x", qos=2, pid=9, p=props((0x0B, 1), (0x0B, 268435455), (0x23, 2))) \
        + pkt(9, 0, struct.pack("!H", 3) + props((0x1F, "ok")) + bytes([0, 1, 2, 0x80, 0x97])) \
        + pkt(11, 0, struct.pack("!H", 4) + props() + bytes([0, 0x11])) \
        + disconnect(0x9C, props((0x1C, "elsewhere:8883"), (0x1F, "moved")))
    yield bytes([CLI5]) + pkt(2, 0, bytes([0, 0x86]) + props((0x1F, "bad user or password")))
    # Properties where they may not be, twice, or unknown.
    yield bytes([SRV5]) + publish("a", b"", p=props((0x11, 1)))
    yield bytes([SRV5]) + publish("a", b"", p=props((0x01, 1), (0x01, 0)))
    yield bytes([SRV5]) + publish("a", b"", p=bytes([2, 0x7F, 0]))
    yield bytes([SRV5]) + publish("a", b"", p=props((0x23, 0)))  # alias 0 is a protocol error
    yield bytes([SRV5]) + subscribe(1, [("a", 0x03)])  # QoS 3
    yield bytes([SRV5]) + subscribe(1, [("a", 0xC0)])  # reserved bits
    yield bytes([SRV5]) + subscribe(1, [("a", 0)], p=props((0x0B, 0)))  # sub id 0
    yield bytes([SRV5_SMALL]) + publish("big", b"p" * 80, qos=1)
    # Protocol levels: 3.1.1 and 3.1 bridges (0x84, 0x83), unknown levels.
    bridge = connect(level=0x84, flags=0x02, cid="bridge-edge1")
    yield bytes([SRV_AUTO]) + bridge + subscribe(1, [("cmd/#", 1)], v5=False) \
        + publish("up/x", b"1", qos=1, pid=2, v5=False, retain=True) + ack(4, 2) \
        + pkt(12, 0, b"") + pkt(14, 0, b"")
    yield bytes([SRV_AUTO]) + connect(level=0x83, name="MQIsdp", cid="old-bridge") \
        + publish("a", b"b", v5=False)
    yield bytes([SRV_AUTO]) + connect(level=0x84, flags=0x02 | 0x04 | 0x20 | 0xC0,
                                      will=(b"", "w", b"x"), user="u", pw=b"p")
    yield bytes([SRV_AUTO]) + connect(level=0x85)  # 0x80 | 5: not a bridge level
    yield bytes([SRV_AUTO]) + connect(level=0x80)
    yield bytes([SRV_AUTO]) + connect(level=0x84, name="MQIsdp")
    yield bytes([SRV311]) + publish("a/b", b"x", qos=2, pid=65535, v5=False, dup=True)


# ---- bridge topic map --------------------------------------------------------

def topic_map_seeds():
    rows = [
        ("#", "remote/#", "", "", "a/b/c"),
        ("sensors/+/temp", "edge1/+/t", "", "", "sensors/kitchen/temp"),
        ("+/+/+", "+/x/+/+", "", "", "a/b/c"),
        ("a/#", "", "edge/", "/up", "a/b"),
        ("a/#", "", "", "/up", "a"),
        ("+", "#", "", "", ""),
        ("a//b", "x//#", "", "", "a//b"),
        ("$SYS/#", "sys/#", "", "", "$SYS/broker/uptime"),
        ("#", "", "p/", "", "$SYS/x"),
        ("a/+/#", "+/#", "", "", "a/b/c/d/e/f/g/h"),
        ("a/+/#", "b/+/+/#", "", "", "a/1/2"),
        ("cmd/+", "fixed", "", "", "cmd/x"),
        ("cmd/+", "fixed/+", "", "", "cmd/"),
        ("caf\u00e9/#", "t/\u00fc/#", "\u00e9/", "", "caf\u00e9/\u2603"),
        ("#", "#", "p" * 200, "s" * 200, "t/" * 60 + "end"),
        ("+/+", "+/+", "", "", "a/b/c"),  # does not match: maps nothing
        ("a/#", "b/#/c", "", "", "a/x"),  # # not last: invalid target
        ("a/+", "b/+x", "", "", "a/y"),
        ("a/b", "", "", "", "a/b"),
    ]
    for row in rows:
        yield "\0".join(row).encode()


# ---- password file -------------------------------------------------------------

def passwd_seeds():
    import base64
    salt = base64.b64encode(bytes(range(16))).decode()
    h = base64.b64encode(hashlib.sha512(b"x").digest()).decode()
    line = "$pbkdf2-sha512$100000$%s$%s" % (salt, h)
    yield line.encode()
    yield ("$pbkdf2-sha512$1000$%s$%s" % (salt, h)).encode()
    yield ("$pbkdf2-sha512$100000000$%s$%s" % (salt, h)).encode()
    yield ("$pbkdf2-sha512$999$%s$%s" % (salt, h)).encode()
    yield ("$pbkdf2-sha512$0100000$%s$%s" % (salt, h)).encode()
    yield ("$pbkdf2-sha512$100000$%s$%s" % (salt[:-2] + "A=", h)).encode()  # non-canonical
    yield ("$pbkdf2-sha512$100000$%s$" % salt).encode()
    yield b"$pbkdf2-sha256$1000$AAAA$AAAA"
    yield ('"alice" = "%s"\n"bob" = "%s"\n' % (line, line)).encode()
    yield ('alice = "%s"\nalice = "%s"\n' % (line, line)).encode()  # a user twice
    yield ('"al\\"ice" = "%s"\n' % line).encode()
    yield b'carol = "plaintext"\n'
    yield b'dave = 42\n'
    yield ('# comment\n"e" : "%s", "f" = {x = 1}\n' % line).encode()


# ---- certificates and requests ----------------------------------------------------

def x509_seeds():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID as N

    DER = serialization.Encoding.DER
    ec_key = ec.generate_private_key(ec.SECP256R1())  # never written out

    def attr(oid, value, t=None):
        if t is not None:
            return x509.NameAttribute(oid, value, _type=t, _validate=False)
        return x509.NameAttribute(oid, value, _validate=False)

    def name(*attrs):
        return x509.Name([a if isinstance(a, x509.NameAttribute) else attr(*a) for a in attrs])

    def cert(subject, key=ec_key, sans=None, serial=None, md=hashes.SHA256()):
        now = datetime.datetime(2026, 1, 1)
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
             .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
             .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30)))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(key, md).public_bytes(DER)

    def csr(subject, key=ec_key, md=hashes.SHA256()):
        return (x509.CertificateSigningRequestBuilder().subject_name(subject)
                .sign(key, md).public_bytes(DER))

    dev = name((N.ORGANIZATIONAL_UNIT_NAME, "Devices"), (N.COMMON_NAME, "sensor-1"))
    certs = [
        cert(dev),
        cert(name((N.COMMON_NAME, "broker.example")),
             sans=[x509.DNSName("broker.example"), x509.DNSName("*.example"),
                   x509.RFC822Name("ops@example.com"),
                   x509.UniformResourceIdentifier("spiffe://example/dev/1"),
                   x509.IPAddress(__import__("ipaddress").ip_address("10.0.0.1"))]),
        cert(name((N.COMMON_NAME, "first"), (N.ORGANIZATIONAL_UNIT_NAME, "Devices"),
                  (N.COMMON_NAME, "second"), (N.ORGANIZATIONAL_UNIT_NAME, "Operators"))),
        cert(name((N.COMMON_NAME, "admin\0.evil"))),
        cert(name(attr(N.COMMON_NAME, "bmp \u00e9\u2603", _ASN1Type.BMPString))),
        cert(name(attr(N.COMMON_NAME, "univ", _ASN1Type.UniversalString))),
        cert(name()),
        cert(name(*[(N.ORGANIZATIONAL_UNIT_NAME, "unit-%02d" % i) for i in range(40)],
                  (N.COMMON_NAME, "x" * 300))),
        cert(name((N.COUNTRY_NAME, "XX"), (N.ORGANIZATION_NAME, "O, with \"quotes\"+plus"),
                  (N.COMMON_NAME, "#hash=eq\\back"), (N.EMAIL_ADDRESS, "a@b.c"))),
        cert(name((N.COMMON_NAME, "ed")), key=ed25519.Ed25519PrivateKey.generate(), md=None),
        cert(dev, serial=(1 << 159) - 1, sans=[x509.DNSName("a\0b")]),
    ]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    reqs = [
        csr(dev),
        csr(name((N.COMMON_NAME, "no-role"))),
        csr(name((N.ORGANIZATIONAL_UNIT_NAME, "Services"), (N.COMMON_NAME, "svc")), key=rsa_key),
        csr(name((N.ORGANIZATIONAL_UNIT_NAME, "Operators"), (N.COMMON_NAME, "op")),
            key=ed25519.Ed25519PrivateKey.generate(), md=None),
        csr(name((N.COMMON_NAME, "harmless"), (N.ORGANIZATIONAL_UNIT_NAME, "Devices"),
                 (N.COMMON_NAME, "admin"))),
        csr(name((N.ORGANIZATIONAL_UNIT_NAME, "Devices"),
                 (N.ORGANIZATIONAL_UNIT_NAME, "Operators"), (N.COMMON_NAME, "two"))),
        csr(name((N.COUNTRY_NAME, "XX"), (N.ORGANIZATION_NAME, "Evil"),
                 (N.ORGANIZATIONAL_UNIT_NAME, "Devices"), (N.COMMON_NAME, "extra"),
                 (N.EMAIL_ADDRESS, "root@example.com"))),
        csr(name((N.COMMON_NAME, "../../etc/x"))),
        csr(name((N.COMMON_NAME, ".hidden"))),
        csr(name((N.COMMON_NAME, "admin\0.evil"))),
        csr(name((N.ORGANIZATIONAL_UNIT_NAME, "Admins"), (N.COMMON_NAME, "sneaky"))),
        csr(name(attr(N.COMMON_NAME, "bmp-\u00e9", _ASN1Type.BMPString))),
        csr(name((N.COMMON_NAME, "y" * 300))),
        csr(name((N.COMMON_NAME, "weak")), key=weak_key),
        csr(name((N.ORGANIZATIONAL_UNIT_NAME, "Devices"))),
    ]
    tampered = bytearray(reqs[0])
    i = tampered.find(b"sensor-1")
    tampered[i] = ord("X")
    reqs.append(bytes(tampered))
    return certs, reqs


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    for d in mqtt_seeds():
        save(root, "mqtt_decode", d)
    for d in topic_map_seeds():
        save(root, "bridge_topic_map", d)
    for d in passwd_seeds():
        save(root, "passwd_hash", d)
    certs, reqs = x509_seeds()
    for d in certs:
        save(root, "tls_identity", d)
    for d in reqs:
        save(root, "csr_check", d)


if __name__ == "__main__":
    main()
