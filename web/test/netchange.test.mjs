// When the page asks for a new peer connection after a network change or an ICE failure.
import assert from "node:assert/strict";
import { test } from "node:test";

import { NetworkWatch } from "../src/netchange.js";

function watch() {
  const restarts = [];
  const timers = new Map();
  let next = 1;
  const w = new NetworkWatch({
    restart: (reason) => restarts.push(reason),
    graceMs: 3000,
    setTimer: (fn, ms) => {
      timers.set(next, { fn, ms });
      return next++;
    },
    clearTimer: (handle) => timers.delete(handle),
  });
  const fire = () => {
    const pending = [...timers.values()];
    timers.clear();
    for (const { fn } of pending) fn();
  };
  return { w, restarts, timers, fire };
}

test("a failed peer connection is replaced at once", () => {
  const { w, restarts } = watch();
  w.connectionState("connected");
  w.connectionState("failed");
  assert.deepEqual(restarts, ["failed"]);
});

test("disconnected gets a grace and is replaced only if it does not come back", () => {
  const { w, restarts, timers, fire } = watch();
  w.connectionState("disconnected");
  w.connectionState("disconnected"); // one timer, not two
  assert.equal(timers.size, 1);
  assert.equal([...timers.values()][0].ms, 3000);
  w.connectionState("connected");
  assert.equal(timers.size, 0);
  fire();
  assert.deepEqual(restarts, []);

  w.connectionState("disconnected");
  fire();
  assert.deepEqual(restarts, ["disconnected"]);
});

test("coming back online after offline restarts; online alone does not", () => {
  const { w, restarts, timers } = watch();
  w.online();
  assert.deepEqual(restarts, []);
  w.connectionState("disconnected");
  w.offline(); // nothing can connect while offline: no restart until the network is back
  assert.equal(timers.size, 0);
  w.connectionState("failed");
  assert.deepEqual(restarts, []);
  w.online();
  assert.deepEqual(restarts, ["network_changed"]);
});

test("close cancels a pending restart", () => {
  const { w, restarts, timers } = watch();
  w.connectionState("disconnected");
  w.close();
  assert.equal(timers.size, 0);
  assert.deepEqual(restarts, []);
});

test("a rejoin (the socket came back first) makes the later online ask nothing", () => {
  const { w, restarts, timers } = watch();
  w.connectionState("disconnected");
  w.offline();
  w.rejoined();
  w.online();
  assert.equal(timers.size, 0);
  assert.deepEqual(restarts, []);
});
