"""A raw NATS client-protocol client for wire-level tests.

Commands are sent as the exact bytes a test writes (`c.send(b"PUB a 2\\r\\nhi\\r\\n")`)
or built by the helpers here; what the server sends back is parsed here
alone, independently of ward's codec and of nats.go / nats.c.

Every wait has a deadline, and the outcomes of a wait are kept apart:

    c.read_op(t)       the next server operation as an Op; raises Timeout if
                       none came within t seconds, Closed on EOF or reset
    c.expect(NAME, t)  the next operation, which must be NAME (MSG, HMSG,
                       PING, PONG, +OK, -ERR, INFO); AssertionError otherwise
    c.expect_close(t)  the operations read before the server closed; raises
                       AssertionError if the connection is still open after t
    c.flush(t)         sends PING and returns every operation that arrived
                       before the PONG (the server's PINGs are answered)

To show that something did NOT arrive, do not wait and see: make sure the
cause was handled (the publisher's own `flush()`), then `flush()` the
receiver: a server writes one connection's output in order, so whatever it
had queued for this client by then precedes the PONG.

Typical use:

    sub = connect(port)                 # INFO read, CONNECT sent, PONG seen
    sub.send(b"SUB a.* 1\\r\\n")
    pub = connect(port)
    pub.pub("a.b", b"hi")
    pub.flush()
    [m] = sub.msgs(sub.flush())
    assert m.payload == b"hi"
"""
import json
import socket
import ssl
import time

CRLF = b"\r\n"


class Timeout(Exception):
    """Nothing arrived within the deadline (the connection is still open)."""


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class Op:
    """One server operation. name is upper case; the fields that apply:
    MSG/HMSG: subject, sid, reply (None without one), headers (raw bytes of
    the header block, HMSG only), payload; INFO: info (a dict); -ERR: text
    (without the quotes); raw: the control line as received."""

    def __init__(self, name, raw, **kw):
        self.name = name
        self.raw = raw
        self.subject = self.sid = self.reply = self.headers = self.payload = None
        self.info = self.text = None
        self.__dict__.update(kw)

    def __repr__(self):
        keys = ("subject", "sid", "reply", "headers", "payload", "text")
        return "Op(%s %s)" % (self.name, " ".join("%s=%r" % (k, getattr(self, k)) for k in keys
                                                 if getattr(self, k) is not None))


def parse_headers(block):
    """The header block of an HMSG (bytes starting with NATS/1.0) as
    (status line, [(name, value), ...]); values keep their bytes."""
    lines = block.split(CRLF)
    assert lines[-2:] == [b"", b""], "header block not ended by an empty line: %r" % block
    out = []
    for line in lines[1:-2]:
        name, _, value = line.partition(b":")
        out.append((name.decode(), value.strip()))
    return lines[0], out


def header_block(pairs, status=b"NATS/1.0"):
    return status + CRLF + b"".join(b"%s: %s\r\n" % (k.encode(), v if isinstance(v, bytes)
                                                     else v.encode()) for k, v in pairs) + CRLF


