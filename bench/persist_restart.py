"""bench/persist.sh's restart case, raw MQTT 3.1.1 over loopback (no client
library: the counts must be exact and the loops cheap).

  fill PORT RETAINED QUEUED [QOS]
      makes a persistent session "persist-q" subscribed to q/# at QoS 1 and
      leaves it offline, retains RETAINED messages r/<i> (QOS 0, the
      default: then one QoS 1 publish whose PUBACK says the broker has read
      them all; QOS 1: each acknowledged, 500 in flight), and
      publishes QUEUED QoS 1 messages to q/1, each acknowledged by the broker
      (so each one is a promise the broker must keep across the restart).
  drain PORT RETAINED QUEUED T0 TIMEOUT [IDLE [QOS]]
      T0 is when the broker was started again (seconds since the epoch):
      times until the port accepts, until "persist-q" gets its CONNACK,
      until its QUEUED messages arrived (each acknowledged), and until a new
      subscriber to r/# got all RETAINED messages (new subscribers until one
      does or two get the same number: what the first got is reported too);
      a wait for either set ends after IDLE seconds (default 10) without a
      packet; QOS (default 0) is the r/# subscription's. Times are from T0.
Each prints one JSON object; every wait is bounded by TIMEOUT (fill: 600 s).
"""
import json
import socket
import struct
import sys
import time


