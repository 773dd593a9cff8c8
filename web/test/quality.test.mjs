// The connection-quality rating's thresholds.
import assert from "node:assert/strict";
import { test } from "node:test";

import { rate } from "../src/quality.js";

test("loss, round trip and jitter each can lower the rating", () => {
  assert.equal(rate({ loss: 0, rtt: 0.02, jitter: 0.005 }), "good");
  assert.equal(rate({ loss: 0.03 }), "fair");
  assert.equal(rate({ rtt: 0.4 }), "fair");
  assert.equal(rate({ jitter: 0.05 }), "fair");
  assert.equal(rate({ loss: 0.1 }), "poor");
  assert.equal(rate({ rtt: 0.9 }), "poor");
  assert.equal(rate({ loss: 0.01, jitter: 0.2 }), "poor");
});
