// The shared notes channel (docs/notes.md, docs/protocol.md): one Y.Doc per document this role
// may read, kept in step with the server over `notes-sync` / `notes-update`, with presence over
// `notes-awareness` (y-protocols). The server speaks the Yjs v1 update format.
//
// - Sync: on every (re)entry to the room each document sends its state vector and applies what
//   the server has that it lacks; the server's state vector tells what it lacks of ours.
// - Local edits are coalesced for ~50 ms (Y.mergeUpdates), so a fast typist sends a few events a
//   second, not one per key. An edit stays in `unacked` until the server acknowledges it: it
//   is durable then (docs/notes.md). Edits made while offline, or whose acknowledgement the
//   drop swallowed, are sent again after the next sync (trimmed to what the server lacks).
// - The client never asks for `clinicians`: the documents exist by role (the server refuses it
//   anyway, but not even the request leaves this page).

import * as awarenessProtocol from "y-protocols/awareness";
import * as Y from "yjs";

import { isHost } from "./dom.js";

const FLUSH_MS = 50;
const AWARENESS_MS = 100;
const LOCAL = Symbol("local-edit"); // transaction origin of edits made on this page
const REMOTE = "server";

/** Which documents a role reads, and which it writes (docs/notes.md). */
export function documentsFor(role) {
  const host = isHost(role);
  return {
    read: host ? ["plan", "client", "clinicians"] : ["plan", "client"],
    write: host ? ["plan", "clinicians"] : ["client"],
  };
}

/** Refusals after which sending the same update again cannot help. */
const FINAL_REFUSALS = new Set([
  "forbidden_role",
  "notes_update_invalid",
  "notes_update_too_large",
  "notes_document_too_large",
  "notes_client_id_taken",
  "notes_document_unknown",
  "consult_ended",
  "validation_failed",
  "consent_withdrawn",
]);

class SharedDocument {
  constructor(name, writable) {
    this.name = name;
    this.writable = writable;
    this.ydoc = new Y.Doc();
    this.awareness = new awarenessProtocol.Awareness(this.ydoc);
    this.synced = false;
    /** Local updates not yet acknowledged by the server, oldest first. */
    this.unacked = [];
    /** Of those, the ones not yet sent on the current connection. */
    this.outbox = [];
    this.flushTimer = null;
    this.awarenessTimer = null;
    this.awarenessDirty = false;
  }
}

export class NotesChannel {
  /**
   * @param {object} options
   * @param {(event: string, payload: object) => Promise<object>} options.call signaling.call
   * @param {(event: string, handler: Function) => void} options.on signaling.on
   * @param {{participant_id: string, role: string, name: string}} options.you
   * @param {(code: string, during: string) => void} options.onProblem
   */
  constructor({ call, on, you, onProblem }) {
    this._call = call;
    this._onProblem = onProblem;
    this.you = you;
    const { read, write } = documentsFor(you.role);
    /** @type {Map<string, SharedDocument>} */
    this.docs = new Map(read.map((name) => [name, new SharedDocument(name, write.includes(name))]));
    this.online = false;
    this.closed = false;
    /** Bumped on every (re)connection: acknowledgements of an older connection are ignored. */
    this._epoch = 0;
    this.counters = { updatesSent: 0, updatesReceived: 0, localEdits: 0, awarenessSent: 0 };
    this._listeners = new Set();
    /** awareness clientID -> participant_id, from the messages that carried it. */
    this._clientOwners = new Map();

    for (const doc of this.docs.values()) {
      doc.ydoc.on("update", (update, origin) => {
        if (origin === REMOTE) return;
        this._queue(doc, update);
      });
      doc.awareness.on("update", ({ added, updated, removed }, origin) => {
        if (origin !== "local") return;
        if ([...added, ...updated, ...removed].includes(doc.ydoc.clientID)) this._queueAwareness(doc);
      });
      // Only the others' presence is shown: this page's own caret moves (at every keystroke)
      // are sent, not announced to the panel.
      doc.awareness.on("change", (_, origin) => {
        if (origin !== "local") this._changed(doc.name, "awareness");
      });
    }
    on("notes-update", (message) => this._remoteUpdate(message));
    on("notes-awareness", (message) => this._remoteAwareness(message));
  }

  /** The Y.Doc of `name`, or null when this role may not read it. */
  doc(name) {
    return this.docs.get(name)?.ydoc ?? null;
  }

  awareness(name) {
    return this.docs.get(name)?.awareness ?? null;
  }

