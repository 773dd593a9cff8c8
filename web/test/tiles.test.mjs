// The order of the tiles in a room of up to five: the others by role (the optional seats after
// the clinicians, a role the page does not know last of them), yourself after everyone.
import assert from "node:assert/strict";
import { test } from "node:test";

import { tileOrder } from "../src/tiles.js";

test("a room of five shows the others by role and yourself last", () => {
  const tiles = [
    { role: "interpreter", self: false },
    { role: "psychiatrist", self: true },
    { role: "guardian", self: false },
    { role: "client", self: false },
    { role: "therapist", self: false },
  ];
  assert.deepEqual(
    [...tiles].sort(tileOrder).map((t) => (t.self ? `${t.role} (you)` : t.role)),
    ["client", "therapist", "guardian", "interpreter", "psychiatrist (you)"],
  );
});

test("a role the page does not know comes after the known ones, never before yourself", () => {
  for (const role of ["admin", "__proto__", "constructor", undefined]) {
    const tiles = [
      { role: "therapist", self: true },
      { role, self: false },
      { role: "interpreter", self: false },
    ];
    assert.deepEqual(
      [...tiles].sort(tileOrder).map((t) => [t.role, t.self]),
      [
        ["interpreter", false],
        [role, false],
        ["therapist", true],
      ],
    );
  }
});
