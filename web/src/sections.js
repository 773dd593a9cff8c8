// The editors of the notes documents' sections (docs/notes.md): each section is a top-level Yjs
// type, shown editable to its writers and as live text to its readers. Readers' views are
// text only (textContent), never HTML.
//
//   text   Y.Text                       a textarea (other people's carets drawn over it)
//   rows   Y.Array<Y.Map>               one row of fields per item (diagnoses, medications, ...)
//   items  Y.Array<string|Y.Text|Y.Map{text}>   one line per item (goals, questions)
//   map    Y.Map                        a few fields (follow-up)

import * as Y from "yjs";

import { bindText, caretOverlay, cursorAt, cursorIndex } from "./bindings.js";
import { button, el } from "./dom.js";

export const PLAN_SECTIONS = [
  { key: "summary", title: "Presenting picture", type: "text" },
  {
    key: "diagnoses",
    title: "Diagnoses",
    type: "rows",
    item: "diagnosis",
    fields: [
      { key: "name", label: "Diagnosis", main: true },
      { key: "icd10", label: "ICD-10", size: "small" },
      { key: "status", label: "Status", options: ["provisional", "confirmed"] },
    ],
  },
  {
    key: "medications",
    title: "Medications",
    type: "rows",
    item: "medication",
    fields: [
      { key: "name", label: "Medication", main: true },
      { key: "dose", label: "Dose", size: "small" },
      { key: "schedule", label: "Schedule" },
      { key: "action", label: "Action", options: ["", "start", "adjust", "stop"] },
      { key: "side_effects", label: "Side effects to watch", shared: true },
    ],
  },
  { key: "therapy_focus", title: "Therapy focus", type: "text" },
  { key: "therapy_goals", title: "Therapy goals", type: "items", item: "goal" },
  {
    key: "monitoring",
    title: "Monitoring",
    type: "rows",
    item: "measure",
    fields: [
      { key: "measure", label: "Measure", main: true },
      { key: "when", label: "When" },
    ],
  },
  {
    key: "follow_up",
    title: "Follow-up",
    type: "map",
    fields: [
      { key: "date", label: "Date", input: "date" },
      { key: "when", label: "When" },
      { key: "with_whom", label: "With" },
    ],
  },
  { key: "safety", title: "Safety considerations", type: "text" },
];

export const CLIENT_SECTIONS = [
  { key: "questions", title: "Questions", type: "items", item: "question" },
  { key: "goals", title: "Goals", type: "items", item: "goal" },
];

export const CLINICIANS_SECTIONS = [{ key: "notes", title: "Private notes", type: "text" }];

const OPTION_WORDS = { "": "—", provisional: "Provisional", confirmed: "Confirmed", start: "Start", adjust: "Adjust", stop: "Stop" };

/** The root type of a section (creating it locally is how Yjs names a top-level type). */
export function rootOf(ydoc, section) {
  if (section.type === "text") return ydoc.getText(section.key);
  if (section.type === "map") return ydoc.getMap(section.key);
  return ydoc.getArray(section.key);
}

/** A value of a list item or a field as plain text. */
export function textOf(value) {
  if (value instanceof Y.Text) return value.toString();
  if (value instanceof Y.Map) return textOf(value.get("text"));
  if (value === undefined || value === null) return "";
  return String(value);
}

/**
 * One section's editor or live view. `presence(field, index)` tells the panel where this
 * person is (field null when they leave it). Returns {root, carets(list), destroy()}.
 */
export function sectionView(ydoc, section, { writable, presence }) {
  const type = rootOf(ydoc, section);
  if (!writable) return readonlyView(type, section);
  if (section.type === "text") return textEditor(type, section, presence);
  if (section.type === "map") return mapEditor(type, section, presence);
  return listEditor(type, section, presence);
}

// -- editors ------------------------------------------------------------------------------------

function textEditor(ytext, section, presence) {
  const textarea = el("textarea", "notes-text");
  textarea.rows = section.key === "notes" ? 8 : 4;
  textarea.setAttribute("aria-label", section.title);
  const wrap = el("div", "text-wrap", textarea);
  const binding = bindText(textarea, ytext, { onCaret: (index) => presence(index === null ? null : "text", index === null ? null : cursorAt(ytext, index)) });
  const overlay = caretOverlay(textarea);
  return {
    root: wrap,
    field: textarea,
    carets(others) {
      const carets = [];
      for (const person of others) {
        const index = cursorIndex(ytext, person.cursor);
        if (index !== null) carets.push({ index, label: person.name, role: person.role });
      }
      overlay.render(carets);
    },
    destroy() {
      binding.destroy();
      overlay.destroy();
    },
  };
}