def vbi(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(text):
    b = text.encode()
    return struct.pack("!H", len(b)) + b


def frame(first, body):
    return bytes([first]) + vbi(len(body)) + body


def connect(cid, clean):
    body = s("MQTT") + bytes([4, 0x02 if clean else 0]) + struct.pack("!H", 600) + s(cid)
    return frame(0x10, body)


def publish(topic, payload, qos=0, retain=False, pid=0):
    body = s(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return frame(0x30 | (qos << 1) | (1 if retain else 0), body)


def subscribe(pid, flt, qos):
    return frame(0x82, struct.pack("!H", pid) + s(flt) + bytes([qos]))


class Conn:
    def __init__(self, port, deadline):
        self.deadline = deadline
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(max(deadline - time.time(), 0.1))  # sends too: a slow reader
        self.buf = bytearray()

    def packets(self, idle=None):
        """Yields (type_and_flags, body) as they arrive, until the deadline
        (TimeoutError) or, with `idle`, until nothing came for that long."""
        while True:
            # Each packet leaves the buffer before it is yielded: a caller
            # that stops early (expect) must not see it again next time.
            while len(self.buf) >= 2:
                mult, n, j = 1, 0, 1
                while j < len(self.buf):
                    b = self.buf[j]
                    n += (b & 127) * mult
                    mult *= 128
                    j += 1
                    if not b & 128:
                        break
                else:
                    break
                if len(self.buf) < j + n:
                    break
                first, body = self.buf[0], bytes(self.buf[j:j + n])
                del self.buf[:j + n]
                yield first, body
            left = self.deadline - time.time()
            if left <= 0:
                raise TimeoutError("deadline")
            self.sock.settimeout(min(left, idle) if idle else left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                if idle:
                    return
                raise
            if not chunk:
                raise ConnectionError("closed by the broker")
            self.buf += chunk

    def expect(self, ptype):
        for first, body in self.packets():
            if first >> 4 == ptype:
                return body
        raise ConnectionError("no packet")


def fill(port, nret, nq, rqos):
    t0 = time.time()
    deadline = t0 + 600
    q = Conn(port, deadline)
    q.sock.sendall(connect("persist-q", False))
    q.expect(2)
    q.sock.sendall(subscribe(1, "q/#", 1))
    q.expect(9)
    q.sock.sendall(frame(0xE0, b""))
    q.sock.close()
    p = Conn(port, deadline)
    p.sock.sendall(connect("persist-fill", True))
    p.expect(2)
    pid = 1

    def acked_batches(count, make):
        """Sends count QoS 1 publishes, 500 at a time, each batch acknowledged
        before the next; returns how many were acknowledged."""
        nonlocal pid
        done = 0
        while done < count:
            n = min(500, count - done)
            batch = []
            for k in range(n):
                pid = pid % 65535 + 1
                batch.append(make(done + k, pid))
            p.sock.sendall(b"".join(batch))
            got = 0
            for first, _ in p.packets():
                if first >> 4 == 4:
                    got += 1
                    if got == n:
                        break
            done += n
        return done

    pay = b"retained-payload"
    if rqos:
        acked_batches(nret, lambda i, pid: publish("r/%d" % i, pay, qos=1, retain=True, pid=pid))
    else:
        for start in range(0, nret, 20000):
            p.sock.sendall(b"".join(publish("r/%d" % i, pay, retain=True)
                                    for i in range(start, min(start + 20000, nret))))
        p.sock.sendall(publish("fill/done", b"x", qos=1, pid=pid))
        p.expect(4)
    t_ret = time.time() - t0
    body = b"queued-message-%08d"
    acked = acked_batches(nq, lambda i, pid: publish("q/1", body % i, qos=1, pid=pid))
    p.sock.sendall(frame(0xE0, b""))
    p.sock.close()
    print(json.dumps({"retained": nret, "queued_acked": acked, "retained_s": round(t_ret, 3),
                      "seconds": round(time.time() - t0, 3)}))


def drain(port, nret, nq, t0, timeout, idle, rqos):
    deadline = t0 + timeout
    r = {"port_s": None, "connack_s": None, "session_present": None, "queued": 0,
         "queued_s": None, "retained_first": None, "retained": 0, "retained_s": None,
         "retained_tries": 0, "error": None}
    try:
        while True:
            try:
                q = Conn(port, deadline)
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("the port never accepted")
                time.sleep(0.005)
        r["port_s"] = round(time.time() - t0, 3)
        q.sock.sendall(connect("persist-q", False))
        body = q.expect(2)
        r["connack_s"] = round(time.time() - t0, 3)
        r["session_present"] = bool(body[0] & 1)
        seen = set()
        if nq:
            for first, body in q.packets(idle=idle):
                if first >> 4 != 3:
                    continue
                tl = struct.unpack("!H", body[:2])[0]
                i = 2 + tl
                if (first >> 1) & 3:
                    q.sock.sendall(frame(0x40, body[i:i + 2]))
                    i += 2
                seen.add(body[i:])
                r["queued"] = len(seen)
                if len(seen) >= nq:
                    break
            if len(seen) >= nq:
                r["queued_s"] = round(time.time() - t0, 3)
        q.sock.sendall(frame(0xE0, b""))
        q.sock.close()
        # A broker may still be loading its retained set when it accepts
        # clients: a new subscriber each time, until one gets them all, or
        # two in a row get the same number.
        tries, prev = 0, -1
        while nret:
            tries += 1
            c = Conn(port, deadline)
            c.sock.sendall(connect("persist-ret-%d" % tries, True))
            c.expect(2)
            c.sock.sendall(subscribe(1, "r/#", rqos))
            n = 0
            for first, body in c.packets(idle=idle):
                if first >> 4 == 3:
                    if (first >> 1) & 3:
                        tl = struct.unpack("!H", body[:2])[0]
                        c.sock.sendall(frame(0x40, body[2 + tl:4 + tl]))
                    n += 1
                    if n >= nret:
                        break
            c.sock.close()
            if tries == 1:
                r["retained_first"] = n
            r["retained"], r["retained_tries"] = n, tries
            if n >= nret or n == prev:
                break
            prev = n
        if nret and r["retained"] >= nret:
            r["retained_s"] = round(time.time() - t0, 3)
    except (OSError, TimeoutError, ConnectionError) as e:
        r["error"] = str(e) or type(e).__name__
    print(json.dumps(r))


if __name__ == "__main__":
    a = sys.argv
    if a[1] == "fill":
        fill(int(a[2]), int(a[3]), int(a[4]), int(a[5]) if len(a) > 5 else 0)
    else:
        drain(int(a[2]), int(a[3]), int(a[4]), float(a[5]), float(a[6]),
              float(a[7]) if len(a) > 7 else 10.0, int(a[8]) if len(a) > 8 else 0)
