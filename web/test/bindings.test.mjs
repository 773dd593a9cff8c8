// The pure parts of the notes bindings, with the real Yjs: the minimal diff, where a caret
// moves under someone else's edit, and two people's diffs merging into one text.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as Y from "yjs";

import { shiftPosition, textDiff } from "../src/bindings.js";

function apply(ytext, before, after) {
  const change = textDiff(before, after);
  if (!change) return;
  ytext.doc.transact(() => {
    if (change.remove) ytext.delete(change.index, change.remove);
    if (change.insert) ytext.insert(change.index, change.insert);
  });
}

test("textDiff finds the one changed span", () => {
  assert.equal(textDiff("same", "same"), null);
  assert.deepEqual(textDiff("abc", "abXc"), { index: 2, remove: 0, insert: "X" });
  assert.deepEqual(textDiff("abXc", "abc"), { index: 2, remove: 1, insert: "" });
  assert.deepEqual(textDiff("hello world", "hello there world"), { index: 6, remove: 0, insert: "there " });
  assert.deepEqual(textDiff("aaa", "aaaa"), { index: 3, remove: 0, insert: "a" });
  assert.deepEqual(textDiff("", "typed"), { index: 0, remove: 0, insert: "typed" });
});

test("textDiff never splits a surrogate pair", () => {
  // Two emoji that share their high surrogate: the diff must take the whole pair.
  const change = textDiff("a😀b", "a😁b");
  assert.deepEqual(change, { index: 1, remove: 2, insert: "😁" });
  const ytext = new Y.Doc().getText("t");
  ytext.insert(0, "a😀b");
  apply(ytext, "a😀b", "a😁b");
  assert.equal(ytext.toString(), "a😁b");
});

test("shiftPosition moves a caret by the edits before it only", () => {
  assert.equal(shiftPosition(5, [{ insert: "abc" }]), 8); // typed before the caret
  assert.equal(shiftPosition(5, [{ retain: 5 }, { insert: "abc" }]), 5); // at the caret: stays
  assert.equal(shiftPosition(5, [{ retain: 7 }, { insert: "abc" }]), 5); // after it
  assert.equal(shiftPosition(5, [{ retain: 1 }, { delete: 2 }]), 3);
  assert.equal(shiftPosition(5, [{ retain: 3 }, { delete: 10 }]), 3); // the caret's text went
  assert.equal(shiftPosition(5, [{ retain: 2 }, { delete: 1 }, { insert: "xy" }]), 6);
});

test("two people typing into one text converge, each run whole", () => {
  const a = new Y.Doc();
  const b = new Y.Doc();
  const ta = a.getText("summary");
  const tb = b.getText("summary");
  let shownA = "";
  let shownB = "";
  for (const [ca, cb] of [..."Low mood"].map((c, i) => [c, "No psychosis"[i]])) {
    apply(ta, shownA, shownA + ca);
    shownA += ca;
    if (cb) {
      apply(tb, shownB, shownB + cb);
      shownB += cb;
    }
  }
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)));
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)));
  assert.equal(ta.toString(), tb.toString());
  assert.ok(ta.toString().includes("Low mood"));
  assert.ok(ta.toString().includes("No psych")); // the first eight characters, as typed
});
