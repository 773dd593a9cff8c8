// A confirm dialog (a modal <dialog>: focus moves into it, Escape cancels, the page behind is
// inert) for the actions that cannot be undone: ending the consult, removing someone.

import { button, el } from "./dom.js";

/**
 * Ask; resolves true when confirmed. The dialog is `#confirm-dialog` with buttons
 * `[data-action="confirm"]` and `[data-action="cancel"]`.
 */
export function confirmDialog({ title, body, confirm, cancel = "Cancel", danger = true }) {
  document.getElementById("confirm-dialog")?.remove();
  return new Promise((resolve) => {
    const heading = el("h2", null, title);
    heading.id = "confirm-title";
    const text = el("p", null, body);
    text.id = "confirm-body";
    const dialog = el("dialog", "dialog");
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const yes = button(confirm, danger ? "button button-danger" : "button", () => finish(true));
    yes.dataset.action = "confirm";
    const no = button(cancel, "button button-quiet", () => finish(false));
    no.dataset.action = "cancel";
    dialog.id = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", heading.id);
    dialog.setAttribute("aria-describedby", text.id);
    dialog.append(heading, text, el("div", "dialog-actions", no, yes));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault(); // Escape: answer no, and clean up the same way
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus(); // the safe choice has the focus
  });
}

/** A host ending the consult for everyone. */
export function confirmEnd() {
  return confirmDialog({
    title: "End the consult for everyone?",
    body: "Everyone leaves the call and the treatment plan is saved as it is now. This can't be undone.",
    confirm: "End consult",
  });
}

/** A host removing someone (`name` may be missing: they are not in the roster yet). */
export function confirmRemove(name) {
  return confirmDialog({
    title: `Remove ${name || "this participant"}?`,
    body: "They leave the call at once. If they come back, they wait in the waiting room until a host lets them in.",
    confirm: "Remove",
  });
}
