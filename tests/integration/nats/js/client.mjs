// nats.js (@nats-io/transport-node) against a NATS server, for
// tests/integration/test_nats_js.py. One scenario per run:
//
//   node client.mjs '{"mode": "...", "port": N, ...}'
//
// plain    pub/sub with headers, request/reply (responder on another
//          connection), no responders, queue group, drain; prints "ok plain"
// tls      {tls: {caFile, certFile?, keyFile?, handshakeFirst?}}: connect,
//          pub/sub with headers and a request; prints the INFO flags it
//          saw, then "ok tls"
// big      {max}: messages of exactly max_payload (Mir's 8MB)
// pub      {subject, data, headers}: one publish
// request  {subject, data, headers}: one request, prints the reply as JSON
// respond  {subject}: answers one request (see respond1)
// perms    {seed, peer}: permission violations as nats.js reports them
// nkeygen  prints a new user key pair as JSON
// fail     {tls?, seed?, token?}: the connection must fail within the
//          connect timeout;
//          prints "failed NAME: MESSAGE" (exit 0) or "connected" (exit 1)
// sub      {subject, count?}: subscribes, prints "ready" once the server
//          has the subscription, then the first count messages (default 1)
//          as one JSON line each
//
// Each scenario checks what it received itself and exits non-zero with the
// reason on the first difference; every wait is bounded.
import { connect, headers, nkeyAuthenticator, nkeys } from "@nats-io/transport-node";

const args = JSON.parse(process.argv[2] || "{}");
const WAIT = 5000;
const enc = new TextEncoder();
const dec = new TextDecoder();

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

