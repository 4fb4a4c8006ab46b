// The auditor's view: a customer as the system knew it at any instant
// (as_of), and verification of the hash chains.
import { h, clear, field, status } from './dom.js';
import { get, query } from './api.js';
import { t } from './i18n.js';
import { renderDocument } from './card.js';

export async function renderAudit(main) {
  const code = h('input', { type: 'text', required: true, maxLength: 64 });
  const at = h('input', { type: 'datetime-local', required: true, step: 1 });
  const out = h('div', { id: 'audit-result' });
  const verdict = h('p', { id: 'audit-verify', role: 'status' });
  const show = async (ev) => {
    ev.preventDefault();
    const instant = new Date(at.value).toISOString();
    const doc = await get('/v1/customers/' + encodeURIComponent(code.value.trim()) + query({ as_of: instant })).catch((e) => { status(e.message, true); return null; });
    if (doc) renderDocument(out, doc);
  };
  const verify = async (path) => {
    try {
      const r = await get(path);
      verdict.className = r.ok ? 'ok' : 'error';
      verdict.textContent = (r.ok ? t('audit.intact') : t('audit.broken')) +
        (r.events_checked !== undefined ? ' · ' + t('audit.checked') + ' ' + r.events_checked : '') +
        r.breaks.map((b) => ' · ' + b.customer + ' v' + b.version + ': ' + b.reason).join('');
    } catch (e) {
      status(e.message, true);
    }
  };
  clear(main).append(h('h1', { text: t('audit.title') }),
    h('form', { class: 'filters', id: 'audit-form', onsubmit: show },
      field('audit-code', t('audit.code'), code), field('audit-at', t('audit.at'), at),
      h('button', { type: 'submit', class: 'primary', text: t('audit.show') }),
      h('button', { type: 'button', id: 'verify-one', text: t('audit.verifyOne'), onclick: () => code.value.trim() && verify('/v1/customers/' + encodeURIComponent(code.value.trim()) + '/audit/verify') }),
      h('button', { type: 'button', id: 'verify-all', text: t('audit.verifyAll'), onclick: () => verify('/v1/audit/verify') })),
    verdict, out);
}
