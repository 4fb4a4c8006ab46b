package notify

import (
	"cmp"
	"fmt"
	"html"
	"strings"
	"time"
)

// Lang is a channel's message language: Chinese unless the channel says en.
type Lang int

// Languages of messages.
const (
	LangZH Lang = iota
	LangEN
)

// composed is one message in the forms the channels send: a title, plain
// text, Markdown (robots, Slack) and HTML (email).
type composed struct {
	Title, Text, Markdown, HTML string
}

// line is one labelled line of a message.
type line struct{ label, value, link string }

// composer renders items for a channel.
type composer struct {
	lang    Lang
	baseURL string
	loc     *time.Location
}

func (m composer) pick(zh, en string) string {
	if m.lang == LangEN {
		return en
	}
	return zh
}

// customerLink is the workbench page of a customer ("" without a base URL).
func (m composer) customerLink(code string) string {
	if m.baseURL == "" {
		return ""
	}
	return m.baseURL + "/#/customers/" + code
}

func (m composer) title(it *Item) string {
	kind := it.Alert.Display
	if m.lang == LangEN || kind == "" {
		kind = it.Alert.Kind
	}
	who := it.Alert.Customer
	if it.Customer.MaskedName != "" {
		who += " " + it.Customer.MaskedName
	}
	prefix := map[string][2]string{
		PurposeAlert:       {"客户预警", "Alert"},
		PurposeReminder:    {"即将到期提醒", "Due soon"},
		PurposeEscalation:  {"逾期升级", "Escalation"},
		PurposeEscalation2: {"逾期二级升级", "Second escalation"},
		PurposeDigest:      {"预警", "Alert"},
	}[it.Purpose]
	if it.Purpose == PurposeAlert && it.Alert.Status == "info" {
		// An informational change (value_tier_changed) is news, not a task.
		prefix = [2]string{"客户变化", "Change"}
	}
	return fmt.Sprintf("【%s】%s · %s", m.pick(prefix[0], prefix[1]), kind, who)
}

func (m composer) lines(it *Item) []line {
	a := &it.Alert
	reason := a.Reason
	if m.lang == LangEN && a.ReasonEN != "" {
		reason = a.ReasonEN
	}
	due := m.pick("无", "none")
	if a.DueAt != nil {
		due = a.DueAt.In(m.loc).Format("2006-01-02 15:04 MST")
	}
	ls := []line{
		{label: m.pick("变化", "Change"), value: a.From + " → " + a.To},
		{label: m.pick("原因", "Reason"), value: reason},
		{label: m.pick("截止时间", "Due"), value: due},
		{label: m.pick("负责人", "Owner"), value: cmp.Or(a.Owner, m.pick("未指定（请在工作台分配）", "none (assign one in the workbench)"))},
	}
	if it.Recipient != "" {
		ls = append(ls, line{label: m.pick("升级给", "Escalated to"), value: it.Recipient})
	}
	if a.Playbook != "" {
		ls = append(ls, line{label: m.pick("处理建议", "Playbook"), value: a.Playbook})
	}
	if link := m.customerLink(a.Customer); link != "" {
		ls = append(ls, line{label: m.pick("客户页面", "Customer page"), value: link, link: link})
	}
	return ls
}

// compose renders one item, or a digest of several (rate limits and the
// daily digest merge messages rather than drop them).
func (m composer) compose(items []Item) composed {
	if len(items) == 1 {
		return m.one(&items[0])
	}
	head := fmt.Sprintf(m.pick("【预警汇总】%d 条", "[Alert digest] %d alerts"), len(items))
	return m.digest(head, items)
}

func (m composer) one(it *Item) composed {
	title := m.title(it)
	var text, md, h strings.Builder
	text.WriteString(title + "\n")
	md.WriteString("### " + title + "\n")
	h.WriteString(`<html lang="` + m.pick("zh-CN", "en") + `"><body><h3>` + html.EscapeString(title) + "</h3><ul>")
	for _, l := range m.lines(it) {
		text.WriteString(l.label + "：" + l.value + "\n")
		if l.link != "" {
			md.WriteString("- " + l.label + "：[" + l.value + "](" + l.link + ")\n")
			h.WriteString(`<li>` + html.EscapeString(l.label) + `：<a href="` + html.EscapeString(l.link) + `">` + html.EscapeString(l.value) + "</a></li>")
			continue
		}
		md.WriteString("- " + l.label + "：" + l.value + "\n")
		h.WriteString("<li>" + html.EscapeString(l.label) + "：" + html.EscapeString(l.value) + "</li>")
	}
	h.WriteString("</ul></body></html>")
	return composed{Title: title, Text: text.String(), Markdown: md.String(), HTML: h.String()}
}