  writable(name) {
    return Boolean(this.docs.get(name)?.writable);
  }

  /** Listen for "synced", "offline" and "awareness" changes: handler(docName, what). */
  subscribe(handler) {
    this._listeners.add(handler);
    return () => this._listeners.delete(handler);
  }

  /** Say where this person is in `doc` (the section and field, a cursor), or null to clear. */
  setPresence(docName, presence) {
    const doc = this.docs.get(docName);
    if (!doc || this.closed) return;
    const user = { participant_id: this.you.participant_id, name: this.you.name, role: this.you.role };
    doc.awareness.setLocalState(presence ? { user, ...presence } : { user });
  }

  /** Remote presence in `doc`: [{participant_id, name, role, section, field, cursor}]. */
  presence(docName) {
    const doc = this.docs.get(docName);
    if (!doc) return [];
    const out = [];
    doc.awareness.getStates().forEach((state, clientId) => {
      if (clientId === doc.ydoc.clientID || !state?.user) return;
      out.push({ clientId, ...state.user, section: state.section ?? null, field: state.field ?? null, cursor: state.cursor ?? null });
    });
    return out;
  }

  /** Stop writing `name` (the server refuses it now): what is queued for it is dropped. */
  closeForWriting(name) {
    const doc = this.docs.get(name);
    if (!doc) return;
    doc.writable = false;
    doc.unacked = [];
    doc.outbox = [];
    clearTimeout(doc.flushTimer);
    doc.flushTimer = null;
    if (doc.awareness.getLocalState()?.section) this.setPresence(name, {});
    this._changed(name, "acked");
  }

  // -- connection ---------------------------------------------------------------------------------

  /** In the room (again): sync every document, then send what the server lacks of ours. */
  async connect() {
    if (this.closed) return;
    const epoch = ++this._epoch;
    this.online = true;
    await Promise.all([...this.docs.values()].map((doc) => this._sync(doc, epoch)));
  }

  /** The socket dropped: keep editing; what is not acknowledged is sent after the next sync. */
  disconnect() {
    this._epoch++;
    this.online = false;
    for (const doc of this.docs.values()) {
      doc.synced = false;
      doc.outbox = [...doc.unacked];
      this._changed(doc.name, "offline");
    }
  }

  async _sync(doc, epoch) {
    doc.synced = false;
    let reply;
    try {
      reply = await this._call("notes-sync", {
        doc: doc.name,
        state_vector: Y.encodeStateVector(doc.ydoc),
      });
    } catch (error) {
      if (epoch === this._epoch) this._onProblem(error.code, "notes-sync");
      return;
    }
    if (epoch !== this._epoch || this.closed) return;
    Y.applyUpdate(doc.ydoc, toBytes(reply.update), REMOTE);
    doc.synced = true;
    // Everything not acknowledged goes again, trimmed to what the server's state vector lacks
    // (a deletion carries no clock, so the delete set always goes; applying it twice is a no-op).
    if (doc.writable && doc.unacked.length) {
      const merged = Y.mergeUpdates(doc.unacked);
      const missing = Y.diffUpdate(merged, toBytes(reply.state_vector));
      doc.unacked = [missing];
      doc.outbox = [missing];
      this._flush(doc);
    }
    // Announce ourselves to the others (awareness is not stored: a new connection starts bare).
    if (doc.awareness.getLocalState() !== null) this._queueAwareness(doc);
    this._changed(doc.name, "synced");
  }

  // -- local edits ----------------------------------------------------------------------------------

  _queue(doc, update) {
    if (!doc.writable || this.closed) return; // a reader's document changes only from the server
    this.counters.localEdits++;
    doc.unacked.push(update);
    doc.outbox.push(update);
    this._changed(doc.name, "edited");
    if (!doc.flushTimer) doc.flushTimer = setTimeout(() => this._flush(doc), FLUSH_MS);
  }

  _flush(doc) {
    clearTimeout(doc.flushTimer);
    doc.flushTimer = null;
    if (!this.online || !doc.synced || doc.outbox.length === 0 || this.closed) return;
    const batch = doc.outbox.length === 1 ? doc.outbox[0] : Y.mergeUpdates(doc.outbox);
    const parts = doc.outbox;
    doc.outbox = [];
    const epoch = this._epoch;
    this.counters.updatesSent++;
    this._call("notes-update", { doc: doc.name, update: batch }).then(
      () => {
        if (epoch !== this._epoch) return; // superseded by a resync, which resends it
        doc.unacked = doc.unacked.filter((u) => !parts.includes(u));
        this._changed(doc.name, "acked");
      },
      (error) => {
        if (epoch !== this._epoch) return;
        if (FINAL_REFUSALS.has(error.code)) {
          doc.unacked = doc.unacked.filter((u) => !parts.includes(u));
          this._onProblem(error.code, "notes-update");
        } else {
          // A timeout or a rate limit: try again with whatever came since.
          doc.outbox = [...parts, ...doc.outbox];
          if (!doc.flushTimer) doc.flushTimer = setTimeout(() => this._flush(doc), 500);
        }
      },
    );
  }

