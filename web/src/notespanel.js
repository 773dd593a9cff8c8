// The notes panel beside the video: tabs for the plan, the client's questions and goals, the
// clinicians' private notes (clinicians only), and the clinicians' care tabs (brief, history;
// carepanel.js). Each tab's sections come from sections.js; who is editing which section comes
// from awareness and shows as a chip on the section (and a caret in text sections).

import { el, isHost, roleWords } from "./dom.js";
import { CLIENT_SECTIONS, CLINICIANS_SECTIONS, PLAN_SECTIONS, sectionView } from "./sections.js";

function tabsFor(role) {
  const host = isHost(role);
  const tabs = [
    { id: "plan", label: "Plan", doc: "plan", sections: PLAN_SECTIONS },
    { id: "client", label: host ? "Client" : "Your questions & goals", doc: "client", sections: CLIENT_SECTIONS },
  ];
  if (host) {
    tabs.push(
      { id: "clinicians", label: "Clinicians", doc: "clinicians", sections: CLINICIANS_SECTIONS, private: true },
      { id: "brief", label: "Brief" },
      { id: "history", label: "History" },
    );
  }
  return tabs;
}

const INTRO = {
  plan: {
    writer: "The treatment plan you are writing together. The client sees it as you type.",
    reader: "Your clinicians write your treatment plan here during the consult. It updates as they type.",
  },
  client: {
    writer: "Write down what you'd like to ask and what you'd like to work on. Your clinicians see it.",
    reader: "What the client wants to ask and to work on, written by them.",
  },
  clinicians: {
    writer: "Only the therapist and the psychiatrist see these notes. They are not part of the plan.",
  },
};

export class NotesPanel {
  /**
   * @param {object} options
   * @param {import("./notes.js").NotesChannel} options.notes
   * @param {{participant_id: string, role: string}} options.you
   * @param {(tab: {id: string}, panel: HTMLElement) => void} [options.renderCareTab] brief, history
   */
  constructor({ notes, you, renderCareTab }) {
    this.notes = notes;
    this.you = you;
    this.tabs = tabsFor(you.role);
    this.views = []; // {doc, key, chips, view, node, carets: the others' carets shown in it}
    this.buttons = new Map();
    this.panels = new Map();

    const tablist = el("div", "notes-tabs");
    tablist.setAttribute("role", "tablist");
    tablist.setAttribute("aria-label", "Notes");
    this.status = el("p", "notes-status");
    this.status.setAttribute("role", "status");
    const heading = el("h2", "notes-heading", "Notes");
    heading.id = "notes-heading";
    this.root = el("section", "notes-panel", el("div", "notes-head", heading, this.status), tablist);
    this.root.id = "notes-panel";
    this.root.setAttribute("aria-labelledby", "notes-heading");

    for (const tab of this.tabs) {
      const tabButton = el("button", "notes-tab", tab.label);
      tabButton.type = "button";
      tabButton.id = `notes-tab-${tab.id}`;
      tabButton.setAttribute("role", "tab");
      tabButton.setAttribute("aria-controls", `notes-panel-${tab.id}`);
      tabButton.dataset.tab = tab.id;
      if (tab.private) {
        tabButton.dataset.private = "true";
        tabButton.title = "Private: only the therapist and the psychiatrist see this tab";
      }
      tabButton.addEventListener("click", () => this.select(tab.id));
      tabButton.addEventListener("keydown", (event) => this._arrowKeys(event, tab.id));
      tablist.append(tabButton);
      const panel = el("div", "notes-tabpanel");
      panel.id = `notes-panel-${tab.id}`;
      panel.dataset.tab = tab.id;
      panel.setAttribute("role", "tabpanel");
      panel.setAttribute("aria-labelledby", tabButton.id);
      this.root.append(panel);
      this.buttons.set(tab.id, tabButton);
      this.panels.set(tab.id, panel);
      if (tab.doc) this._renderDocTab(tab, panel);
    }
    // The care tabs load when first opened (and are reloaded by the room when news arrives).
    this._renderCareTab = renderCareTab;
    this.select("plan");
    this._unsubscribe = notes.subscribe((doc, what) => {
      if (what === "awareness" || what === "synced") this._renderPresence(doc);
      this._renderStatus();
    });
    this._renderStatus();
  }

