// Where the room's socket connects: the page's own server, or the consult's worker named by
// the session or a `wrong_worker` answer (docs/protocol.md, "Several workers").
import assert from "node:assert/strict";
import { test } from "node:test";

import { socketAddress } from "../src/signaling.js";

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