function mapEditor(ymap, section, presence) {
  const root = el("div", "notes-fields");
  const bindings = section.fields.map((field) => {
    const control = fieldControl(field, section.title);
    root.append(labelled(field.label, control));
    return bindMapField(ymap, field, control, presence);
  });
  return { root, carets() {}, destroy: () => bindings.forEach((b) => b.destroy()) };
}

function listEditor(yarray, section, presence) {
  const list = el("ol", "notes-rows");
  const add = button(`Add ${section.item}`, "button button-small button-quiet notes-add", () => addItem(yarray, section, list));
  add.dataset.action = "add";
  const root = el("div", "notes-list", list, add);
  /** item (Y.Map / Y.Text, or a row key for plain strings) -> {node, destroy} */
  const rows = new Map();

  const reconcile = () => {
    const wanted = [];
    const seen = new Set();
    yarray.toArray().forEach((item, index) => {
      const key = typeof item === "object" && item !== null ? item : `plain:${index}:${item}`;
      seen.add(key);
      let row = rows.get(key);
      if (!row) {
        row = section.type === "rows" ? mapRow(yarray, item, section, presence) : itemRow(yarray, item, section, presence);
        rows.set(key, row);
      }
      wanted.push(row.node);
    });
    for (const [key, row] of rows) {
      if (!seen.has(key)) {
        row.destroy();
        row.node.remove();
        rows.delete(key);
      }
    }
    // Move only what is out of place: moving the row being typed in would take its focus.
    let cursor = list.firstChild;
    for (const node of wanted) {
      if (node === cursor) cursor = cursor.nextSibling;
      else list.insertBefore(node, cursor);
    }
  };
  yarray.observe(reconcile);
  reconcile();
  return {
    root,
    carets() {},
    destroy() {
      yarray.unobserve(reconcile);
      for (const row of rows.values()) row.destroy();
    },
  };
}

function addItem(yarray, section, list) {
  let item;
  if (section.type === "rows") {
    item = new Y.Map();
    for (const field of section.fields) if (field.shared) item.set(field.key, new Y.Text());
    if (section.key === "diagnoses") item.set("status", "provisional");
  } else {
    item = new Y.Text();
  }
  yarray.push([item]);
  list.lastElementChild?.querySelector("input, textarea")?.focus();
}

function removeButton(yarray, item, section) {
  const remove = button("Remove", "button button-small button-quiet notes-remove", () => {
    const index = yarray.toArray().indexOf(item);
    if (index >= 0) yarray.delete(index, 1);
  });
  remove.dataset.action = "remove";
  remove.setAttribute("aria-label", `Remove this ${section.item}`);
  return remove;
}

function mapRow(yarray, item, section, presence) {
  const node = el("li", "notes-row");
  if (!(item instanceof Y.Map)) {
    // Not the documented shape (another client wrote it): shown, and removable.
    node.append(el("span", "notes-odd", textOf(item)), removeButton(yarray, item, section));
    return { node, destroy() {} };
  }
  const bindings = section.fields.map((field) => {
    const control = fieldControl(field, section.title);
    const label = labelled(field.label, control);
    if (field.main) label.classList.add("field-main");
    if (field.size) label.classList.add(`field-${field.size}`);
    node.append(label);
    return bindMapField(item, field, control, presence);
  });
  node.append(removeButton(yarray, item, section));
  return { node, destroy: () => bindings.forEach((b) => b.destroy()) };
}

function itemRow(yarray, item, section, presence) {
  const input = el("input", "notes-item-input");
  input.type = "text";
  input.setAttribute("aria-label", section.title.replace(/s$/, ""));
  const node = el("li", "notes-row notes-row-item", input, removeButton(yarray, item, section));
  let binding;
  if (item instanceof Y.Text) {
    binding = bindText(input, item, { onCaret: (i) => presence(i === null ? null : "item", null) });
  } else if (item instanceof Y.Map) {
    binding = bindMapField(item, { key: "text" }, input, presence);
  } else {
    // A plain string cannot be edited in place: on first focus it becomes a Y.Text at the
    // same position (the row is rebuilt for it, and the caret moves there).
    input.value = textOf(item);
    const upgrade = () => {
      const index = yarray.toArray().indexOf(item);
      if (index < 0) return;
      const caret = input.selectionStart;
      yarray.doc.transact(() => {
        yarray.delete(index, 1);
        yarray.insert(index, [new Y.Text(textOf(item))]);
      });
      const fresh = node.parentElement?.children[index]?.querySelector("input");
      fresh?.focus();
      fresh?.setSelectionRange(caret, caret);
    };
    input.addEventListener("focus", upgrade, { once: true });
    binding = { destroy: () => input.removeEventListener("focus", upgrade) };
  }
  return { node, destroy: () => binding.destroy() };
}

