// Form fields bound to Yjs types. A typed change becomes the smallest Y.Text edit (one delete
// and one insert around the common prefix and suffix), so two people typing in one field merge
// instead of overwriting each other; a change from elsewhere updates the field and keeps the
// caret where it was relative to the text around it. Plain strings in a Y.Map are
// last-writer-wins, as docs/notes.md says.

import * as Y from "yjs";

import { el } from "./dom.js";

/** The smallest edit turning `before` into `after`: {index, remove, insert}, or null. */
export function textDiff(before, after) {
  if (before === after) return null;
  let start = 0;
  const shortest = Math.min(before.length, after.length);
  while (start < shortest && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  // Never split a surrogate pair: Yjs counts UTF-16 units like JavaScript does.
  if (start > 0 && isHighSurrogate(before.charCodeAt(start - 1))) start--;
  let endBefore = before.length;
  let endAfter = after.length;
  while (endBefore > start && endAfter > start && before.charCodeAt(endBefore - 1) === after.charCodeAt(endAfter - 1)) {
    endBefore--;
    endAfter--;
  }
  if (endBefore < before.length && isLowSurrogate(before.charCodeAt(endBefore))) {
    endBefore++;
    endAfter++;
  }
  return { index: start, remove: endBefore - start, insert: after.slice(start, endAfter) };
}

function isHighSurrogate(code) {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code) {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** Where `position` (an index in the text before) is after `delta`, a Y.Text event's delta
 * (retain and delete count characters of the text before; inserts add new ones). */
export function shiftPosition(position, delta) {
  let before = 0; // how far into the text before the change the delta has gone
  let moved = position;
  for (const op of delta) {
    if (before >= position) break; // changes at or after the caret leave it where it is
    if (op.retain) {
      before += op.retain;
    } else if (op.insert !== undefined) {
      moved += typeof op.insert === "string" ? op.insert.length : 1;
    } else if (op.delete) {
      moved -= Math.min(op.delete, position - before);
      before += op.delete;
    }
  }
  return moved;
}

/**
 * Bind an <input> or <textarea> to a Y.Text both ways. Returns {destroy()}.
 * `onCaret(index|null)` is told where the caret is while the field has focus (for presence).
 */
export function bindText(input, ytext, { onCaret = null } = {}) {
  const origin = {}; // this binding's own transactions
  let shown = ytext.toString();
  input.value = shown;

  const onInput = () => {
    const change = textDiff(shown, input.value);
    shown = input.value;
    if (!change) return;
    ytext.doc.transact(() => {
      if (change.remove) ytext.delete(change.index, change.remove);
      if (change.insert) ytext.insert(change.index, change.insert);
    }, origin);
    reportCaret();
  };
  const observer = (event) => {
    if (event.transaction.origin === origin) return;
    const focused = document.activeElement === input;
    const start = focused ? shiftPosition(input.selectionStart, event.delta) : 0;
    const end = focused ? shiftPosition(input.selectionEnd, event.delta) : 0;
    shown = ytext.toString();
    input.value = shown;
    if (focused) input.setSelectionRange(start, end);
  };
  const reportCaret = () => {
    if (onCaret && document.activeElement === input) onCaret(input.selectionStart);
  };
  const onBlur = () => onCaret?.(null);

  input.addEventListener("input", onInput);
  input.addEventListener("focus", reportCaret);
  input.addEventListener("keyup", reportCaret);
  input.addEventListener("mouseup", reportCaret);
  input.addEventListener("blur", onBlur);
  ytext.observe(observer);
  return {
    destroy() {
      ytext.unobserve(observer);
      input.removeEventListener("input", onInput);
      input.removeEventListener("focus", reportCaret);
      input.removeEventListener("keyup", reportCaret);
      input.removeEventListener("mouseup", reportCaret);
      input.removeEventListener("blur", onBlur);
    },
  };
}

/** A cursor for awareness: a relative position survives the others' edits. */
export function cursorAt(ytext, index) {
  return Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(ytext, index));
}

/** The index in `ytext` of a cursor from awareness, or null if it points elsewhere. */
export function cursorIndex(ytext, cursor) {
  if (!cursor) return null;
  try {
    const absolute = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(cursor), ytext.doc);
    return absolute && absolute.type === ytext ? absolute.index : null;
  } catch {
    return null;
  }
}

/**
 * Other people's carets drawn over a <textarea>: a mirror element behind it with the same text
 * (transparent) and a marker where each caret is. Returns {render(carets), destroy()} where
 * carets are [{index, label, role}].
 */
export function caretOverlay(textarea) {
  const mirror = el("div", "caret-mirror");
  mirror.setAttribute("aria-hidden", "true");
  mirror.hidden = true;
  textarea.after(mirror);
  const sync = () => {
    mirror.scrollTop = textarea.scrollTop;
  };
  textarea.addEventListener("scroll", sync);
  return {
    render(carets) {
      if (carets.length === 0) {
        if (!mirror.hidden) mirror.replaceChildren();
        mirror.hidden = true;
        return; // nothing to draw: no copy of the text at every keystroke
      }
      const text = textarea.value;
      const sorted = [...carets].sort((a, b) => a.index - b.index);
      const parts = [];
      let at = 0;
      for (const caret of sorted) {
        const index = Math.max(at, Math.min(caret.index, text.length));
        parts.push(text.slice(at, index));
        const marker = el("span", "caret-marker", el("span", "caret-label", caret.label));
        marker.dataset.role = caret.role;
        parts.push(marker);
        at = index;
      }
      parts.push(text.slice(at), "\u200b"); // a trailing newline still takes its line
      mirror.replaceChildren(...parts);
      mirror.hidden = false;
      sync();
      // A label above a caret on the top visible line would be cut off: put it below instead.
      const top = mirror.scrollTop + textarea.clientTop + parseFloat(getComputedStyle(mirror).paddingTop);
      for (const marker of mirror.querySelectorAll(".caret-marker")) {
        marker.classList.toggle("caret-below", marker.offsetTop - top < marker.offsetHeight);
      }
    },
    destroy() {
      textarea.removeEventListener("scroll", sync);
      mirror.remove();
    },
  };
}
