// The workbench shell: login, navigation, language switch and routing
// (#/inbox, #/customers, #/customer/<code>, #/overview, #/audit).
import { h, clear, field, status } from './dom.js';
import { call, setCSRF, APIError } from './api.js';
import { t, getLang, setLang } from './i18n.js';
import { renderInbox } from './inbox.js';
import { renderCustomers } from './customers.js';
import { renderCard } from './card.js';
import { renderOverview } from './overview.js';
import { renderAudit } from './audit.js';

const main = document.getElementById('main');
let me = null;

const routes = {
  inbox: () => renderInbox(main, me),
  customers: () => renderCustomers(main, me),
  customer: (code) => renderCard(main, me, code),
  overview: () => renderOverview(main, me),
  audit: () => renderAudit(main, me),
};

function staticText() {
  document.title = t('brand');
  document.getElementById('brand').textContent = t('brand');
  document.getElementById('skip-link').textContent = t('skip');
  document.getElementById('nav').setAttribute('aria-label', t('nav'));
  for (const a of document.querySelectorAll('#nav a')) a.textContent = t('nav.' + a.dataset.page);
  document.getElementById('lang').textContent = t('switchLang');
  document.getElementById('logout').textContent = t('logout');
  document.getElementById('who').textContent = me ? me.name + (me.owner ? ' · ' + me.owner : '') : '';
}

async function route() {
  staticText();
  if (!me) return;
  const [, page = 'inbox', arg] = (location.hash || '#/inbox').split('/');
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === page || (page === 'customer' && a.dataset.page === 'customers')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const render = routes[page] || routes.inbox;
  delete main.dataset.ready;
  clear(main).append(h('p', { class: 'muted', text: t('loading') }));
  try {
    await render(arg ? decodeURIComponent(arg) : undefined);
  } catch (e) {
    if (e instanceof APIError && e.status === 401) { me = null; return showLogin(); }
    clear(main).append(h('p', { class: 'error', role: 'alert', text: t('error') + e.message }));
  }
  main.dataset.ready = page;
  // After a navigation, keyboard and screen reader users continue at the
  // new page's heading rather than at the link they left.
  if (moveFocus) {
    moveFocus = false;
    (main.querySelector('h1') || main).focus();
  }
}

let moveFocus = false;

function showLogin(open) {
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  staticText();
  const msg = h('p', { class: 'error', role: 'alert', id: 'login-error' });
  const input = h('input', { type: 'password', autocomplete: 'off', required: !open });
  const form = h('form', { class: 'panel login', id: 'login-form', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      me = await call('POST', '/session', open ? {} : { token: input.value });
      input.value = '';
      started();
    } catch (e) {
      msg.textContent = t('login.failed') + e.message;
    }
  } },
  h('h1', { text: t('login.title') }),
  open ? h('p', { text: t('login.open') }) : field('login-token', t('login.token'), input),
  h('p', {}, h('button', { type: 'submit', class: 'primary', id: 'login-submit', text: open ? t('login.enter') : t('login.submit') })),
  msg);
  clear(main).append(form);
  main.dataset.ready = 'login';
  (open ? form.querySelector('button') : input).focus();
}

function started() {
  setCSRF(me.csrf);
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  document.getElementById('nav-audit').hidden = !me.scopes.includes('audit');
  route();
}

document.getElementById('lang').addEventListener('click', () => {
  setLang(getLang() === 'en' ? 'zh' : 'en');
  if (me) route(); else showLogin(loginOpen);
});

document.getElementById('logout').addEventListener('click', async () => {
  try { await call('DELETE', '/session'); } catch (e) { status(e.message, true); }
  me = null;
  setCSRF('');
  showLogin(loginOpen);
});

window.addEventListener('hashchange', () => { moveFocus = true; route(); });

// The skip link moves the focus to the page's content; as a plain
// "#main" link it would change the route.
document.getElementById('skip-link').addEventListener('click', (ev) => {
  ev.preventDefault();
  (main.querySelector('h1') || main).focus();
});

let loginOpen = false;
setLang(getLang());
try {
  me = await call('GET', '/session');
  started();
} catch (e) {
  loginOpen = !!(e.body && e.body.open);
  showLogin(loginOpen);
}
