// nats.js over WebSocket (wsconnect from @nats-io/nats-core, pinned in
// package.json; Node 20 needs --experimental-websocket) for
// tests/integration/test_websocket_nats.py. From the JSON in argv[2]:
//   {url, count}
// One connection subscribes, another publishes `count` messages with a
// header and answers requests; the first checks every message (payload,
// header, order), then makes a request and checks the reply, and sends a
// 200 KB message that must come back whole. Prints "ok ..." and exits 0,
// or prints what went wrong and exits 1. Bounded by a 20 s timer.
import { headers, wsconnect } from "@nats-io/nats-core";

const a = JSON.parse(process.argv[2]);
const count = a.count || 20;
const timer = setTimeout(() => fail("timed out"), 20000);

function fail(why) {
  console.log("FAIL " + why);
  process.exit(1);
}

async function main() {
  const opts = { servers: a.url, reconnect: false, timeout: 10000 };
  const sub = await wsconnect({ ...opts, name: "js-ws-sub" });
  const pub = await wsconnect({ ...opts, name: "js-ws-pub" });
  const s = sub.subscribe("ws.js.>", { max: count + 1 });
  const svc = pub.subscribe("ws.svc", {
    callback: (err, m) => {
      if (!err) m.respond("re:" + m.string());
    },
  });
  await sub.flush();
  await pub.flush();
  const big = "b".repeat(200000);
  for (let i = 0; i < count; i++) {
    const h = headers();
    h.set("X-Seq", String(i));
    pub.publish("ws.js.m", "m" + i, { headers: h });
  }
  pub.publish("ws.js.big", big);
  let i = 0;
  for await (const m of s) {
    if (i < count) {
      if (m.subject !== "ws.js.m" || m.string() !== "m" + i || m.headers?.get("X-Seq") !== String(i))
        fail("message " + i + ": " + m.subject + " " + m.string());
    } else if (m.subject !== "ws.js.big" || m.string() !== big) {
      fail("the big message: " + m.subject + " " + m.data.length + " bytes");
    }
    i++;
  }
  if (i !== count + 1) fail("got " + i + " messages");
  const r = await sub.request("ws.svc", "hello", { timeout: 5000 });
  if (r.string() !== "re:hello") fail("reply " + r.string());
  svc.unsubscribe();
  await sub.drain();
  await pub.drain();
  clearTimeout(timer);
  console.log("ok " + count + " messages, request, 200 KB");
}

main().catch((e) => fail(e.message));