function fieldControl(field, sectionTitle) {
  let control;
  if (field.options) {
    control = el("select", "notes-select");
    for (const value of field.options) {
      const option = el("option", null, OPTION_WORDS[value] ?? value);
      option.value = value;
      control.append(option);
    }
  } else {
    control = el("input", "notes-input");
    control.type = field.input || "text";
  }
  control.dataset.field = field.key;
  control.setAttribute("aria-label", `${sectionTitle}: ${field.label}`);
  return control;
}

function labelled(text, control) {
  return el("label", "notes-field", el("span", "notes-field-label", text), control);
}

/** A field of a Y.Map: a Y.Text binds character by character; a string is set whole. */
function bindMapField(ymap, field, control, presence) {
  let binding = null;
  const report = (on) => presence(on ? field.key : null, null);
  const onFocus = () => report(true);
  const onBlur = () => report(false);
  control.addEventListener("focus", onFocus);
  control.addEventListener("blur", onBlur);

  const attach = () => {
    binding?.destroy();
    binding = null;
    const value = ymap.get(field.key);
    if (value instanceof Y.Text && control.tagName !== "SELECT") {
      binding = bindText(control, value, { onCaret: (i) => report(i !== null) });
      return;
    }
    control.value = textOf(value);
    const onInput = () => ymap.set(field.key, control.value);
    const event = control.tagName === "SELECT" ? "change" : "input";
    control.addEventListener(event, onInput);
    binding = { destroy: () => control.removeEventListener(event, onInput) };
  };
  const observer = (event) => {
    if (!event.keysChanged.has(field.key) || event.transaction.local) return;
    const value = ymap.get(field.key);
    if (value instanceof Y.Text) {
      attach();
    } else if (control.value !== textOf(value)) {
      const caret = control.selectionStart;
      control.value = textOf(value);
      if (document.activeElement === control && caret !== null && control.type === "text") {
        control.setSelectionRange(Math.min(caret, control.value.length), Math.min(caret, control.value.length));
      }
    }
  };
  ymap.observe(observer);
  attach();
  return {
    destroy() {
      ymap.unobserve(observer);
      control.removeEventListener("focus", onFocus);
      control.removeEventListener("blur", onBlur);
      binding?.destroy();
    },
  };
}

// -- readers' live view ---------------------------------------------------------------------------

function readonlyView(type, section) {
  const root = el("div", "notes-readonly");
  const render = () => root.replaceChildren(...readonlyNodes(type, section));
  type.observeDeep(render);
  render();
  return { root, carets() {}, destroy: () => type.unobserveDeep(render) };
}

function readonlyNodes(type, section) {
  const empty = () => [el("p", "notes-empty", "Nothing yet.")];
  if (section.type === "text") {
    const text = type.toString();
    return text.trim() ? [el("p", "notes-prose", text)] : empty();
  }
  if (section.type === "map") {
    const parts = section.fields.map((f) => [f.label, textOf(type.get(f.key))]).filter(([, v]) => v.trim());
    if (!parts.length) return empty();
    return [el("dl", "notes-facts", ...parts.map(([k, v]) => el("div", null, el("dt", null, k), el("dd", null, v))))];
  }
  const items = type.toArray().map((item) => (section.type === "rows" ? rowSummary(item, section) : textOf(item))).filter((t) => t.trim());
  if (!items.length) return empty();
  return [el("ul", "notes-items", ...items.map((text) => el("li", null, text)))];
}

/** "Major depressive disorder (F32.1) · provisional" */
export function rowSummary(item, section) {
  if (!(item instanceof Y.Map)) return textOf(item);
  const [main, ...rest] = section.fields;
  const head = textOf(item.get(main.key));
  const details = rest.map((f) => textOf(item.get(f.key))).filter(Boolean);
  return [head, ...details].filter(Boolean).join(" · ");
}