  /** Send what is queued now and wait (at most `ms`) for the acknowledgements: before leaving. */
  async flushNow(ms = 2000) {
    if (!this.online || this.closed) return;
    for (const doc of this.docs.values()) this._flush(doc);
    if (this.pending === 0) return;
    await new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const unsubscribe = this.subscribe(() => {
        if (this.pending === 0) done();
      });
      function done() {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      }
    });
  }

  /** Local updates not acknowledged yet, over all documents (the test hook shows it). */
  get pending() {
    let n = 0;
    for (const doc of this.docs.values()) n += doc.unacked.length;
    return n;
  }

  // -- awareness ------------------------------------------------------------------------------------

  _queueAwareness(doc) {
    doc.awarenessDirty = true;
    if (doc.awarenessTimer) return;
    doc.awarenessTimer = setTimeout(() => {
      doc.awarenessTimer = null;
      if (!doc.awarenessDirty || !this.online || !doc.synced || this.closed) return;
      doc.awarenessDirty = false;
      const update = awarenessProtocol.encodeAwarenessUpdate(doc.awareness, [doc.ydoc.clientID]);
      this.counters.awarenessSent++;
      this._call("notes-awareness", { doc: doc.name, update }).catch(() => {
        // Presence is best effort: the next change (or the 15 s renewal) sends it again.
      });
    }, AWARENESS_MS);
  }

  // -- from the server ------------------------------------------------------------------------------

  _remoteUpdate({ doc: name, update } = {}) {
    const doc = this.docs.get(name);
    if (!doc || this.closed) return;
    this.counters.updatesReceived++;
    Y.applyUpdate(doc.ydoc, toBytes(update), REMOTE);
  }

  _remoteAwareness({ doc: name, update, from } = {}) {
    const doc = this.docs.get(name);
    if (!doc || this.closed) return;
    const bytes = toBytes(update);
    const before = new Set(doc.awareness.getStates().keys());
    awarenessProtocol.applyAwarenessUpdate(doc.awareness, bytes, REMOTE);
    let newcomer = false;
    for (const clientId of doc.awareness.getStates().keys()) {
      if (!before.has(clientId) && clientId !== doc.ydoc.clientID) {
        this._clientOwners.set(clientId, from);
        newcomer = true;
      }
    }
    // Someone new (or back): tell them where we are now rather than at the next 15 s renewal.
    if (newcomer && doc.awareness.getLocalState() !== null) this._queueAwareness(doc);
  }

  /** Someone left the room: their cursors go at once rather than after the 30 s timeout. */
  forget(participantId) {
    for (const doc of this.docs.values()) {
      const gone = [...doc.awareness.getStates().keys()].filter(
        (clientId) =>
          clientId !== doc.ydoc.clientID &&
          (this._clientOwners.get(clientId) === participantId ||
            doc.awareness.getStates().get(clientId)?.user?.participant_id === participantId),
      );
      if (gone.length) awarenessProtocol.removeAwarenessStates(doc.awareness, gone, REMOTE);
    }
  }

  _changed(docName, what) {
    for (const handler of this._listeners) handler(docName, what);
  }

  /** For the test hook: sync state, counters and each document as JSON. */
  snapshot() {
    const docs = {};
    for (const [name, doc] of this.docs) {
      docs[name] = { synced: doc.synced, writable: doc.writable, unacked: doc.unacked.length, content: doc.ydoc.toJSON() };
    }
    return { online: this.online, pending: this.pending, counters: { ...this.counters }, docs };
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.online = false;
    for (const doc of this.docs.values()) {
      clearTimeout(doc.flushTimer);
      clearTimeout(doc.awarenessTimer);
      doc.ydoc.destroy(); // destroys its awareness (and the awareness's renewal timer) too
    }
    this._listeners.clear();
  }
}

/** Socket.IO hands binary attachments over as ArrayBuffer (or a view): Yjs wants Uint8Array. */
function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(0);
}