  select(id) {
    const panel = this.panels.get(id);
    const tab = this.tabs.find((t) => t.id === id);
    if (!tab.doc && !panel.dataset.loaded) {
      panel.dataset.loaded = "true";
      this._renderCareTab?.(tab, panel);
    }
    for (const [tabId, tabButton] of this.buttons) {
      const on = tabId === id;
      tabButton.setAttribute("aria-selected", on ? "true" : "false");
      tabButton.tabIndex = on ? 0 : -1;
      this.panels.get(tabId).hidden = !on;
    }
    this.root.dataset.tab = id;
  }

  _arrowKeys(event, id) {
    const ids = this.tabs.map((t) => t.id);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = ids[(ids.indexOf(id) + step + ids.length) % ids.length];
    this.select(next);
    this.buttons.get(next).focus();
    event.preventDefault();
  }

  _renderDocTab(tab, panel) {
    const ydoc = this.notes.doc(tab.doc);
    const writable = this.notes.writable(tab.doc);
    const intro = INTRO[tab.doc]?.[writable ? "writer" : "reader"];
    if (intro) panel.append(el("p", "notes-intro", intro));
    for (const section of tab.sections) {
      const presence = (field, cursor) =>
        this.notes.setPresence(tab.doc, field === null ? {} : { section: section.key, field, cursor });
      const view = sectionView(ydoc, section, { writable, presence });
      const chips = el("ul", "presence");
      chips.setAttribute("aria-label", `Editing ${section.title}`);
      const title = el("h3", "notes-section-title", section.title);
      const node = el("section", "notes-section", el("div", "notes-section-head", title, chips), view.root);
      node.dataset.doc = tab.doc;
      node.dataset.section = section.key;
      node.dataset.writable = writable ? "true" : "false";
      panel.append(node);
      this.views.push({ doc: tab.doc, key: section.key, chips, view, node });
    }
    // Carets move when the text changes under them (who is editing what does not).
    this._observed ||= new Set();
    if (!this._observed.has(tab.doc)) {
      this._observed.add(tab.doc);
      ydoc.on("afterTransaction", () => this._renderCarets(tab.doc));
    }
  }

  /** A document this person may no longer change (the server would refuse it): its tab
   * becomes the live read-only view, with `note` saying why. */
  closeDocument(docName, note) {
    const tab = this.tabs.find((t) => t.doc === docName);
    if (!tab || this.panels.get(tab.id).dataset.closed) return;
    this.notes.closeForWriting(docName);
    for (const entry of this.views.filter((v) => v.doc === docName)) entry.view.destroy();
    this.views = this.views.filter((v) => v.doc !== docName);
    const panel = this.panels.get(tab.id);
    panel.dataset.closed = "true";
    panel.replaceChildren(el("p", "care-note notes-closed", note));
    this._renderDocTab(tab, panel);
    this._renderPresence(docName);
  }

  _renderPresence(doc) {
    const others = this.notes.presence(doc);
    for (const entry of this.views) {
      if (entry.doc !== doc) continue;
      const here = others.filter((p) => p.section === entry.key);
      entry.carets = here.filter((p) => p.cursor);
      entry.chips.replaceChildren(
        ...here.map((p) => {
          const chip = el("li", "presence-chip", `${p.name} (${roleWords(p.role)}) is editing`);
          chip.dataset.role = p.role;
          chip.dataset.participantId = p.participant_id;
          return chip;
        }),
      );
      entry.node.dataset.editing = here.length ? "true" : "false";
      entry.view.carets(entry.carets);
    }
  }

  /** Redraw the others' carets in `doc` after its text changed (nothing to do when nobody else
   * has a caret there, as while typing alone). */
  _renderCarets(doc) {
    for (const entry of this.views) {
      if (entry.doc === doc && entry.carets?.length) entry.view.carets(entry.carets);
    }
  }

  _renderStatus() {
    const { online, pending } = this.notes;
    let text;
    let state;
    if (!online) {
      state = "offline";
      text = pending ? "Offline. Your changes are kept and sent when you're back." : "Offline.";
    } else if (pending) {
      state = "saving";
      text = "Saving…";
    } else {
      state = "saved";
      text = "All changes saved";
    }
    this.status.textContent = text;
    this.status.dataset.state = state;
  }

  destroy() {
    this._unsubscribe?.();
    for (const entry of this.views) entry.view.destroy();
    this.root.remove();
  }
}
