// Who the page offers the Share screen button to, and which of a participant's tracks a line of
// the offer's track map is (the server decides who shares; these only lay the page out).
import assert from "node:assert/strict";
import { test } from "node:test";

import { slotOf } from "../src/peer.js";
import { mayShare } from "../src/screenshare.js";

test("the clinicians may always ask to share, the client once allowed, the others never", () => {
  for (const allowed of [false, true]) {
    assert.equal(mayShare("therapist", allowed), true);
    assert.equal(mayShare("psychiatrist", allowed), true);
    assert.equal(mayShare("client", allowed), allowed);
    assert.equal(mayShare("guardian", allowed), false);
    assert.equal(mayShare("interpreter", allowed), false);
  }
  for (const role of ["__proto__", "constructor", undefined, null, "admin"]) {
    assert.equal(mayShare(role, true), false);
  }
  assert.equal(mayShare("client", "true"), false); // only the server's boolean counts
});

test("a shared screen is its own slot beside the camera; audio and camera by kind", () => {
  assert.equal(slotOf({ kind: "video", source: "screen" }), "screen");
  assert.equal(slotOf({ kind: "video", source: "camera" }), "video");
  assert.equal(slotOf({ kind: "audio", source: "microphone" }), "audio");
  assert.equal(slotOf({ kind: "video" }), "video"); // a server before screen share
  assert.equal(slotOf(null), undefined);
});
