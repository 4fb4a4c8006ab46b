// The customer portrait card in the layout of seed 003: basic attributes,
// behaviour, needs, value assessment, tags with reasons, label timeline
// with causes, recent events and open alerts.
import { h, clear, table, when, money } from './dom.js';
import { get, query, APIError } from './api.js';
import { t, getLang, label, reason } from './i18n.js';
import { alertItem } from './inbox.js';

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [h('dt', { text: t(k) }), h('dd', { text: v === null || v === undefined || v === '' ? '—' : String(v) })]));
}

function labelLine(name, l) {
  return h('p', { 'data-label': name }, h('strong', { text: t('col.' + name) + '：' + label(l) }), ' ', h('span', { class: 'muted', text: reason(l) }));
}

// optional runs an audit-scoped read; without the scope it says so.
async function optional(promise) {
  try {
    return await promise;
  } catch (e) {
    if (e instanceof APIError && e.status === 403) return null;
    throw e;
  }
}

export async function renderCard(main, me, code) {
  const lang = getLang();
  const path = '/v1/customers/' + encodeURIComponent(code);
  const [doc, history, events, alerts] = await Promise.all([
    get(path), optional(get(path + '/labels/history')), optional(get(path + '/events')),
    get('/v1/alerts' + query({ customer: code, limit: 100 })),
  ]);
  renderDocument(main, doc);
  const timeline = h('section', { class: 'panel', id: 'card-timeline' }, h('h2', { text: t('card.timeline') }));
  if (!history) timeline.append(h('p', { class: 'muted', text: t('card.needAudit') }));
  else {
    timeline.append(table([[t('col.at')], [t('col.label')], [t('col.change')], [t('col.cause')], [t('f.reason')]],
      history.changes.slice().reverse().map((c) => h('tr', {},
        h('td', { text: when(c.at, lang) }), h('td', { text: c.label }), h('td', { text: (c.from || '∅') + ' → ' + c.to }),
        h('td', { text: t('cause.' + c.cause.kind) }), h('td', { text: reason(c) })))));
  }
  const recent = h('section', { class: 'panel', id: 'card-events' }, h('h2', { text: t('card.events') }));
  if (!events) recent.append(h('p', { class: 'muted', text: t('card.needAudit') }));
  else {
    recent.append(table([[t('col.at')], [t('col.type')], [t('col.detail')]],
      events.events.slice(-20).reverse().map((e) => h('tr', {},
        h('td', { text: when(e.occurred_at, lang) }), h('td', { text: e.type }), h('td', { class: 'muted', text: JSON.stringify(e.data) })))));
  }
  const open = alerts.alerts.filter((a) => !['resolved', 'superseded', 'info'].includes(a.status));
  const alertSec = h('section', { class: 'panel', id: 'card-alerts' }, h('h2', { text: t('card.alerts') + ' (' + open.length + ')' }));
  if (open.length === 0) alertSec.append(h('p', { class: 'muted', text: t('none') }));
  for (const a of open) alertSec.append(alertItem(a, () => renderCard(main, me, code)));
  main.append(alertSec, timeline, recent);
}

// duplicates names the customers this one may duplicate (SPEC §10): each
// code links to its card, with the fields that matched.
export function duplicates(doc) {
  const dups = doc.possible_duplicate_of || [];
  if (dups.length === 0) return [];
  const en = getLang() === 'en';
  return [h('p', { class: 'warn', id: 'card-duplicates' }, h('strong', { text: t('card.duplicates') + (en ? ': ' : '：') }),
    dups.flatMap((d, i) => [i > 0 ? (en ? '; ' : '；') : '',
      h('a', { href: '#/customer/' + encodeURIComponent(d.customer), text: d.customer }),
      ' (' + d.fields.map((f) => t('dup.' + f)).join(en ? ', ' : '、') + (en ? ' ' : '') + t('dup.same') + ')']))];
}

// renderDocument draws the document's own panels (also the auditor's view
// of a customer at an instant).
export function renderDocument(main, doc) {
  const lang = getLang();
  const p = doc.profile;
  const m = doc.metrics;
  const L = doc.labels;
  const v = doc.value || {};
  clear(main).append(
    h('h1', { id: 'card-title', text: doc.customer + (p.name ? ' · ' + p.name : '') }),
    h('p', { class: 'muted', text: t('card.asOf') + ' ' + when(doc.as_of, lang) + ' · v' + doc.version }),
    ...duplicates(doc),
    h('div', { class: 'grid2' },
      h('section', { class: 'panel', id: 'card-basic' }, h('h2', { text: t('card.basic') }), kv([
        ['f.name', p.name], ['f.kind', p.kind], ['f.industry', p.industry], ['f.region', p.region], ['f.owner', p.owner],
        ['f.contact', p.contact.name], ['f.title', p.contact.title], ['f.phone', p.contact.phone], ['f.email', p.contact.email],
        ['f.source', p.source_channel], ['f.employees', p.employees]])),
      h('section', { class: 'panel', id: 'card-behaviour' }, h('h2', { text: t('card.behaviour') }), kv([
        ['f.orders', m.order_count], ['f.orders3m', m.orders_3m], ['f.orders6m', m.orders_6m], ['f.inquiries3m', m.inquiries_3m],
        ['f.lastOrder', when(m.last_order_at, lang)], ['f.satisfaction', m.latest_satisfaction],
        ['f.firstOrder', when(v.first_order_at, lang)], ['f.aov', money(v.avg_order_value)], ['f.repurchase', t(v.repurchase ? 'yes' : 'no')]]),
      labelLine('activity', L.activity)),
      h('section', { class: 'panel', id: 'card-needs' }, h('h2', { text: t('card.needs') }), labelLine('need_orientation', L.need_orientation)),
      h('section', { class: 'panel', id: 'card-value' }, h('h2', { text: t('card.value') }),
        kv([['f.net', money(m.net_amount)], ['f.ltv', money(v.ltv)], ['f.ltvPredicted', money(v.ltv_predicted)],
          ['f.sales6m', money(v.sales_6m)], ['f.growth6m', v.growth_6m === null ? null : v.growth_6m + '%'],
          ['f.rfm', v.rfm ? 'R' + v.rfm.r + ' F' + v.rfm.f + ' M' + v.rfm.m + ' · ' + (getLang() === 'en' ? v.rfm.segment : v.rfm.display) : null],
          ['f.nps', v.nps ? v.nps.score + ' · ' + (getLang() === 'en' ? v.nps.category : v.nps.display) : null]]),
        labelLine('value_tier', L.value_tier), labelLine('segment', L.segment), labelLine('lifecycle', L.lifecycle))),
    h('section', { class: 'panel', id: 'card-tags' }, h('h2', { text: t('card.tags') }),
      doc.tags.length === 0 ? h('p', { class: 'muted', text: t('none') }) :
        h('ul', {}, doc.tags.map((tg) => h('li', { 'data-tag': tg.tag }, h('span', { class: 'tag', text: tg.display }), ' ', reason(tg))))));
}
