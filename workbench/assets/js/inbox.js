// My alert inbox: overdue, due today, open; each alert can be acknowledged,
// snoozed, followed up (which resolves it) or reassigned (SPEC §8).
import { h, clear, field, status, when } from './dom.js';
import { get, post, query, APIError } from './api.js';
import { t, getLang, reason } from './i18n.js';

// The statuses an inbox shows; a server that does not know one answers 400
// and it is left out.
const shown = ['overdue', 'open', 'acknowledged', 'snoozed'];

let ownerFilter = null;

async function loadAlerts(owner) {
  const all = [];
  for (const s of shown) {
    try {
      const res = await get('/v1/alerts' + query({ status: s, owner, limit: 500 }));
      all.push(...res.alerts);
    } catch (e) {
      if (!(e instanceof APIError && e.status === 400)) throw e;
    }
  }
  return all;
}

function sameLocalDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

// group sorts alerts into the inbox's three sections by due time.
function group(alerts, now) {
  const out = { overdue: [], today: [], open: [] };
  for (const a of alerts) {
    const due = a.due_at ? new Date(a.due_at) : null;
    if (a.status === 'overdue' || (due && due < now && a.status !== 'snoozed')) out.overdue.push(a);
    else if (due && sameLocalDay(due, now)) out.today.push(a);
    else out.open.push(a);
  }
  for (const k of Object.keys(out)) out[k].sort((x, y) => (x.due_at || '9').localeCompare(y.due_at || '9'));
  return out;
}

export async function renderInbox(main, me) {
  if (ownerFilter === null) ownerFilter = me.owner || '';
  const alerts = await loadAlerts(ownerFilter);
  const groups = group(alerts, new Date());
  const ownerInput = h('input', { type: 'text', value: ownerFilter, disabled: !!me.owner });
  const form = h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); ownerFilter = ownerInput.value.trim(); renderInbox(main, me); } },
    field('inbox-owner', t('inbox.owner'), ownerInput),
    h('button', { type: 'submit', text: t('inbox.refresh') }));
  clear(main).append(h('h1', { text: t('inbox.title') }), form);
  for (const [key, list] of [['overdue', groups.overdue], ['today', groups.today], ['open', groups.open]]) {
    const sec = h('section', { class: 'panel', id: 'inbox-' + key, 'aria-labelledby': 'inbox-h-' + key },
      h('h2', { id: 'inbox-h-' + key, text: t('inbox.' + key) + ' (' + list.length + ')' }));
    if (list.length === 0) sec.append(h('p', { class: 'muted', text: t('none') }));
    for (const a of list) sec.append(alertItem(a, () => renderInbox(main, me)));
    main.append(sec);
  }
}

// lifecycle are the fields an action changes.
const lifecycle = (a) => [a.status, a.owner, a.acknowledged_at, a.snoozed_until, a.resolved_at].join('|');

// settled waits (at most 3 s) until the alert shows an action just
// recorded: the API answers 202 once the event is in the log, and the
// projector applies it a few milliseconds later. Without the wait the
// re-rendered inbox could still show the alert as it was.
async function settled(a) {
  const before = lifecycle(a);
  for (let i = 0; i < 30; i++) {
    const res = await get('/v1/alerts/' + encodeURIComponent(a.alert_id));
    if (lifecycle(res.alert) !== before) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// alertItem is one alert with its actions; done re-renders the inbox.
export function alertItem(a, done) {
  const lang = getLang();
  const act = async (what, path, body) => {
    try {
      await post('/v1/alerts/' + encodeURIComponent(a.alert_id) + '/' + path, body);
      await settled(a);
      status(t('act.done') + what);
      await done();
    } catch (e) {
      status(t('error') + e.message, true);
    }
  };
  const id = a.alert_id.slice(0, 8);
  const snoozeSel = h('select', {}, [['h2', 2], ['d1', 24], ['d3', 72], ['d7', 168]].map(([k, hours]) => h('option', { value: String(hours), text: t(k) })));
  const note = h('input', { type: 'text', required: true, maxLength: 2000 });
  const channel = h('select', {}, ['phone', 'email', 'visit', 'wechat', 'other'].map((c) => h('option', { value: c, text: t('ch.' + c) })));
  const to = h('input', { type: 'text', required: true });
  return h('article', { class: 'alert-item', 'data-alert': a.alert_id, 'data-status': a.status },
    h('div', {},
      h('span', { class: 'badge ' + a.status, text: t('st.' + a.status) }), ' ',
      h('strong', { text: t('kind.' + a.kind) }), ' · ',
      h('a', { href: '#/customer/' + encodeURIComponent(a.customer), text: a.customer }), ' · ',
      h('span', { class: 'muted', text: a.from + ' → ' + a.to })),
    h('div', { text: reason(a) }),
    h('div', { class: 'muted', text: t('inbox.due') + ' ' + when(a.due_at, lang) + ' · ' + t('inbox.created') + ' ' + when(a.created_at, lang) + ' · ' + t('f.owner') + ' ' + a.owner }),
    a.playbook ? h('div', { class: 'muted', text: a.playbook }) : null,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'act-ack', text: t('act.ack'), onclick: () => act(t('act.ack'), 'ack') }),
      h('form', { class: 'act-snooze', onsubmit: (ev) => {
        ev.preventDefault();
        const until = new Date(Date.now() + Number(snoozeSel.value) * 3600e3).toISOString();
        act(t('act.snooze'), 'snooze', { until });
      } }, field('snooze-' + id, t('act.snoozeFor'), snoozeSel), h('button', { type: 'submit', text: t('act.snooze') })),
      h('form', { class: 'act-followup', onsubmit: (ev) => {
        ev.preventDefault();
        act(t('act.followup'), 'resolve', { note: note.value, channel: channel.value });
      } }, field('note-' + id, t('act.note'), note), field('channel-' + id, t('act.channel'), channel),
      h('button', { type: 'submit', text: t('act.followup') })),
      h('form', { class: 'act-assign', onsubmit: (ev) => {
        ev.preventDefault();
        act(t('act.assign'), 'assign', { to: to.value.trim() });
      } }, field('to-' + id, t('act.to'), to), h('button', { type: 'submit', text: t('act.assign') }))));
}
