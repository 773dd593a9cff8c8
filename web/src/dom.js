// Small DOM helpers. Everything that comes from the server or the link goes into the page with
// textContent (or as text nodes), never parsed as HTML.

export const $ = (id) => document.getElementById(id);

/** An element with optional class and children (strings become text nodes). */
export function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

/** A button of type "button" with a click handler. */
export function button(label, className, onClick) {
  const node = el("button", className, label);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

export const ROLE_WORDS = {
  client: "client",
  therapist: "therapist",
  psychiatrist: "psychiatrist",
  guardian: "guardian",
  interpreter: "interpreter",
};

export function roleWords(role) {
  // Own keys only: a role named "__proto__" or "constructor" must not reach Object.prototype.
  return typeof role === "string" && Object.hasOwn(ROLE_WORDS, role) ? ROLE_WORDS[role] : "participant";
}

export function roleTitle(role) {
  const words = roleWords(role);
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function isHost(role) {
  return role === "therapist" || role === "psychiatrist";
}
