// MQTT.js (npm `mqtt`, pinned in package.json) against a broker's WebSocket
// listener, for tests/integration/test_websocket.py. One scenario per run,
// from the JSON in argv[2]:
//   {url, version: 4|5|3, qos, count, topic, ca, cert, key, servername}
// A subscriber and a publisher connect over `url`; the publisher sends
// `count` messages at `qos` and one retained message; the subscriber must
// get every message once, in order, with its payload; then a third client
// must get the retained one with the retain flag. Prints "ok ..." and exits
// 0, or prints what went wrong and exits 1. Bounded by a 20 s timer.
import fs from "node:fs";
import mqtt from "mqtt";

const a = JSON.parse(process.argv[2]);
const topic = a.topic || "ws/js";
const count = a.count || 10;
const qos = a.qos || 0;

const timer = setTimeout(() => fail("timed out"), 20000);

function fail(why) {
  console.log("FAIL " + why);
  process.exit(1);
}

function options(id) {
  const o = {
    clientId: id,
    protocolVersion: a.version || 4,
    reconnectPeriod: 0,
    connectTimeout: 10000,
    clean: true,
  };
  if (a.ca) {
    o.ca = fs.readFileSync(a.ca);
    o.rejectUnauthorized = true;
    o.servername = a.servername || "localhost";
  }
  if (a.cert) {
    o.cert = fs.readFileSync(a.cert);
    o.key = fs.readFileSync(a.key);
  }
  return o;
}

function connect(id) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(a.url, options(id));
    c.once("connect", () => resolve(c));
    c.once("error", (e) => reject(new Error(id + ": " + e.message)));
    c.once("close", () => reject(new Error(id + ": closed before CONNACK")));
  });
}

function end(c) {
  return new Promise((resolve) => c.end(false, {}, resolve));
}

async function main() {
  const sub = await connect("js-sub");
  const got = [];
  let done, lastSeen;
  const all = new Promise((r) => (done = r));
  const last = new Promise((r) => (lastSeen = r));
  sub.on("message", (t, payload, packet) => {
    if (t !== topic) return;
    if (packet.retain) fail("a live message with the retain flag");
    got.push(payload.toString());
    if (got.length === count) done();
    if (payload.toString() === "last") lastSeen();
  });
  await sub.subscribeAsync(topic, { qos });
  const pub = await connect("js-pub");
  for (let i = 0; i < count; i++) await pub.publishAsync(topic, "m" + i, { qos });
  await all;
  for (let i = 0; i < count; i++)
    if (got[i] !== "m" + i) fail("message " + i + " is " + JSON.stringify(got[i]));
  // QoS 1 at least: acknowledged once the broker kept it, so the late
  // subscriber cannot overtake it (at QoS 0 it could get it live instead).
  await pub.publishAsync(topic + "/kept", "kept", { qos: Math.max(qos, 1), retain: true });
  const late = await connect("js-late");
  const retained = new Promise((resolve) =>
    late.on("message", (t, payload, packet) => resolve([t, payload.toString(), packet.retain]))
  );
  await late.subscribeAsync(topic + "/kept", { qos });
  const [t, p, r] = await retained;
  if (t !== topic + "/kept" || p !== "kept" || !r)
    fail("retained message: " + JSON.stringify([t, p, r]));
  // A duplicate of any earlier message would arrive before this one.
  await pub.publishAsync(topic, "last", { qos });
  await last;
  if (got.length !== count + 1) fail("got " + got.length + " messages: " + got.join(","));
  await Promise.all([end(sub), end(pub), end(late)]);
  clearTimeout(timer);
  console.log("ok " + count + " messages qos " + qos + " v" + (a.version || 4));
}

main().catch((e) => fail(e.message));
