// Small DOM helpers: elements are built with properties and textContent,
// never from HTML strings, so no data can become markup and no inline style
// is needed (the Content-Security-Policy forbids both).

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (tag === 'h1') el.tabIndex = -1; // the focus lands on a page's heading after a navigation
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'for' || k === 'scope' || k === 'role' || k === 'tabindex') el.setAttribute(k, v === true ? '' : v);
    else el[k] = v;
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// A labelled control: <label for=id>text</label> + control.
export function field(id, text, control) {
  control.id = id;
  return h('label', { for: id }, h('span', { text }), control);
}

export function table(headers, rows, attrs) {
  return h('table', attrs || {},
    h('thead', {}, h('tr', {}, headers.map(([text, cls]) => h('th', { scope: 'col', class: cls || '', text })))),
    h('tbody', {}, rows));
}

export function status(text, isError) {
  const el = document.getElementById('status');
  el.textContent = text || '';
  el.className = 'status' + (isError ? ' error' : '');
  if (text) setTimeout(() => { if (el.textContent === text) el.textContent = ''; }, 5000);
}

// Formats an RFC 3339 time for display in the browser's locale.
export function when(s, lang) {
  if (!s) return '—';
  const d = new Date(s);
  return d.toLocaleString(lang === 'en' ? 'en-GB' : 'zh-CN', { hour12: false });
}

export function money(s) {
  if (s === undefined || s === null) return '—';
  const [int, frac] = String(s).split('.');
  return int.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (frac ? '.' + frac : '');
}

export function pct(x) {
  return (Math.round(x * 1000) / 10).toFixed(1) + '%';
}