// digestShown is how many items a digest lists (robots cap a message at
// 4–20 KB); the rest are counted and left to the workbench.
const digestShown = 30

// digest lists items one line each under head.
func (m composer) digest(head string, items []Item) composed {
	b := m.newListing(head)
	b.section("", items)
	return b.done()
}

// listing builds a message of headed, numbered item lines in every form.
type listing struct {
	m              composer
	head           string
	text, md, html strings.Builder
	listed         int
	more           int
}

func (m composer) newListing(head string) *listing {
	b := &listing{m: m, head: head}
	b.text.WriteString(head + "\n")
	b.md.WriteString("### " + head + "\n")
	b.html.WriteString(`<html lang="` + m.pick("zh-CN", "en") + `"><body><h3>` + html.EscapeString(head) + "</h3>")
	return b
}

// section lists items under an optional heading; past digestShown items
// overall, the rest are only counted.
func (b *listing) section(heading string, items []Item) {
	m := b.m
	if heading != "" {
		b.text.WriteString(heading + "\n")
		b.md.WriteString("#### " + heading + "\n")
		b.html.WriteString("<h4>" + html.EscapeString(heading) + "</h4>")
	}
	b.html.WriteString("<ol>")
	for i := range items {
		if b.listed == digestShown {
			b.more += len(items) - i
			break
		}
		b.listed++
		it := &items[i]
		summary := m.title(it) + "（" + it.Alert.From + " → " + it.Alert.To + "）"
		if it.Alert.DueAt != nil {
			summary += m.pick("，截止 ", ", due ") + it.Alert.DueAt.In(m.loc).Format("01-02 15:04")
		}
		fmt.Fprintf(&b.text, "%d. %s", i+1, summary)
		fmt.Fprintf(&b.md, "%d. %s", i+1, summary)
		b.html.WriteString("<li>" + html.EscapeString(summary))
		if link := m.customerLink(it.Alert.Customer); link != "" {
			b.text.WriteString(" " + link)
			b.md.WriteString(" [" + m.pick("查看", "open") + "](" + link + ")")
			b.html.WriteString(` <a href="` + html.EscapeString(link) + `">` + m.pick("查看", "open") + "</a>")
		}
		b.text.WriteString("\n")
		b.md.WriteString("\n")
		b.html.WriteString("</li>")
	}
	b.html.WriteString("</ol>")
}

func (b *listing) done() composed {
	if b.more > 0 {
		more := fmt.Sprintf(b.m.pick("另有 %d 条，请在工作台查看。", "%d more: see the workbench."), b.more)
		b.text.WriteString(more + "\n")
		b.md.WriteString(more + "\n")
		b.html.WriteString("<p>" + html.EscapeString(more) + "</p>")
	}
	b.html.WriteString("</body></html>")
	return composed{Title: b.head, Text: b.text.String(), Markdown: b.md.String(), HTML: b.html.String()}
}

// daily renders an owner's daily digest: overdue, due today, then open.
func (m composer) daily(d *Daily) composed {
	head := fmt.Sprintf(m.pick("【每日汇总】%s %s：逾期 %d 条，今日到期 %d 条，待处理 %d 条",
		"[Daily digest] %s %s: %d overdue, %d due today, %d open"),
		d.Owner, d.Day.Format("2006-01-02"), len(d.Overdue), len(d.DueToday), len(d.Open))
	b := m.newListing(head)
	for _, s := range []struct {
		zh, en string
		items  []Item
	}{{"已逾期", "Overdue", d.Overdue}, {"今日到期", "Due today", d.DueToday}, {"待处理", "Open", d.Open}} {
		if len(s.items) > 0 {
			b.section(m.pick(s.zh, s.en), s.items)
		}
	}
	return b.done()
}
