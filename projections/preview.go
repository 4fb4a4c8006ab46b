package projections

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// A rules preview (SPEC §11): what a candidate rule version would change if
// it took effect, computed on one snapshot of the read model (a REPEATABLE
// READ, READ ONLY transaction: the log up to what the projector had applied
// when it began) and writing nothing.

// PreviewExamples is how many examples a preview gives per label, tag and
// alert kind: those of the smallest customer codes, so that the same data
// gives the same report.
const PreviewExamples = 20

// PreviewReport is the result of a preview.
type PreviewReport struct {
	CandidateVersion int    `json:"candidate_version"`
	InForceVersion   int    `json:"in_force_version"`
	At               string `json:"at"` // the instant of the switch previewed
	Customers        int64  `json:"customers"`
	CustomersChanged int64  `json:"customers_changed"`
	// Labels lists every label and tag ("tag:<name>") that would change.
	Labels []PreviewLabel `json:"labels"`
	Alerts []PreviewAlert `json:"alerts"`
}

// PreviewLabel is how a label or tag would change.
type PreviewLabel struct {
	Label       string              `json:"label"`
	Customers   int64               `json:"customers"`
	Transitions []PreviewTransition `json:"transitions"`
	Examples    []PreviewExample    `json:"examples"`
}

// PreviewTransition counts the customers going from one value to another
// ("" when the label had no value, absent/present for tags).
type PreviewTransition struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Customers int64  `json:"customers"`
}

// PreviewExample is one customer's change with the candidate's reason.
type PreviewExample struct {
	Customer string `json:"customer"`
	From     string `json:"from"`
	To       string `json:"to"`
	Reason   string `json:"reason"`
	ReasonEN string `json:"reason_en"`
	DueAt    string `json:"due_at,omitempty"` // alerts only
}

// PreviewAlert counts the alerts of a kind the switch would raise.
type PreviewAlert struct {
	Kind     string           `json:"kind"`
	Count    int64            `json:"count"`
	Examples []PreviewExample `json:"examples"`
}

// PreviewProgress is told how many customers are done out of total.
type PreviewProgress func(done, total int64)

