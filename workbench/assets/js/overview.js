// Segment overview: the value × activity heat map (counts and revenue share
// printed in the cells, so it reads in greyscale too), the contribution
// trend (ECharts, with its numbers in a table) and each label's distribution.
import { h, clear, table, money, pct } from './dom.js';
import { get } from './api.js';
import { t, getLang, label } from './i18n.js';

const activities = ['high', 'medium', 'low'];
let charts = [];

function chart(el, option) {
  // Tooltips drawn on the canvas (richText): the HTML ones would need
  // inline style attributes, which the Content-Security-Policy forbids.
  const c = window.echarts.init(el, null, { renderer: 'canvas' });
  c.setOption({ animation: false, tooltip: { trigger: 'axis', renderMode: 'richText' }, ...option });
  charts.push(c);
  return c;
}

window.addEventListener('resize', () => charts.forEach((c) => c.resize()));

export async function renderOverview(main) {
  charts.forEach((c) => c.dispose());
  charts = [];
  const [summary, trend] = await Promise.all([get('/v1/segments/summary'), get('/v1/segments/trend?label=segment&interval=month')]);
  clear(main).append(h('h1', { text: t('ov.title') }), heatMap(summary), valuePanel(summary.population), trendPanel(trend), distribution(summary));
  for (const fn of pendingCharts.splice(0)) fn();
}

let pendingCharts = [];

function heatMap(s) {
  const tiers = s.labels.value_tier;
  const activityNames = Object.fromEntries(s.labels.activity.map((a) => [a.value, a]));
  const cells = Object.fromEntries(s.matrix.map((c) => [c.value_tier + '/' + c.activity, c]));
  const max = Math.max(1, ...s.matrix.map((c) => c.customers));
  const total = Number(s.net_amount) || 0;
  const rows = tiers.map((tier) => h('tr', {}, h('th', { scope: 'row', text: label(tier) }), activities.map((a) => {
    const c = cells[tier.value + '/' + a] || { customers: 0, net_amount: '0.00', display: '' };
    const share = total > 0 ? Number(c.net_amount) / total : 0;
    const level = c.customers === 0 ? 0 : Math.min(5, 1 + Math.floor((c.customers / max) * 4.999));
    return h('td', { class: 'heat' + level, 'data-segment': tier.value + '/' + a, 'data-customers': String(c.customers), 'data-share': share.toFixed(4) },
      h('span', { class: 'count', text: String(c.customers) }),
      h('span', { text: t('ov.customers') }), h('br'),
      h('span', { class: 'share', text: t('ov.share') + ' ' + pct(share) }), h('br'),
      h('span', { class: 'muted', text: c.display }));
  })));
  return h('section', { class: 'panel', id: 'heatmap' }, h('h2', { text: t('ov.heat') }),
    captioned(table([[t('col.value_tier') + ' \\ ' + t('col.activity')], ...activities.map((a) => [label(activityNames[a] || { value: a })])], rows, { class: 'heat', id: 'heat-table' }), t('ov.heatCaption')),
    h('p', { class: 'muted', text: t('ov.total') + '：' + s.customers + ' ' + t('ov.customers') + ' · ' + money(s.net_amount) }));
}

// valuePanel shows the population figures of SPEC §11: repurchase rate, NPS
// and the RFM segments (a bar chart, with its numbers in the text).
function valuePanel(p) {
  const nps = p.nps.score === null
    ? h('p', { class: 'muted', text: t('ov.npsNone') })
    : h('p', {}, h('span', { class: 'count', id: 'nps-score', text: p.nps.score.toFixed(1) }),
      h('span', { class: 'muted', text: ' ' + t('ov.npsOf') + ' ' + p.nps.rated + ' (' + p.nps.promoters + ' / ' + p.nps.passives + ' / ' + p.nps.detractors + ')' }));
  const el = h('div', { class: 'chart small', role: 'img', 'aria-label': t('ov.rfm') });
  pendingCharts.push(() => chart(el, {
    grid: { left: 110, right: 50, top: 10, bottom: 20 },
    xAxis: { type: 'value', minInterval: 1 },
    yAxis: { type: 'category', data: p.rfm_segments.map((v) => label(v)), inverse: true },
    series: [{ type: 'bar', data: p.rfm_segments.map((v) => v.customers), label: { show: true, position: 'right' } }],
  }));
  return h('section', { class: 'panel', id: 'value' }, h('h2', { text: t('ov.value') }),
    h('div', { class: 'grid2' },
      h('div', {}, h('h3', { text: t('ov.repurchase') }),
        h('p', {}, h('span', { class: 'count', id: 'repurchase-rate', 'data-buyers': String(p.buyers), 'data-repurchasers': String(p.repurchasers), text: pct(p.repurchase_rate) }),
          h('span', { class: 'muted', text: ' ' + p.buyers + ' ' + t('ov.repurchaseOf') + ' ' + p.repurchasers })),
        h('h3', { text: t('ov.nps') }), nps),
      h('div', { 'data-distribution': 'rfm_segment', id: 'rfm-segments', 'data-scored': String(p.rfm_scored) }, h('h3', { text: t('ov.rfm') }), el,
        h('p', { class: 'muted', text: t('ov.rfmScored') + ' ' + p.rfm_scored + '：' +
          p.rfm_segments.map((v) => label(v) + ' ' + v.customers + ' (' + pct(v.share) + ')').join('；') }))));
}