class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.info = None
        self.pending = []  # operations read by flush() while looking for the PONG

    # ---- bytes ---------------------------------------------------------
    def send(self, data):
        """Sends bytes. A server that already closed is not an error here:
        the next read reports the close (so a test sees what came before it)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout()
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout()
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
            raise Closed(str(e))
        except OSError as e:
            raise Closed(str(e))
        if not data:
            raise Closed("EOF")
        self.buf += data

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while CRLF not in self.buf:
            self._fill(deadline)
        line, _, self.buf = self.buf.partition(CRLF)
        return line

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    # ---- operations ----------------------------------------------------
    def read_op(self, timeout=None):
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        line = self.read_line(max(0.0, deadline - time.monotonic()))
        word, _, rest = line.partition(b" ")
        name = word.upper().decode("latin-1")
        if name == "INFO":
            return Op(name, line, info=json.loads(rest))
        if name == "-ERR":
            text = rest.decode("latin-1").strip()
            if len(text) >= 2 and text[0] == text[-1] == "'":
                text = text[1:-1]
            return Op(name, line, text=text)
        if name in ("MSG", "HMSG"):
            args = rest.split()
            if name == "MSG":
                assert len(args) in (3, 4), "bad MSG line %r" % line
                hlen, total = 0, int(args[-1])
            else:
                assert len(args) in (4, 5), "bad HMSG line %r" % line
                hlen, total = int(args[-2]), int(args[-1])
            reply = args[2].decode() if len(args) == (4 if name == "MSG" else 5) else None
            left = max(0.0, deadline - time.monotonic()) + 1.0
            body = self.read_exact(total + 2, left)
            assert body[-2:] == CRLF, "payload not followed by CRLF: %r" % body[-2:]
            return Op(name, line, subject=args[0].decode(), sid=args[1].decode(), reply=reply,
                      headers=body[:hlen] if name == "HMSG" else None, payload=body[hlen:total])
        return Op(name, line)

    def expect(self, name, timeout=None):
        try:
            op = self.read_op(timeout)
        except Timeout:
            raise AssertionError("expected %s, nothing came" % name)
        except Closed as e:
            raise AssertionError("expected %s, the server closed (%s)" % (name, e))
        assert op.name == name, "expected %s, got %r" % (name, op)
        return op

    def expect_err(self, text, timeout=None):
        op = self.expect("-ERR", timeout)
        assert op.text == text, "expected -ERR %r, got %r" % (text, op.text)
        return op

    def expect_close(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        ops = []
        while True:
            try:
                ops.append(self.read_op(max(0.0, deadline - time.monotonic())))
            except Closed:
                return ops
            except Timeout:
                raise AssertionError("the server did not close; it sent %r" % ops)

    def flush(self, timeout=None):
        """PING, then every operation before the PONG. The server's own
        PINGs met on the way are answered and left out."""
        self.send(b"PING\r\n")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        ops = []
        while True:
            try:
                op = self.read_op(max(0.0, deadline - time.monotonic()))
            except Timeout:
                raise AssertionError("no PONG; got %r" % ops)
            except Closed as e:
                raise AssertionError("closed before PONG (%s); got %r" % (e, ops))
            if op.name == "PONG":
                return ops
            if op.name == "PING":
                self.send(b"PONG\r\n")
                continue
            ops.append(op)

    @staticmethod
    def msgs(ops):
        bad = [op for op in ops if op.name not in ("MSG", "HMSG")]
        assert not bad, "operations other than messages: %r" % bad
        return ops

    # ---- commands ------------------------------------------------------
    def connect_op(self, **opts):
        o = {"verbose": False, "pedantic": False, "lang": "python-test", "version": "0.0.1",
             "protocol": 1}
        o.update(opts)
        self.send(b"CONNECT " + json.dumps(o, separators=(",", ":")).encode() + CRLF)

    def pub(self, subject, payload=b"", reply=None):
        r = (" " + reply) if reply else ""
        self.send(b"PUB %s%s %d\r\n%s\r\n" % (subject.encode(), r.encode(), len(payload),
                                              payload))

    def hpub(self, subject, headers, payload=b"", reply=None):
        r = (" " + reply) if reply else ""
        self.send(b"HPUB %s%s %d %d\r\n%s%s\r\n" % (
            subject.encode(), r.encode(), len(headers), len(headers) + len(payload), headers,
            payload))

    def sub(self, subject, sid, queue=None):
        q = (" " + queue) if queue else ""
        self.send(b"SUB %s%s %s\r\n" % (subject.encode(), q.encode(), str(sid).encode()))

    def unsub(self, sid, max_msgs=None):
        m = (" %d" % max_msgs) if max_msgs is not None else ""
        self.send(b"UNSUB %s%s\r\n" % (str(sid).encode(), m.encode()))

    def starttls(self, ctx, server_hostname="localhost"):
        """The client's side of NATS TLS: the plaintext INFO has been read;
        from here on everything goes through TLS."""
        assert not self.buf, "bytes after INFO before the TLS handshake: %r" % self.buf
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def read_info(c, timeout=5.0):
    op = c.expect("INFO", timeout)
    c.info = op.info
    return op.info


def connect(port, host="127.0.0.1", tls=None, server_hostname="localhost", flush=True,
            **opts):
    """A connected client: INFO read, TLS started when `tls` (an SSLContext)
    is given, CONNECT sent with `opts` (headers and no_responders are on
    unless given), and with `flush` a PING answered by PONG."""
    c = Conn(port, host)
    read_info(c)
    if tls is not None:
        c.starttls(tls, server_hostname)
    opts.setdefault("headers", True)
    opts.setdefault("no_responders", True)
    c.connect_op(**opts)
    if flush:
        ops = c.flush()
        assert not ops, "unexpected operations after CONNECT: %r" % ops
    return c
