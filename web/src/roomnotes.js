// The room's notes: the notes channel over the room's socket, the panel bound to it, and the
// clinicians' care tabs (brief, history) inside it. Created on the first admission; a re-join
// on a new socket re-syncs the same documents (unacknowledged edits are sent again).

import { renderBrief, renderHistory } from "./carepanel.js";
import { sharingWithdrawnSentence } from "./consentwords.js";
import { $ } from "./dom.js";
import { NotesChannel } from "./notes.js";
import { NotesPanel } from "./notespanel.js";


export class RoomNotes {
  /**
   * @param {object} options
   * @param {import("./signaling.js").Signaling} options.signaling the room's socket
   * @param {import("./roomapi.js").RoomApi} options.api
   * @param {() => import("./carealerts.js").CareAlerts} options.care
   * @param {(code: string, during: string) => void} options.report
   */
  constructor({ signaling, api, care, report }) {
    this.signaling = signaling;
    this.api = api;
    this.care = care;
    this.report = report;
    /** @type {NotesChannel|null} */
    this.channel = null;
    /** @type {NotesPanel|null} */
    this.panel = null;
    this._socketId = null;
    // The brief was saved (REST, on any worker; the event carries none of it): an open Brief
    // tab reads it again, one never opened reads it when opened.
    signaling.on("brief-updated", () => this.refreshCareTabs("brief"));
  }

  /** Open the documents (first admission) or re-sync them (a re-join on a new socket). */
  start(you, socketId) {
    if (!this.channel) {
      this.channel = new NotesChannel({
        call: (event, payload) => this.signaling.call(event, payload),
        on: (event, handler) => this.signaling.on(event, handler),
        you,
        onProblem: (code, during) => this.report(code, during),
      });
      this.panel = new NotesPanel({
        notes: this.channel,
        you,
        renderCareTab: (tab, panel) => this.renderCareTab(tab, panel),
      });
      $("tiles").closest(".room-body").append(this.panel.root);
      this.closeCliniciansIfWithdrawn();
    }
    if (this.channel.online && this._socketId === socketId) return; // a media re-join
    this._socketId = socketId;
    this.channel.connect();
  }

  renderCareTab(tab, panel) {
    if (tab.id === "brief") renderBrief(panel, this.api, () => this.care().consent);
    if (tab.id === "history") renderHistory(panel, this.api, this.channel.doc("plan"));
  }

  /** After consent to sharing was withdrawn (the client's, a minor's guardian's, or the
   * minor's assent), the clinicians' notes are closed, saying by whom. */
  closeCliniciansIfWithdrawn() {
    const consent = this.care().consent;
    if (!consent?.sharing_withdrawn) return;
    this.panel?.closeDocument("clinicians", sharingWithdrawnSentence(consent, ": these notes can no longer be changed."));
  }

  /** A safety flag refreshes the history (the trend); a consent change or a saved brief, the
   * brief. */
  refreshCareTabs(what) {
    if (what === "consent") this.closeCliniciansIfWithdrawn();
    const tab = this.panel?.panels.get(what === "safety" ? "history" : "brief");
    if (tab?.dataset.loaded) this.renderCareTab({ id: tab.dataset.tab }, tab);
  }

  close() {
    this.channel?.close();
    this.panel?.destroy();
    this.panel = null;
  }
}