function eq(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

// Resolves with the first `n` messages of sub, or rejects after ms.
async function take(sub, n, ms = WAIT) {
  const got = [];
  const timer = setTimeout(() => sub.unsubscribe(), ms);
  for await (const m of sub) {
    got.push(m);
    if (got.length >= n) break;
  }
  clearTimeout(timer);
  if (got.length < n) throw new Error(`${sub.getSubject()}: ${got.length} of ${n} messages`);
  return got;
}

// What p resolves to, or `otherwise` if it has not after WAIT.
function within(p, otherwise) {
  let timer;
  const late = new Promise((r) => (timer = setTimeout(() => r(otherwise), WAIT)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

// Header names in the order they came, each with all its values.
function hdrs(m) {
  const out = [];
  if (!m.headers) return out;
  for (const [k, v] of m.headers) out.push([k, v]);
  return out;
}

function opts(extra = {}, auth = args) {
  const o = { servers: `127.0.0.1:${args.port}`, timeout: WAIT, reconnect: false };
  if (auth.seed) o.authenticator = nkeyAuthenticator(enc.encode(auth.seed));
  if (auth.token) o.token = auth.token;
  if (auth.user) Object.assign(o, { user: auth.user, pass: auth.pass });
  return { ...o, ...extra };
}

async function pubsub(a, b) {
  const sub = a.subscribe("js.t.*");
  await a.flush();
  const h = headers();
  h.append("X-One", "1");
  h.append("X-Multi", "a");
  h.append("X-Multi", "b");
  const bin = new Uint8Array(4096);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 7) & 0xff;
  for (let i = 0; i < 20; i++) b.publish("js.t.n", enc.encode("m" + i));
  b.publish("js.t.h", enc.encode("with headers"), { headers: h });
  b.publish("js.t.bin", bin);
  b.publish("js.t.empty");
  const got = await take(sub, 23);
  sub.unsubscribe();
  for (let i = 0; i < 20; i++) {
    eq(got[i].subject, "js.t.n", "subject " + i);
    eq(dec.decode(got[i].data), "m" + i, "payload " + i);
    check(!got[i].headers, "no headers on message " + i);
  }
  eq(got[20].subject, "js.t.h", "headers subject");
  eq(dec.decode(got[20].data), "with headers", "headers payload");
  eq(got[20].headers.values("X-Multi"), ["a", "b"], "repeated header");
  eq(got[20].headers.get("X-One"), "1", "header X-One");
  eq(got[21].data.length, 4096, "binary length");
  check(got[21].data.every((v, i) => v === ((i * 7) & 0xff)), "binary payload intact");
  eq(got[22].data.length, 0, "empty payload");
}

async function limits(a, b) {
  // Auto-unsubscribe after 3 (UNSUB sid 3): exactly 3 delivered of 10.
  const auto = a.subscribe("js.max", { max: 3 });
  await a.flush();
  for (let i = 0; i < 10; i++) b.publish("js.max", enc.encode(String(i)));
  await b.flush();
  await a.flush();
  eq(auto.getReceived(), 3, "messages to a subscription with max 3");
  // Headers with no payload at all, and a payload near the announced limit.
  const big = Math.min(a.info.max_payload - 1024, 512 * 1024);
  const sub = a.subscribe("js.big");
  await a.flush();
  const h = headers();
  h.set("X-Only", "headers");
  b.publish("js.big", undefined, { headers: h });
  const payload = new Uint8Array(big).fill(0x5a);
  b.publish("js.big", payload);
  const [m1, m2] = await take(sub, 2);
  eq(m1.data.length, 0, "headers-only payload");
  eq(m1.headers.get("X-Only"), "headers", "headers-only header");
  eq(m2.data.length, big, "large payload length");
  check(m2.data.every((v) => v === 0x5a), "large payload intact");
  sub.unsubscribe();
  // Exactly the announced max_payload is accepted and delivered.
  const full = a.subscribe("js.full");
  await a.flush();
  b.publish("js.full", new Uint8Array(a.info.max_payload));
  const [m3] = await take(full, 1);
  eq(m3.data.length, a.info.max_payload, "max_payload message");
  full.unsubscribe();
  // A subject that is not ASCII, and 200 headers on one message.
  const uni = a.subscribe("js.\u00fc.\u6c34");
  await a.flush();
  const many = headers();
  for (let i = 0; i < 200; i++) many.append("X-H" + i, "v" + i);
  b.publish("js.\u00fc.\u6c34", enc.encode("u"), { headers: many });
  const [m4] = await take(uni, 1);
  eq(m4.subject, "js.\u00fc.\u6c34", "non-ASCII subject");
  eq([m4.headers.keys().length, m4.headers.get("X-H199")], [200, "v199"], "200 headers");
  uni.unsubscribe();
  const rtt = await a.rtt();
  check(rtt >= 0 && rtt < WAIT, "rtt " + rtt);
}

async function request(a, b) {
  const svc = a.subscribe("js.svc", {
    callback: (err, m) => {
      if (err) return;
      const h = headers();
      h.set("X-Answer", m.headers ? m.headers.get("X-Ask") : "none");
      m.respond(enc.encode("re:" + dec.decode(m.data)), { headers: h });
    },
  });
  await a.flush();
  const h = headers();
  h.set("X-Ask", "question");
  const r1 = await b.request("js.svc", enc.encode("ping"), { timeout: WAIT, headers: h });
  eq(dec.decode(r1.data), "re:ping", "reply payload");
  eq(r1.headers.get("X-Answer"), "question", "reply header");
  // Several in flight at once through the shared (muxed) inbox.
  const many = await Promise.all(
    [0, 1, 2, 3, 4].map((i) => b.request("js.svc", enc.encode("q" + i), { timeout: WAIT })),
  );
  eq(many.map((m) => dec.decode(m.data)), ["re:q0", "re:q1", "re:q2", "re:q3", "re:q4"],
    "concurrent replies");
  // A request without the mux: its own inbox per request.
  const r2 = await b.request("js.svc", enc.encode("nomux"), { timeout: WAIT, noMux: true });
  eq(dec.decode(r2.data), "re:nomux", "noMux reply");
  svc.unsubscribe();
}

async function noResponders(b) {
  // The status message itself: a zero-payload HMSG with status 503.
  const inbox = "_INBOX.js-nr-" + process.pid;
  const sub = b.subscribe(inbox);
  b.publish("js.nobody.here", enc.encode("x"), { reply: inbox });
  const [m] = await take(sub, 1);
  check(m.headers, "503 status has headers");
  eq(m.headers.code, 503, "status code");
  eq(m.data.length, 0, "503 payload length");
  sub.unsubscribe();
  // And what an application sees: the request fails at once as "no
  // responders", not after its timeout.
  const t0 = Date.now();
  try {
    await b.request("js.nobody.here", enc.encode("x"), { timeout: 4000 });
    throw new Error("a request nobody answers succeeded");
  } catch (e) {
    check(typeof e.isNoResponders === "function" && e.isNoResponders(),
      "RequestError with NoResponders cause, got " + e);
  }
  check(Date.now() - t0 < 3000, "no responders came before the request timeout");
}

async function queue(a, b, c) {
  const n = 60;
  const members = [
    a.subscribe("js.q", { queue: "workers" }),
    a.subscribe("js.q", { queue: "workers" }),
    c.subscribe("js.q", { queue: "workers" }),
  ];
  const other = c.subscribe("js.q", { queue: "others" });
  const plain = a.subscribe("js.q");
  await a.flush();
  await c.flush();
  for (let i = 0; i < n; i++) b.publish("js.q", enc.encode(String(i)));
  await b.flush();
  // Every copy the server sent to a and c precedes their PONGs.
  await a.flush();
  await c.flush();
  const counts = members.map((s) => s.getReceived());
  eq(counts.reduce((x, y) => x + y, 0), n, "one member of the group per message");
  eq(other.getReceived(), n, "the second group gets every message");
  eq(plain.getReceived(), n, "the plain subscriber gets every message");
  for (const s of [...members, other, plain]) s.unsubscribe();
  // Where each message went (members, group of 3) is nats-server's choice:
  // only the totals are asserted.
  return counts;
}

// noEcho: a connection does not get its own messages; verbose and
// pedantic: every operation gets +OK, which nats.js consumes.
async function options(a) {
  const quiet = await connect(opts({ name: "natsjs-noecho", noEcho: true }));
  const loud = await connect(opts({ name: "natsjs-verbose", verbose: true, pedantic: true }));
  const own = quiet.subscribe("js.echo");
  const other = a.subscribe("js.echo");
  const vs = loud.subscribe("js.verbose");
  await quiet.flush();
  await a.flush();
  await loud.flush();
  quiet.publish("js.echo", enc.encode("self"));
  loud.publish("js.verbose", enc.encode("v"));
  await quiet.flush();
  await loud.flush();
  await take(other, 1);
  await take(vs, 1);
  eq(own.getReceived(), 0, "noEcho: own message not delivered");
  await quiet.close();
  await loud.close();
}

async function drain(b) {
  const d = await connect(opts({ name: "natsjs-drain" }));
  const seen = [];
  const sub = d.subscribe("js.d", {
    callback: (err, m) => {
      if (!err) seen.push(dec.decode(m.data));
    },
  });
  await d.flush();
  for (let i = 0; i < 50; i++) b.publish("js.d", enc.encode(String(i)));
  await b.flush();
  const closed = d.closed();
  await d.drain();
  const err = await closed;
  check(!err, "drain closed cleanly, got " + err);
  check(d.isClosed(), "connection closed after drain");
  check(sub.isClosed(), "subscription closed after drain");
  eq(seen.length, 50, "messages delivered before drain finished");
  eq(seen, Array.from({ length: 50 }, (_, i) => String(i)), "drained messages in order");
}

async function plain() {
  const a = await connect(opts({ name: "natsjs-a" }));
  const b = await connect(opts({ name: "natsjs-b" }));
  const c = await connect(opts({ name: "natsjs-c" }));
  check(a.info.headers === true, "INFO headers:true");
  check(a.info.proto >= 1, "INFO proto >= 1");
  await pubsub(a, b);
  await limits(a, b);
  await request(a, b);
  await noResponders(b);
  const counts = await queue(a, b, c);
  await options(a);
  await drain(b);
  for (const nc of [a, b, c]) await nc.close();
  console.log("queue split " + JSON.stringify(counts));
  console.log("ok plain");
}

async function tls() {
  const a = await connect(opts({ name: "natsjs-tls-a", tls: args.tls }));
  const b = await connect(opts({ name: "natsjs-tls-b", tls: args.tls }));
  const sub = a.subscribe("js.tls.>");
  await a.flush();
  const h = headers();
  h.set("X-Tls", "yes");
  b.publish("js.tls.x", enc.encode("secret"), { headers: h });
  const [m] = await take(sub, 1);
  eq(m.subject, "js.tls.x", "subject over TLS");
  eq(dec.decode(m.data), "secret", "payload over TLS");
  eq(m.headers.get("X-Tls"), "yes", "header over TLS");
  a.subscribe("js.tls.svc", { callback: (err, r) => err || r.respond(r.data) });
  await a.flush();
  const r = await b.request("js.tls.svc", enc.encode("echo"), { timeout: WAIT });
  eq(dec.decode(r.data), "echo", "request over TLS");
  const i = a.info;
  console.log("info " + JSON.stringify({
    tls_required: i.tls_required, tls_verify: i.tls_verify, tls_available: i.tls_available,
  }));
  await a.close();
  await b.close();
  console.log("ok tls");
}

async function fail() {
  const t0 = Date.now();
  try {
    const nc = await connect(opts({ tls: args.tls, timeout: args.timeout || 3000 }));
    console.log("connected");
    await nc.close();
    process.exit(1);
  } catch (e) {
    const cause = e.cause ? ` (cause: ${e.cause.name}: ${e.cause.message})` : "";
    console.log(`failed ${e.name}: ${e.message}${cause} after ${Date.now() - t0} ms`);
  }
}

async function sub() {
  const nc = await connect(opts({ name: "natsjs-sub" }));
  const s = nc.subscribe(args.subject);
  await nc.flush();
  console.log("ready");
  for (const m of await take(s, args.count || 1, args.wait || 10000)) {
    console.log(JSON.stringify({
      subject: m.subject, reply: m.reply || null, data: dec.decode(m.data), headers: hdrs(m),
      raw: m.headers ? m.headers.toString() : null,
    }));
  }
  await nc.close();
}

// {subject, data, headers: [[k, v]...]}: one publish, flushed.
async function pub1() {
  const nc = await connect(opts({ name: "natsjs-publisher" }));
  const h = headers();
  for (const [k, v] of args.headers || []) h.append(k, v);
  nc.publish(args.subject, enc.encode(args.data), { headers: h });
  await nc.flush();
  await nc.close();
  console.log("ok pub");
}

// {subject, data, headers: [[k, v]...]}: one request; prints the reply.
async function request1() {
  const nc = await connect(opts({ name: "natsjs-requester" }));
  const h = headers();
  for (const [k, v] of args.headers || []) h.append(k, v);
  const r = await nc.request(args.subject, enc.encode(args.data), { timeout: WAIT, headers: h });
  console.log(JSON.stringify({ data: dec.decode(r.data), headers: hdrs(r) }));
  await nc.close();
}

// {subject}: answers the first request on subject, copying its
// Ward-Correlation-Data header and adding X-Answer; prints "ready" once
// subscribed, then the request as one JSON line.
async function respond1() {
  const nc = await connect(opts({ name: "natsjs-responder" }));
  const s = nc.subscribe(args.subject);
  await nc.flush();
  console.log("ready");
  const [m] = await take(s, 1, args.wait || 10000);
  const h = headers();
  h.set("X-Answer", "from nats.js");
  const corr = m.headers && m.headers.get("Ward-Correlation-Data");
  if (corr) h.set("Ward-Correlation-Data", corr);
  check(m.reply, "the request has a reply subject");
  m.respond(enc.encode("answer:" + dec.decode(m.data)), { headers: h });
  await nc.flush();
  console.log(JSON.stringify({ subject: m.subject, reply: m.reply, data: dec.decode(m.data),
    headers: hdrs(m) }));
  await nc.close();
}

// {max}: INFO announces max_payload == max; three messages of exactly that
// size arrive intact, in order.
async function big() {
  const a = await connect(opts({ name: "natsjs-big-a" }));
  const b = await connect(opts({ name: "natsjs-big-b" }));
  eq(a.info.max_payload, args.max, "INFO max_payload");
  const n = a.info.max_payload;
  const sub = a.subscribe("js.big");
  await a.flush();
  for (let k = 0; k < 3; k++) {
    const p = new Uint8Array(n);
    for (let i = 0; i < n; i++) p[i] = (i + k) % 251;
    b.publish("js.big", p);
  }
  const got = await take(sub, 3, 20000);
  got.forEach((m, k) => {
    eq(m.data.length, n, "length of message " + k);
    check(m.data.every((v, i) => v === (i + k) % 251), "content of message " + k);
  });
  await a.close();
  await b.close();
  console.log("ok big");
}

// A user key pair for the NKey tests: {"pub": "U...", "seed": "SU..."}.
async function nkeygen() {
  const kp = nkeys.createUser();
  console.log(JSON.stringify({ pub: kp.getPublicKey(), seed: dec.decode(kp.getSeed()) }));
}

// args.seed is a user allowed to publish device.> and subscribe dev.>;
// args.peer (seed or token) a user with all rights. Violations are
// reported the way nats.js understands nats-server's texts (a
// PermissionViolationError with the operation, subject and queue), and
// the connection stays usable.
async function perms() {
  const a = await connect(opts({ name: "natsjs-limited" }));
  const b = await connect(opts({ name: "natsjs-peer" }, args.peer));
  const errors = [];
  let sawPublish;
  const publishError = new Promise((r) => (sawPublish = r));
  (async () => {
    for await (const st of a.status()) {
      if (st.type !== "error") continue;
      errors.push(st.error);
      if (st.error.operation === "publish") sawPublish(st.error);
    }
  })();
  const good = a.subscribe("dev.>");
  const bad = a.subscribe("other.x");
  const badq = a.subscribe("other.q", { queue: "g" });
  await a.flush();
  const e1 = await within(bad.closed, "open");
  check(e1 instanceof Error, "the forbidden subscription was closed with an error, got " + e1);
  eq([e1.name, e1.operation, e1.subject, e1.queue || null],
    ["PermissionViolationError", "subscription", "other.x", null], "subscription violation");
  const e2 = await within(badq.closed, "open");
  check(e2 instanceof Error, "the forbidden queue subscription closed with an error, got " + e2);
  eq([e2.operation, e2.subject, e2.queue], ["subscription", "other.q", "g"],
    "queue subscription violation");
  a.publish("nope.x", enc.encode("n"));
  await a.flush();
  // The status stream is read by another task: wait for it, bounded.
  const pe = await within(publishError, undefined);
  check(pe, "a publish violation reported, got " + errors.map(String));
  eq([pe.name, pe.subject], ["PermissionViolationError", "nope.x"], "publish violation");
  check(!a.isClosed(), "the connection stays open after violations");
  // Still working both ways.
  const watch = b.subscribe("device.>");
  await b.flush();
  a.publish("device.1.tlm", enc.encode("t"));
  const [m] = await take(watch, 1);
  eq([m.subject, dec.decode(m.data)], ["device.1.tlm", "t"], "allowed publish delivered");
  b.publish("dev.1.cmd", enc.encode("c"));
  const [c] = await take(good, 1);
  eq([c.subject, dec.decode(c.data)], ["dev.1.cmd", "c"], "allowed subscription delivers");
  eq(errors.length, 3, "three violations in all, got " + errors.map(String));
  await a.close();
  await b.close();
  console.log("ok perms");
}

const modes = { plain, tls, fail, sub, nkeygen, perms, request: request1, respond: respond1, big, pub: pub1 };
const run = modes[args.mode];
if (!run) {
  console.error("unknown mode " + args.mode);
  process.exit(2);
}
// A scenario that hangs is a failure too, not a stuck test.
const guard = setTimeout(() => {
  console.error("timed out in mode " + args.mode);
  process.exit(3);
}, args.deadline || 30000);
run().then(
  () => {
    clearTimeout(guard);
    process.exit(0);
  },
  (e) => {
    console.error(`${args.mode}: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  },
);
