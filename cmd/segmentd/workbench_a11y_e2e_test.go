package main

import (
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// unlabelled lists the page's form controls, buttons and charts that have
// no accessible name (a label, aria-label or text).
const unlabelled = `[...document.querySelectorAll('input, select, textarea, button, [role=img]')]
	.filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
	.map((el) => el.outerHTML.slice(0, 120))`

// lowContrast lists the heat map texts whose contrast with their cell's
// colour is under WCAG AA's 4.5:1, as "segment ratio".
const lowContrast = `(() => {
	const lum = (c) => {
		const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
			v /= 255;
			return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
		});
		return 0.2126 * r + 0.7152 * g + 0.0722 * b;
	};
	const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
	return [...document.querySelectorAll('#heat-table td[data-segment] span')]
		.map((s) => [s.closest('td').dataset.segment, ratio(getComputedStyle(s).color, getComputedStyle(s.closest('td')).backgroundColor)])
		.filter(([, r]) => r < 4.5).map(([seg, r]) => seg + ' ' + r.toFixed(2));
})()`

// checkAccessibility: on every page each form control, button and chart
// has a name; the heat map prints each cell's count and revenue share (it
// reads in greyscale) with text that contrasts with the cell's colour; the
// keyboard reaches the skip link first, the skip link lands on the page's
// heading without leaving the page, and following a link with Enter moves
// the focus to the new page's heading.
func checkAccessibility(b browser, e *workbenchEnv) {
	t := b.t
	for _, page := range []string{"inbox", "customers", "audit", "overview"} {
		b.visit(e.base+"/#/"+page, page)
		if missing := eval[[]string](b, "find controls without a name", unlabelled); len(missing) > 0 {
			t.Errorf("%s: controls without a label or name: %q", page, missing)
		}
	}
	bare := eval[[]string](b, "read the heat map cells", `[...document.querySelectorAll('#heat-table td[data-segment]')]
		.filter((td) => td.querySelector('.count').textContent !== td.dataset.customers || !/\d+\.\d%/.test(td.textContent))
		.map((td) => td.dataset.segment)`)
	if cells := eval[int](b, "count the cells", `document.querySelectorAll('#heat-table td[data-segment]').length`); cells != 12 || len(bare) > 0 {
		t.Errorf("%d heat map cells; without their printed count and share: %q", cells, bare)
	}
	if low := eval[[]string](b, "measure the heat map's contrast", lowContrast); len(low) > 0 {
		t.Errorf("heat map text under 4.5:1 contrast: %q", low)
	}
	if caption := eval[string](b, "read the caption", `document.querySelector('#heat-table caption').textContent`); caption == "" {
		t.Error("the heat map table has no caption")
	}

	b.do("load the page afresh and tab into it", chromedp.Reload(), chromedp.WaitVisible(`main[data-ready="overview"]`), chromedp.KeyEvent(kb.Tab))
	if id := eval[string](b, "the focused element", `document.activeElement.id`); id != "skip-link" {
		t.Errorf("the first Tab reaches %q, want the skip link", id)
	}
	b.do("follow the skip link", chromedp.KeyEvent(kb.Enter))
	focus := eval[string](b, "the focused element", `document.activeElement.tagName + ' ' + document.activeElement.textContent + ' ' + location.hash`)
	if focus != "H1 客群概览 #/overview" {
		t.Errorf("after the skip link the focus is on %q, want the overview's heading", focus)
	}
	b.do("open the customer list from the keyboard", chromedp.Focus("#nav-customers"), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`main[data-ready="customers"]`))
	focus = eval[string](b, "the focused element", `document.activeElement.tagName + ' ' + document.activeElement.textContent`)
	if focus != "H1 客户列表" {
		t.Errorf("after following a link the focus is on %q, want the new page's heading", focus)
	}
}
