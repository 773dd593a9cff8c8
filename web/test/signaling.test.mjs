// Where the room's socket connects: the page's own server, or the consult's worker named by
// the session or a `wrong_worker` answer (docs/protocol.md, "Several workers").
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  FAILURES_BEFORE_LOCATING,
  delay,
  recovery,
  sessionRefused,
  socketAddress,
  wirePayload,
} from "../src/signaling.js";

const PAGE = "https://triad.example.test";

test("one process: the page's own server", () => {
  assert.deepEqual(socketAddress(null, PAGE), { uri: "/consult", path: "/socket.io" });
  assert.deepEqual(socketAddress(undefined, PAGE), { uri: "/consult", path: "/socket.io" });
});

test("a worker with its own origin is connected to by origin", () => {
  assert.deepEqual(socketAddress("https://w1.triad.example.test", PAGE), {
    uri: "https://w1.triad.example.test/consult",
    path: "/socket.io",
  });
  assert.deepEqual(socketAddress("http://127.0.0.1:8081", "http://127.0.0.1:8080"), {
    uri: "http://127.0.0.1:8081/consult",
    path: "/socket.io",
  });
});

test("a worker behind path routing keeps the page's origin and its path", () => {
  assert.deepEqual(socketAddress("https://triad.example.test/w/node-a-1/", PAGE), {
    uri: "/consult",
    path: "/w/node-a-1/socket.io",
  });
});

test("an address the page will not follow is refused", () => {
  for (const url of [
    "javascript:alert(1)",
    "data:text/html,x",
    "ftp://triad.example.test",
    "https://user:pass@triad.example.test",
    "https://triad.example.test/?next=x",
    "https://triad.example.test/#x",
    "not a url",
    "",
  ]) {
    assert.equal(socketAddress(url, PAGE), null, url);
  }
});

test("a wrong_worker answer is followed; a leaving worker or no placement reads the session again", () => {
  assert.equal(recovery({ code: "wrong_worker" }), "follow");
  assert.equal(recovery({ code: "worker_leaving" }), "relocate");
  assert.equal(recovery({ code: "placement_unavailable" }), "relocate");
});

test("a refusal is final: another try with the same token would only repeat it", () => {
  for (const code of ["token_revoked", "consult_ended", "removed", "token_expired"]) {
    assert.equal(recovery({ code }), "fatal");
  }
});

test("a worker that does not answer is retried, then looked up again in the session", () => {
  assert.equal(recovery({ failures: 1 }), "retry");
  assert.equal(recovery({ failures: FAILURES_BEFORE_LOCATING }), "relocate");
  assert.equal(recovery({ failures: FAILURES_BEFORE_LOCATING + 5 }), "relocate");
});

test("a session read refused for good stops the search; anything else is asked again", () => {
  assert.equal(sessionRefused({ status: 401, code: "token_revoked" }), true);
  assert.equal(sessionRefused({ status: 409, code: "consult_ended" }), true);
  assert.equal(sessionRefused({ status: 429, code: "rate_limited" }), false);
  assert.equal(sessionRefused({ status: 503, code: "placement_unavailable" }), false);
  assert.equal(sessionRefused({ status: 502, code: "http_502" }), false);
  assert.equal(sessionRefused({ status: 0, code: "network_error" }), false);
});

test("reads of the session in a row wait longer each time, up to a few seconds", () => {
  const waits = [0, 1, 2, 3, 4, 5, 50].map(delay);
  for (let i = 1; i < waits.length; i++) assert.ok(waits[i] >= waits[i - 1]);
  assert.ok(waits[0] > 0);
  assert.equal(waits.at(-1), waits.at(-2)); // capped
});

test("typed arrays go on the wire as the ArrayBuffer of exactly their bytes", async () => {
  const backing = new Uint8Array([9, 1, 2, 3, 9]);
  const view = backing.subarray(1, 4);
  const payload = { doc: "plan", update: view };
  const wire = wirePayload(payload);
  assert.ok(wire.update instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(wire.update)], [1, 2, 3]);
  assert.equal(wire.doc, "plan");
  assert.ok(payload.update === view, "the caller's payload is left as it was");
  const plain = { audio: true };
  assert.equal(wirePayload(plain), plain);
  assert.equal(wirePayload(undefined), undefined);
});

test("the browser's msgpack encoder writes a wire payload's bytes as bytes", async () => {
  // The files the bundle uses (notepack.io's "browser" field), not its Node.js build.
  const encode = (await import("notepack.io/browser/encode.js")).default;
  const decode = (await import("notepack.io/browser/decode.js")).default;
  const decoded = decode(encode(wirePayload({ update: new Uint8Array([1, 2, 3]) })));
  assert.ok(decoded.update instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(decoded.update)], [1, 2, 3]);
  // What the wire payload avoids: a typed array written as a map of its indices.
  const raw = decode(encode({ update: new Uint8Array([1, 2, 3]) }));
  assert.ok(!(raw.update instanceof ArrayBuffer) && !ArrayBuffer.isView(raw.update));
});

test("the browser's msgpack parser takes a disconnect packet only without data", async () => {
  const { Decoder } = (await import("socket.io-msgpack-parser")).default;
  const encode = (await import("notepack.io/browser/encode.js")).default;
  const decoded = [];
  const decoder = new Decoder();
  decoder.on("decoded", (packet) => decoded.push(packet));
  // (Under Node.js the parser decodes with notepack's Node build, which takes a Buffer.)
  const frame = (packet) => Buffer.from(encode(packet));
  decoder.add(frame({ type: 1, nsp: "/consult" })); // what frames.py sends
  assert.equal(decoded.length, 1);
  assert.throws(() => decoder.add(frame({ type: 1, nsp: "/consult", data: null })), /invalid payload/);
});
