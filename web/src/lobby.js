// The hosts' view of the waiting room: who is waiting, with Admit and Deny.

import { button, el, roleTitle } from "./dom.js";

/**
 * @param {HTMLElement} section the aside (hidden when nobody waits)
 * @param {HTMLElement} list the <ul>
 * @param {Array<object>} waiting participants in the lobby
 * @param {{onAdmit: (id: string) => Promise<void>, onDeny: (id: string) => Promise<void>}} actions
 */
export function renderHostLobby(section, list, waiting, { onAdmit, onDeny }) {
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
      const item = el(
        "li",
        "lobby-item",
        el("span", "lobby-name", participant.name),
        el("span", "lobby-role", roleTitle(participant.role)),
        el("span", "lobby-actions", admit, deny),
      );
      item.dataset.participantId = pid;
      return item;
    }),
  );
}