// Preview reports what the latest version of cand would change if it took
// effect at now (or at its effective_at, when later). cand must agree with
// the versions in force that the log recorded (ErrRulesMismatch).
func (p *Projector) Preview(ctx context.Context, cand *domain.RuleBook, now time.Time, progress PreviewProgress) (*PreviewReport, error) {
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("preview: %w", eventstore.MapError(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	recorded, err := readRecordedRules(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := checkInForce(cand, recorded, now); err != nil {
		return nil, err
	}
	rs := cand.Latest()
	at := now
	if rs.EffectiveAt.After(at) {
		at = rs.EffectiveAt
	}
	var total int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM customer_projections").Scan(&total); err != nil {
		return nil, fmt.Errorf("preview: %w", eventstore.MapError(err))
	}
	pv := p.book.Previewer(rs, at)
	acc, err := p.previewRows(ctx, tx, pv, total, progress)
	if err != nil {
		return nil, err
	}
	rep := acc.report()
	rep.CandidateVersion, rep.InForceVersion = rs.Version, p.book.At(now).Version
	rep.At = at.In(rs.Location).Format(time.RFC3339)
	return rep, nil
}

// previewRows reads every stored projection of the snapshot and previews
// it on as many workers as there are processors.
func (p *Projector) previewRows(ctx context.Context, tx pgx.Tx, pv *domain.Previewer, total int64, progress PreviewProgress) (*previewAcc, error) {
	workers := runtime.GOMAXPROCS(0)
	docs := make(chan []byte, 256)
	accs := make([]*previewAcc, workers)
	errs := make([]error, workers)
	loc := pv.Candidate().Location
	var wg sync.WaitGroup
	for w := range workers {
		accs[w] = newPreviewAcc()
		wg.Go(func() {
			for raw := range docs {
				if errs[w] != nil {
					continue
				}
				proj, err := decodeProjection(p.book, raw)
				if err != nil {
					errs[w] = err
					continue
				}
				changes, alerts := pv.Preview(proj)
				accs[w].add(string(proj.State.Customer), changes, alerts, loc)
			}
		})
	}
	rows, err := tx.Query(ctx, "SELECT projection FROM customer_projections")
	var done int64
	if err == nil {
		for rows.Next() {
			docs <- slices.Clone(rows.RawValues()[0])
			if done++; progress != nil && done%1000 == 0 {
				progress(done, total)
			}
		}
		rows.Close()
		err = rows.Err()
	}
	close(docs)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("preview: %w", eventstore.MapError(err))
	}
	if progress != nil {
		progress(done, total)
	}
	acc := newPreviewAcc()
	acc.customers = done
	for w := range workers {
		if errs[w] != nil {
			return nil, fmt.Errorf("preview: %w", errs[w])
		}
		acc.merge(accs[w])
	}
	return acc, nil
}

// previewAcc accumulates a preview's counts and examples.
type previewAcc struct {
	customers, changed int64
	labels             map[string]*labelAcc
	alerts             map[string]*PreviewAlert
}

type labelAcc struct {
	customers   int64
	transitions map[[2]string]int64
	examples    []PreviewExample
}

func newPreviewAcc() *previewAcc {
	return &previewAcc{labels: map[string]*labelAcc{}, alerts: map[string]*PreviewAlert{}}
}

func (a *previewAcc) add(customer string, changes []domain.LabelChange, alerts []domain.Alert, loc *time.Location) {
	if len(changes) > 0 {
		a.changed++
	}
	for _, c := range changes {
		l := a.labels[c.Label]
		if l == nil {
			l = &labelAcc{transitions: map[[2]string]int64{}}
			a.labels[c.Label] = l
		}
		l.customers++
		l.transitions[[2]string{c.From, c.To}]++
		l.examples = keepExample(l.examples, PreviewExample{Customer: customer, From: c.From, To: c.To, Reason: c.ReasonZH, ReasonEN: c.ReasonEN})
	}
	for i := range alerts {
		al := &alerts[i]
		k := a.alerts[al.Kind]
		if k == nil {
			k = &PreviewAlert{Kind: al.Kind}
			a.alerts[al.Kind] = k
		}
		k.Count++
		ex := PreviewExample{Customer: customer, From: al.From, To: al.To, Reason: al.ReasonZH, ReasonEN: al.ReasonEN}
		if !al.DueAt.IsZero() {
			ex.DueAt = al.DueAt.In(loc).Format(time.RFC3339)
		}
		k.Examples = keepExample(k.Examples, ex)
	}
}

// keepExample adds e to the examples, sorted by customer, keeping the
// PreviewExamples smallest.
func keepExample(list []PreviewExample, e PreviewExample) []PreviewExample {
	i, _ := slices.BinarySearchFunc(list, e.Customer, func(x PreviewExample, c string) int { return strings.Compare(x.Customer, c) })
	if i >= PreviewExamples {
		return list
	}
	list = slices.Insert(list, i, e)
	if len(list) > PreviewExamples {
		list = list[:PreviewExamples]
	}
	return list
}

func (a *previewAcc) merge(b *previewAcc) {
	a.changed += b.changed
	for name, lb := range b.labels {
		la := a.labels[name]
		if la == nil {
			a.labels[name] = lb
			continue
		}
		la.customers += lb.customers
		for k, n := range lb.transitions {
			la.transitions[k] += n
		}
		for _, e := range lb.examples {
			la.examples = keepExample(la.examples, e)
		}
	}
	for kind, kb := range b.alerts {
		ka := a.alerts[kind]
		if ka == nil {
			a.alerts[kind] = kb
			continue
		}
		ka.Count += kb.Count
		for _, e := range kb.Examples {
			ka.Examples = keepExample(ka.Examples, e)
		}
	}
}

// report is the accumulated preview, labels and kinds in name order,
// transitions from the most frequent.
func (a *previewAcc) report() *PreviewReport {
	rep := &PreviewReport{Customers: a.customers, CustomersChanged: a.changed, Labels: []PreviewLabel{}, Alerts: []PreviewAlert{}}
	for _, name := range sortedKeys(a.labels) {
		l := a.labels[name]
		pl := PreviewLabel{Label: name, Customers: l.customers, Examples: l.examples}
		for k, n := range l.transitions {
			pl.Transitions = append(pl.Transitions, PreviewTransition{From: k[0], To: k[1], Customers: n})
		}
		slices.SortFunc(pl.Transitions, func(x, y PreviewTransition) int {
			if x.Customers != y.Customers {
				return int(y.Customers - x.Customers)
			}
			return strings.Compare(x.From+"\x00"+x.To, y.From+"\x00"+y.To)
		})
		rep.Labels = append(rep.Labels, pl)
	}
	for _, kind := range sortedKeys(a.alerts) {
		rep.Alerts = append(rep.Alerts, *a.alerts[kind])
	}
	return rep
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
