// A saved brief reaches an open Brief tab: `brief-updated` (docs/protocol.md) has the room's
// notes read `GET .../session/brief` again. In Node with a minimal stand-in for the few DOM
// calls the tab makes (createElement, append, replaceChildren); the Chromium side is
// tests/browser/test_care_panel.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { renderBrief } from "../src/carepanel.js";
import { RoomNotes } from "../src/roomnotes.js";

class FakeElement {
  constructor(tag) {
    this.tag = tag;
    this.className = "";
    this.children = [];
    this.dataset = {};
  }

  append(...children) {
    this.children.push(...children);
  }

  replaceChildren(...children) {
    this.children = children;
  }

  get textContent() {
    return this.children.map((c) => (typeof c === "string" ? c : c.textContent)).join(" ");
  }
}

globalThis.document = { createElement: (tag) => new FakeElement(tag) };

/** The room's socket as RoomNotes uses it: handlers by event, and a way to deliver one. */
class FakeSignaling {
  constructor() {
    this.handlers = new Map();
  }

  on(event, handler) {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), handler]);
    return this;
  }

  deliver(event, payload = {}) {
    for (const handler of this.handlers.get(event) ?? []) handler(payload);
  }
}

/** A brief the test changes between reads, counting them. */
function briefApi(question) {
  const api = {
    question,
    reads: 0,
    brief: async () => {
      api.reads++;
      return { question: api.question };
    },
  };
  return api;
}

function roomNotes(signaling, api) {
  return new RoomNotes({ signaling, api, care: () => ({ consent: null }), report: () => {} });
}

/** A panel with the Brief and History tabs, as NotesPanel builds them (`loaded` once shown). */
function panelWith(loaded) {
  const tab = (id) => Object.assign(new FakeElement("section"), { dataset: { tab: id, ...(loaded ? { loaded: "true" } : {}) } });
  return { panels: new Map([["brief", tab("brief")], ["history", tab("history")]]) };
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

test("an open Brief tab reads the brief again when it is saved", async () => {
  const signaling = new FakeSignaling();
  const api = briefApi("Medication alongside CBT-I?");
  const notes = roomNotes(signaling, api);
  notes.panel = panelWith(true);
  const brief = notes.panel.panels.get("brief");
  await renderBrief(brief, api);
  assert.match(brief.textContent, /Medication alongside CBT-I\?/);

  api.question = "Sleep restriction first?";
  signaling.deliver("brief-updated");
  await settled();
  assert.equal(api.reads, 2);
  assert.equal(brief.dataset.state, "shown");
  assert.match(brief.textContent, /Sleep restriction first\?/);
  assert.doesNotMatch(brief.textContent, /CBT-I/);
  // The History tab is not the brief's: left as it was.
  assert.deepEqual(notes.panel.panels.get("history").children, []);
});

test("a Brief tab never opened, or no notes panel yet, reads nothing", async () => {
  const signaling = new FakeSignaling();
  const api = briefApi("Medication alongside CBT-I?");
  const notes = roomNotes(signaling, api);
  signaling.deliver("brief-updated"); // before the first admission: no panel
  notes.panel = panelWith(false);
  signaling.deliver("brief-updated");
  await settled();
  assert.equal(api.reads, 0); // read when the tab is opened
});

test("of two reads in flight, the newer fills the tab whatever order they answer in", async () => {
  const answers = [];
  const api = { brief: () => new Promise((resolve) => answers.push(resolve)) };
  const tab = new FakeElement("section");
  const older = renderBrief(tab, api);
  const newer = renderBrief(tab, api);
  answers[1]({ question: "The newer brief" });
  await newer;
  answers[0]({ question: "The older brief" });
  await older;
  assert.equal(tab.dataset.state, "shown");
  assert.match(tab.textContent, /The newer brief/);
  assert.doesNotMatch(tab.textContent, /The older brief/);
});
