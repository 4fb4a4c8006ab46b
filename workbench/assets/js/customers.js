// The customer list: every filter of GET /v1/customers, keyset pages
// ("load more") and the CSV / XLSX exports of the same filter.
import { h, clear, field, table, when, money } from './dom.js';
import { get, query } from './api.js';
import { t, getLang, label } from './i18n.js';

const selects = ['value_tier', 'activity', 'segment', 'lifecycle', 'need_orientation', 'tag'];
let filter = {};
let vocabulary = null;

export async function renderCustomers(main, me) {
  if (!vocabulary) vocabulary = (await get('/v1/segments/vocabulary')).labels;
  const controls = {};
  const form = h('form', { class: 'filters', id: 'customer-filters', onsubmit: (ev) => {
    ev.preventDefault();
    filter = {};
    for (const [k, el] of Object.entries(controls)) if (el.value.trim()) filter[k] = el.value.trim();
    renderCustomers(main, me);
  } });
  for (const name of selects) {
    const sel = h('select', {}, h('option', { value: '', text: t('any') }),
      (vocabulary[name] || []).map((v) => h('option', { value: v.value, text: label(v), selected: filter[name] === v.value })));
    controls[name] = sel;
    form.append(field('filter-' + name, t('col.' + name), sel));
  }
  controls.owner = h('input', { type: 'text', value: filter.owner || '', disabled: !!me.owner });
  controls.q = h('input', { type: 'search', value: filter.q || '', maxLength: 64 });
  form.append(field('filter-owner', t('list.owner'), controls.owner), field('filter-q', t('list.q'), controls.q),
    h('button', { type: 'submit', class: 'primary', id: 'filter-submit', text: t('list.search') }),
    h('button', { type: 'button', text: t('list.reset'), onclick: () => { filter = {}; renderCustomers(main, me); } }));
  const exports = h('p', {}, t('list.export') + '：',
    h('a', { href: '/v1/customers.csv' + query(filter), id: 'export-csv', download: '', text: 'CSV' }), ' · ',
    h('a', { href: '/v1/customers.xlsx' + query(filter), id: 'export-xlsx', download: '', text: 'Excel (XLSX)' }));
  const body = h('tbody', {});
  const count = h('p', { class: 'muted', id: 'customer-count', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', id: 'more', text: t('list.more') });
  const list = table([[t('col.code')], [t('col.name')], [t('col.owner')], [t('col.value_tier')], [t('col.activity')], [t('col.segment')],
    [t('col.lifecycle')], [t('col.tag')], [t('col.net'), 'num'], [t('col.lastOrder')], [t('col.changed')]], [], { id: 'customer-table' });
  list.replaceChild(body, list.tBodies[0]);
  clear(main).append(h('h1', { text: t('list.title') }), form, exports, h('section', { class: 'panel' }, list, count, more));
  let shown = 0;
  const load = async (cursor) => {
    const page = await get('/v1/customers' + query({ ...filter, cursor, limit: 50 }));
    for (const c of page.customers) body.append(row(c));
    shown += page.customers.length;
    count.textContent = t('list.count', { n: shown });
    more.hidden = !page.next;
    more.onclick = () => load(page.next);
  };
  await load('');
}

function row(c) {
  const lang = getLang();
  return h('tr', { 'data-customer': c.customer },
    h('td', {}, h('a', { href: '#/customer/' + encodeURIComponent(c.customer), text: c.customer })),
    h('td', { text: c.name || '—' }),
    h('td', { text: c.owner || '—' }),
    h('td', { text: label(c.labels.value_tier) }),
    h('td', { text: label(c.labels.activity) }),
    h('td', { text: label(c.labels.segment) }),
    h('td', { text: label(c.labels.lifecycle) }),
    h('td', {}, c.tags.map((tg) => h('span', { class: 'tag', text: lang === 'en' ? tg.tag : tg.display })),
      (c.possible_duplicate_of || []).length === 0 ? [] : h('span', { class: 'tag warn', 'data-duplicate': '',
        title: c.possible_duplicate_of.map((d) => d.customer).join(', '), text: t('card.duplicates') })),
    h('td', { class: 'num', text: money(c.net_amount) }),
    h('td', { text: when(c.last_order_at, lang) }),
    h('td', { text: when(c.changed_at, lang) }));
}
