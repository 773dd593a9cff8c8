// Updates made by the real Yjs (web/node_modules), the way the browser client makes them: two
// people typing in one document, with emoji, formatting, embeds, lists of maps, replaced map
// fields, deletions, batches merged with Y.mergeUpdates, a resync trimmed with Y.diffUpdate, and
// y-protocols awareness. Run with the web directory as the working directory (module lookup),
// source on stdin; prints JSON: {updates: [[doc, base64]...], awareness: [base64...]}.
import * as Y from "yjs";
import * as awarenessProtocol from "y-protocols/awareness";

const out = { updates: [], awareness: [] };
const b64 = (u) => Buffer.from(u).toString("base64");
const send = (doc, u) => out.updates.push([doc, b64(u)]);

function pair(name) {
  const a = new Y.Doc();
  const b = new Y.Doc();
  return { name, a, b };
}

// Edit on `from` and return its update, then let `to` receive it (as the fan-out does).
function edit(p, from, to, change) {
  const before = Y.encodeStateVector(from);
  from.transact(() => change(from));
  const update = Y.encodeStateAsUpdate(from, before);
  if (to) Y.applyUpdate(to, update);
  send(p.name, update);
  return update;
}

// --- plan: two clinicians ---
const plan = pair("plan");
const { a: t, b: p } = plan;
edit(plan, t, p, (d) => d.getText("summary").insert(0, "Low mood since spring. "));
// Typing one key at a time, batched like the client (Y.mergeUpdates every 50 ms).
{
  const batch = [];
  const handler = (u) => batch.push(u);
  t.on("update", handler);
  for (const ch of "Sleep 😀 poor, appetite ok. ") {
    const s = t.getText("summary");
    s.insert(s.length, ch);
  }
  t.off("update", handler);
  const merged = Y.mergeUpdates(batch);
  Y.applyUpdate(p, merged);
  send("plan", merged);
}
edit(plan, p, t, (d) => d.getText("summary").insert(4, "ish"));
edit(plan, t, p, (d) => d.getText("summary").delete(0, 4));
edit(plan, t, p, (d) => d.getText("summary").format(0, 8, { bold: true }));
edit(plan, p, t, (d) => d.getText("summary").insertEmbed(3, { image: "chart" }));
edit(plan, t, p, (d) => {
  const m = new Y.Map();
  m.set("name", "Major depressive disorder");
  m.set("icd10", "F32.1");
  m.set("status", "provisional");
  d.getArray("diagnoses").push([m]);
});
edit(plan, p, t, (d) => d.getArray("diagnoses").get(0).set("status", "confirmed"));
edit(plan, p, t, (d) => {
  const m = new Y.Map();
  m.set("name", "Sertraline");
  const dose = new Y.Text();
  m.set("dose", dose);
  dose.insert(0, "50 mg");
  m.set("action", "start");
  d.getArray("medications").push([m]);
});
edit(plan, t, p, (d) => d.getArray("medications").get(0).get("dose").insert(0, "up to "));
edit(plan, t, p, (d) => d.getArray("therapy_goals").push(["walk daily", "sleep diary 🌙"]));
edit(plan, p, t, (d) => d.getArray("therapy_goals").delete(0, 1));
edit(plan, t, p, (d) => d.getMap("follow_up").set("date", "2026-12-15"));
edit(plan, p, t, (d) => d.getMap("follow_up").set("date", "2027-01-05"));
edit(plan, t, p, (d) => d.getArray("monitoring").push([new Y.Map([["measure", "PHQ-9"]])]));
edit(plan, t, p, (d) => d.getText("safety").insert(0, "No current risk; plan shared."));
// Concurrent edits at one place, then both exchanged.
{
  const ut = Y.encodeStateVector(t);
  const up = Y.encodeStateVector(p);
  t.getText("therapy_focus").insert(0, "CBT-I");
  p.getText("therapy_focus").insert(0, "Behavioural activation");
  const ft = Y.encodeStateAsUpdate(t, ut);
  const fp = Y.encodeStateAsUpdate(p, up);
  Y.applyUpdate(p, ft);
  Y.applyUpdate(t, fp);
  send("plan", ft);
  send("plan", fp);
}
// A resync: everything unacknowledged merged, trimmed to what the server lacks (diffUpdate).
{
  const serverState = Y.encodeStateVector(t);
  const pending = [];
  const handler = (u) => pending.push(u);
  t.on("update", handler);
  t.getText("summary").insert(0, "Reviewed: ");
  t.getText("summary").delete(2, 3);
  t.getArray("diagnoses").get(0).set("note", "since March");
  t.off("update", handler);
  const missing = Y.diffUpdate(Y.mergeUpdates(pending), serverState);
  Y.applyUpdate(p, missing);
  send("plan", missing);
}
out.planText = t.getText("summary").toString();

// --- client: questions and goals ---
const client = pair("client");
edit(client, client.a, null, (d) => d.getArray("questions").push(["Can I drink coffee? ☕"]));
edit(client, client.a, null, (d) => {
  const g = new Y.Map();
  g.set("text", new Y.Text("sleep by 11"));
  d.getArray("goals").push([g]);
});
edit(client, client.a, null, (d) => d.getArray("questions").delete(0, 1));

// --- clinicians ---
const clinicians = pair("clinicians");
edit(clinicians, clinicians.a, null, (d) => d.getText("notes").insert(0, "Consider CBT-I 🛏"));

// --- awareness, as notes.js sends it ---
const aw = new awarenessProtocol.Awareness(t);
aw.setLocalState({ user: { name: "Sam", participant_id: "p_1" }, section: "summary" });
const cursor = Y.createRelativePositionFromTypeIndex(t.getText("summary"), 3);
aw.setLocalStateField("cursor", { anchor: Y.relativePositionToJSON(cursor) });
out.awareness.push(b64(awarenessProtocol.encodeAwarenessUpdate(aw, [t.clientID])));
aw.setLocalState(null);
out.awareness.push(b64(awarenessProtocol.encodeAwarenessUpdate(aw, [t.clientID])));

process.stdout.write(JSON.stringify(out));
process.exit(0);
