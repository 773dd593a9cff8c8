// The hosts' view of the waiting room: who is waiting and as what (client, guardian,
// interpreter, or a host knocking after a removal), whether the client's consent is on record
// (the lobby entries' `consent`; the server refuses to admit a client without it,
// `consent_required`; for a minor it is the guardian's), with Admit and Deny for each.

import { lobbyConsentWords } from "./consentwords.js";
import { button, el, roleTitle } from "./dom.js";

/**
 * @param {HTMLElement} section the aside (hidden when nobody waits)
 * @param {HTMLElement} list the <ul>
 * @param {Array<object>} waiting participants in the lobby
 * @param {{onAdmit: (id: string) => Promise<void>, onDeny: (id: string) => Promise<void>,
 *   consentingRole?: string}} actions and whose consent admits the client (the room's
 *   `consent.consenting_role`: "guardian" in a minor's consult)
 */
export function renderHostLobby(section, list, waiting, { onAdmit, onDeny, consentingRole = "client" }) {
  section.hidden = waiting.length === 0;
  list.replaceChildren(
    ...waiting.map((participant) => {
      const pid = participant.participant_id;
      const act = (action) => async () => {
        for (const b of item.querySelectorAll("button")) b.disabled = true;
        try {
          await action(pid);
        } finally {
          for (const b of item.querySelectorAll("button")) b.disabled = false;
        }
      };
      const admit = button("Admit", "button button-small", act(onAdmit));
      admit.dataset.action = "admit";
      const deny = button("Deny", "button button-small button-quiet", act(onDeny));
      deny.dataset.action = "deny";
      const consent = consentBadge(participant, consentingRole);
      const item = el(
        "li",
        "lobby-item",
        el("span", "lobby-name", participant.name),
        el("span", "lobby-role", roleTitle(participant.role)),
        ...(consent ? [consent] : []),
        el("span", "lobby-actions", admit, deny),
      );
      item.dataset.participantId = pid;
      if (typeof participant.consent === "boolean") item.dataset.consent = String(participant.consent);
      return item;
    }),
  );
}

/** "Consent given" / "Consent not given yet" for the client ("Guardian's consent ..." in a
 * minor's consult); nothing for anyone else (their entry never waits on consent: the guardian
 * consents from their own page, the interpreter for nobody) or when the server does not say. */
function consentBadge(participant, consentingRole) {
  if (participant.role !== "client" || typeof participant.consent !== "boolean") return null;
  const badge = el("span", "lobby-consent", lobbyConsentWords(consentingRole, participant.consent));
  badge.dataset.consent = String(participant.consent);
  return badge;
}
