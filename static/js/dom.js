// Small DOM helpers. User text only ever goes in through textContent / text nodes: nothing
// here parses HTML, so a comment like <img src=x onerror=alert(1)> shows literally.

/**
 * Makes an element. props: class, text (textContent), dataset, on<event> handlers, and plain
 * attributes (never `style`: the CSP forbids style attributes; set element.style.* instead).
 * Children are nodes or strings (added as text nodes).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

/** Appends nodes and strings (as text) to parent, skipping null/undefined. */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces all children of parent. */
export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** The element with this id (throws if the page lacks it: a programming error). */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`page has no #${id}`);
  return node;
}

/** Shows or hides an element with the `hidden` attribute. */
export function show(node, visible) {
  node.hidden = !visible;
}
