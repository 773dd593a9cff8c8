// Role words on tiles, presence chips and prompts: every seat a consult can have is named.
import assert from "node:assert/strict";
import { test } from "node:test";

import { isHost, roleTitle, roleWords } from "../src/dom.js";

test("each role of a consult, the optional seats included, has its own words", () => {
  const roles = ["client", "therapist", "psychiatrist", "guardian", "interpreter"];
  assert.deepEqual(roles.map(roleWords), roles);
  assert.equal(roleTitle("guardian"), "Guardian");
  assert.equal(roleTitle("interpreter"), "Interpreter");
});

test("an unknown or hostile role name is never shown as given", () => {
  for (const role of ["admin", "<img src=x>", "", undefined, "__proto__", "constructor"]) {
    assert.equal(roleWords(role), "participant");
  }
});

test("only the clinicians host", () => {
  assert.deepEqual(
    ["client", "therapist", "psychiatrist", "guardian", "interpreter"].filter(isHost),
    ["therapist", "psychiatrist"],
  );
});