// captioned gives a table a caption that screen readers announce with it.
function captioned(tbl, text) {
  tbl.prepend(h('caption', { class: 'visually-hidden', text }));
  return tbl;
}

function trendPanel(tr) {
  const months = tr.points.map((p) => p.start.slice(0, 7));
  const values = tr.points.length ? tr.points[0].values : [];
  const el = h('div', { class: 'chart', id: 'trend-chart', role: 'img', 'aria-label': t('ov.trend') });
  pendingCharts.push(() => chart(el, {
    legend: { type: 'scroll', top: 0 },
    grid: { left: 80, right: 60, top: 40, bottom: 30 },
    xAxis: { type: 'category', data: months },
    yAxis: [{ type: 'value', name: t('ov.netAmount') }, { type: 'value', name: t('ov.customerCount'), minInterval: 1 }],
    series: [
      ...values.map((v, i) => ({ name: getLang() === 'en' ? v.value : v.display, type: 'bar', stack: 'net',
        data: tr.points.map((p) => Number(p.values[i].net_amount)) })),
      { name: t('ov.customerCount'), type: 'line', yAxisIndex: 1, data: tr.points.map((p) => p.customers) },
    ],
  }));
  const shownValues = values.map((v, i) => i).filter((i) => tr.points.some((p) => p.values[i].customers > 0));
  const rows = tr.points.map((p, k) => h('tr', { 'data-month': months[k] }, h('th', { scope: 'row', text: months[k] }),
    h('td', { class: 'num', 'data-total': String(p.customers), text: p.customers + ' · ' + money(p.net_amount) }),
    shownValues.map((i) => h('td', { class: 'num', 'data-value': p.values[i].value, 'data-customers': String(p.values[i].customers),
      'data-net': p.values[i].net_amount, text: p.values[i].customers + ' · ' + money(p.values[i].net_amount) }))));
  return h('section', { class: 'panel', id: 'trend' }, h('h2', { text: t('ov.trend') }), el,
    h('details', {}, h('summary', { text: t('ov.trendTable') }),
      table([[t('ov.month')], [t('ov.total'), 'num'], ...shownValues.map((i) => [label(values[i]), 'num'])], rows, { id: 'trend-table' })));
}

function distribution(s) {
  const groups = [['value_tier', s.labels.value_tier], ['activity', s.labels.activity], ['need_orientation', s.labels.need_orientation],
    ['lifecycle', s.labels.lifecycle], ['tag', s.tags]];
  return h('section', { class: 'panel', id: 'distribution' }, h('h2', { text: t('ov.dist') }),
    h('div', { class: 'grid2' }, groups.map(([name, vals]) => {
      const el = h('div', { class: 'chart small', role: 'img', 'aria-label': t('col.' + name) });
      pendingCharts.push(() => chart(el, {
        grid: { left: 110, right: 50, top: 10, bottom: 20 },
        xAxis: { type: 'value', minInterval: 1 },
        yAxis: { type: 'category', data: vals.map((v) => label(v)), inverse: true },
        series: [{ type: 'bar', data: vals.map((v) => v.customers), label: { show: true, position: 'right' } }],
      }));
      return h('div', { 'data-distribution': name }, h('h3', { text: t('col.' + name) }), el,
        h('p', { class: 'muted', text: vals.map((v) => label(v) + ' ' + v.customers + ' (' + pct(v.share) + ')').join('；') }));
    })));
}
