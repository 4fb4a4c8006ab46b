package projectorload

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/projections"
)

// The scheduler scenario needs N customers whose next boundary instants are
// spread so that ~300 come due per second. Projecting N customers through
// the log would take longer than the measurement, so the customers are
// cloned from one template customer the projector itself produced:
//
//   - rules: the default rule set with fixed-duration windows (short 3h,
//     long 6h; domain.ParseRules);
//   - template: CustomerRegistered (complete profile) and OrderPlaced
//     (occurred 1 h before recording) appended through the store with its
//     clock set to R0 = T0 − 2h, then Projector.Apply: the order leaves the
//     short window at T0, its stored next_at;
//   - clone i: the template's row with every instant in the projection
//     document (and evaluated_at, next_at) shifted by d_i ∈ [0, N/300 s)
//     and the customer code replaced: the row the projector would have
//     written for the same events d_i later. The document is edited as
//     JSON (projections.DocumentJSON) and stored in its binary form
//     (projections.DocumentFromJSON). Rows are inserted with COPY;
//   - check: three customers are also created through the store and the
//     projector at known shifts and compared with their clones (documents
//     equal except the encrypted contact fields, which depend on the
//     customer's data key).
//
// At each boundary the scheduler records activity medium → low and the
// segment change (cause time) and raises activity_dropped (due 24 h).

const (
	schedShort = 3 * time.Hour
	schedLong  = 6 * time.Hour
)

func schedulerRules() (*domain.RuleBook, error) {
	y := string(domain.DefaultRulesYAML())
	y2 := regexp.MustCompile(`(?m)^(\s*)short_months:\s*3.*$`).ReplaceAllString(y, "${1}short: "+schedShort.String())
	y2 = regexp.MustCompile(`(?m)^(\s*)long_months:\s*6.*$`).ReplaceAllString(y2, "${1}long: "+schedLong.String())
	if y2 == y {
		return nil, errors.New("could not set the windows of the default rules")
	}
	return domain.ParseRules([]byte(y2))
}

// projRow is one row of customer_projections.
type projRow struct {
	customer                               string
	version                                int64
	ruleVersion                            int32
	evaluatedAt                            time.Time
	nextAt                                 *time.Time
	projection                             string // the document as JSON
	valueTier, activity, need, life, owner string
	tags                                   []string
	net, changes                           int64
}

const projCols = "customer, version, rule_version, evaluated_at, next_at, projection, value_tier, activity, need_orientation, lifecycle, tags, net_amount, owner, changes"

var copyCols = []string{"stream_id", "customer", "version", "rule_version", "evaluated_at", "next_at", "projection", "value_tier",
	"activity", "need_orientation", "lifecycle", "tags", "net_amount", "owner", "changes"}

func scanProjRow(row pgx.Row) (projRow, error) {
	var p projRow
	var raw []byte
	if err := row.Scan(&p.customer, &p.version, &p.ruleVersion, &p.evaluatedAt, &p.nextAt, &raw, &p.valueTier, &p.activity,
		&p.need, &p.life, &p.tags, &p.net, &p.owner, &p.changes); err != nil {
		return p, err
	}
	doc, err := projections.DocumentJSON(raw)
	p.projection = string(doc)
	return p, err
}

// template is a projection document cut into literal text and the string
// values that change from clone to clone (instants and the customer code).
type template struct {
	row   projRow
	parts []tmplPart
}

type tmplPart struct {
	text string    // literal text, or
	at   time.Time // an instant to shift, or
	code bool      // the customer code
}

func newTemplate(row projRow) (*template, error) {
	t := &template{row: row}
	s := row.projection
	last := 0
	times, codes := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] != '"' {
			continue
		}
		j := i + 1
		for j < len(s) && s[j] != '"' {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(s) {
			return nil, errors.New("template: unterminated string")
		}
		lit := s[i+1 : j]
		switch {
		case lit == row.customer:
			t.parts = append(t.parts, tmplPart{text: s[last : i+1]}, tmplPart{code: true})
			last = j
			codes++
		case len(lit) >= 20 && lit[4] == '-' && lit[10] == 'T':
			at, err := time.Parse(time.RFC3339Nano, lit)
			if err == nil {
				t.parts = append(t.parts, tmplPart{text: s[last : i+1]}, tmplPart{at: at})
				last = j
				times++
			}
		}
		i = j
	}
	t.parts = append(t.parts, tmplPart{text: s[last:]})
	if codes == 0 || times == 0 {
		return nil, fmt.Errorf("template: found %d customer codes and %d instants in the document", codes, times)
	}
	return t, nil
}

// clone returns the row of customer code shifted by d, and its document as
// JSON.
func (t *template) clone(code string, d time.Duration, buf *strings.Builder) ([]any, string, error) {
	buf.Reset()
	for _, p := range t.parts {
		switch {
		case p.code:
			buf.WriteString(code)
		case !p.at.IsZero():
			buf.WriteString(p.at.Add(d).Format(time.RFC3339Nano))
		default:
			buf.WriteString(p.text)
		}
	}
	doc, err := projections.DocumentFromJSON([]byte(buf.String()))
	if err != nil {
		return nil, "", err
	}
	r := &t.row
	next := r.nextAt.Add(d)
	return []any{domain.CustomerCode(code).StreamID(), code, r.version, r.ruleVersion, r.evaluatedAt.Add(d), next, doc,
		r.valueTier, r.activity, r.need, r.life, r.tags, r.net, r.owner, r.changes}, buf.String(), nil
}

// latenessRecorder is the scheduler's metrics: per-customer lateness.
type latenessRecorder struct {
	mu   sync.Mutex
	at   []time.Time
	late []float64
}

func (l *latenessRecorder) BoundaryLateness(seconds float64) {
	l.mu.Lock()
	l.at = append(l.at, time.Now())
	l.late = append(l.late, seconds)
	l.mu.Unlock()
}

// window returns the lateness of boundaries whose instant lies in [from, to).
func (l *latenessRecorder) window(from, to time.Time) []float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []float64
	for i, at := range l.at {
		due := at.Add(-time.Duration(l.late[i] * float64(time.Second)))
		if !due.Before(from) && due.Before(to) {
			out = append(out, l.late[i])
		}
	}
	return out
}

type schedResult struct {
	n              int
	popRate        float64
	liveHeap       int64
	maxRSS, maxHep int64
}

func (r *runner) runScheduler(ctx context.Context) error {
	book, err := schedulerRules()
	if err != nil {
		return err
	}
	popRate := 8000.0 // rows/s, a cautious first guess; measured after the first size
	var res []schedResult
	for _, n := range r.o.schedSizes {
		if ctx.Err() != nil {
			break
		}
		s, err := r.schedulerSize(ctx, book, n, popRate)
		if err != nil {
			return fmt.Errorf("%d customers: %w", n, err)
		}
		popRate = s.popRate
		res = append(res, s)
	}
	if len(res) >= 2 {
		a, b := res[0], res[len(res)-1]
		r.add("scheduler", fmt.Sprintf("memory growth %s → %s customers: peak RSS", grouped(float64(a.n)), grouped(float64(b.n))),
			fmt.Sprintf("%+.0f", float64(b.maxRSS-a.maxRSS)/(1<<20)), "MiB", "independent of N",
			metIf(b.maxRSS-a.maxRSS < 32<<20, fmt.Sprintf("(%s vs %s)", mib(a.maxRSS), mib(b.maxRSS))))
		r.add("scheduler", "  live Go heap after the busy window", fmt.Sprintf("%+.1f", float64(b.liveHeap-a.liveHeap)/(1<<20)), "MiB",
			"", fmt.Sprintf("(%.1f vs %.1f MiB)", float64(a.liveHeap)/(1<<20), float64(b.liveHeap)/(1<<20)))
	}
	return nil
}

func (r *runner) schedulerSize(ctx context.Context, book *domain.RuleBook, n int, popRate float64) (schedResult, error) {
	o := r.o
	res := schedResult{n: n}
	freeMemory()
	r.waitQuiet(ctx, "")
	window := time.Duration(float64(n) / o.schedRate * float64(time.Second))
	if window > 110*time.Minute {
		return res, fmt.Errorf("%d customers at %.0f/s span %s; the clones' recorded_at would lie in the future", n, o.schedRate, window)
	}
	margin := o.schedIdle + 15*time.Second + time.Duration(1.5*float64(n)/popRate*float64(time.Second))
	t0 := time.Now().Add(margin).Truncate(time.Millisecond)
	r0 := t0.Add(-2 * time.Hour)
	fmt.Printf("  %s customers: boundaries from %s over %s (%.0f/s); population budget %s\n",
		grouped(float64(n)), t0.Format("15:04:05.000"), window.Round(time.Second), o.schedRate, (margin - o.schedIdle).Round(time.Second))

	var clock atomic.Pointer[time.Time]
	clock.Store(&r0)
	svc, err := r.newService(ctx, func() time.Time { return *clock.Load() }, book)
	if err != nil {
		return res, err
	}
	defer svc.close(ctx)
	proj := svc.proj
	mk := func(code string, d time.Duration) (projRow, error) {
		at := r0.Add(d)
		clock.Store(&at)
		name, industry, owner := "模板客户有限公司", "制造业-电子元件", "张伟"
		cname, phone, email := "王经理", "13800000000", "wang@example.com"
		req := domain.AppendRequest{Batch: true, Events: []domain.Envelope{
			{Type: domain.TypeCustomerRegistered, Customer: domain.CustomerCode(code), OccurredAt: at.Add(-2 * time.Hour), Data: &domain.CustomerRegistered{Profile: domain.Profile{
				Name: &name, Industry: &industry, Owner: &owner, Contact: &domain.Contact{Name: &cname, Phone: &phone, Email: &email}}}},
			{Type: domain.TypeOrderPlaced, Customer: domain.CustomerCode(code), OccurredAt: at.Add(-time.Hour), Data: &domain.OrderPlaced{
				OrderID: "T-1", Amount: 5_000_000, Category: "电子元件", Channel: domain.ChannelOffline}},
		}}
		if err := validate(req.Events, at); err != nil {
			return projRow{}, err
		}
		if _, err := svc.store.Append(ctx, req); err != nil {
			return projRow{}, err
		}
		id := domain.CustomerCode(code).StreamID()
		if _, err := proj.Apply(ctx, []uuid.UUID{id}); err != nil {
			return projRow{}, err
		}
		return scanProjRow(svc.pool.QueryRow(ctx, "SELECT "+projCols+" FROM customer_projections WHERE stream_id = $1", id))
	}
	tmplRow, err := mk("ST0000000", 0)
	if err != nil {
		return res, fmt.Errorf("template customer: %w", err)
	}
	if tmplRow.nextAt == nil || !tmplRow.nextAt.Equal(t0) {
		return res, fmt.Errorf("template customer's next_at is %v, want %v", tmplRow.nextAt, t0)
	}
	tmpl, err := newTemplate(tmplRow)
	if err != nil {
		return res, err
	}
	// Check the cloning against customers made by the projector itself.
	var sb strings.Builder
	for k, frac := range []float64{0.25, 0.5, 0.9} {
		d := time.Duration(frac * float64(window)).Truncate(time.Microsecond)
		code := fmt.Sprintf("SV%07d", k)
		built, err := mk(code, d)
		if err != nil {
			return res, fmt.Errorf("check customer: %w", err)
		}
		c, cloneDoc, err := tmpl.clone(code, d, &sb)
		if err != nil {
			return res, err
		}
		var same, sameCols bool
		err = svc.pool.QueryRow(ctx, `SELECT ($10::jsonb #- '{state,profile,contact}') = ($1::jsonb #- '{state,profile,contact}'),
				p.evaluated_at = $2 AND p.next_at = $3 AND p.version = $4 AND p.value_tier = $5 AND p.activity = $6 AND p.tags = $7 AND p.changes = $8
			FROM customer_projections p WHERE stream_id = $9`, cloneDoc, c[4], c[5], c[2], c[7], c[8], c[11], c[14], c[0], built.projection).Scan(&same, &sameCols)
		if err != nil {
			return res, err
		}
		if !same || !sameCols {
			return res, fmt.Errorf("a clone differs from the projector's own row for %s (document equal: %v, columns equal: %v)\n projector: %s\n clone:     %s",
				code, same, sameCols, built.projection, cloneDoc)
		}
	}
	fmt.Printf("  template checked: clones equal the projector's own rows for 3 customers (document without the encrypted contact, and columns)\n")

	// Populate with COPY from two connections.
	popStart := time.Now()
	const writers = 2
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), uint64(w))) //nolint:gosec // G404: load data
			lo, hi := w*n/writers, (w+1)*n/writers
			i := lo
			var buf strings.Builder
			_, errs[w] = svc.pool.CopyFrom(ctx, pgx.Identifier{"customer_projections"}, copyCols, pgx.CopyFromFunc(func() ([]any, error) {
				if i >= hi {
					return nil, nil
				}
				d := time.Duration(rng.Int64N(int64(window))).Truncate(time.Microsecond)
				row, _, err := tmpl.clone(fmt.Sprintf("SC%07d", i), d, &buf)
				i++
				return row, err
			}))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("populate: %w", err)
	}
	copyTook := time.Since(popStart)
	if _, err := svc.pool.Exec(ctx, "VACUUM (ANALYZE) customer_projections"); err != nil {
		return res, err
	}
	popTook := time.Since(popStart)
	res.popRate = float64(n) / popTook.Seconds()
	var size int64
	_ = svc.pool.QueryRow(ctx, "SELECT pg_total_relation_size('customer_projections')").Scan(&size)
	fmt.Printf("  populated %s rows by COPY in %.1f s, VACUUM ANALYZE %.1f s (%.0f rows/s); table with indexes %s\n",
		grouped(float64(n)), copyTook.Seconds(), (popTook - copyTook).Seconds(), res.popRate, mib(size))
	if lead := time.Until(t0); lead < o.schedIdle/2 {
		r.note("scheduler %s: population ended %.1f s before the first boundary (wanted %s); the idle window is short", grouped(float64(n)), lead.Seconds(), o.schedIdle)
	}
	busyEnd := t0.Add(o.schedBusy)
	var expected int64
	if err := svc.pool.QueryRow(ctx, "SELECT count(*) FROM customer_projections WHERE next_at >= $1 AND next_at < $2", t0, busyEnd).Scan(&expected); err != nil {
		return res, err
	}

	// Run the scheduler on the real clock.
	freeMemory()
	lat := &latenessRecorder{}
	sched := projections.NewScheduler(proj, time.Now, r.log, lat)
	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		if err := sched.Run(schedCtx); err != nil && !errors.Is(err, context.Canceled) {
			r.log.Error("scheduler stopped", "err", err)
		}
	}()
	defer func() { stopSched(); <-schedDone }()
	if !sleepUntil(ctx, time.Now().Add(time.Second)) {
		return res, ctx.Err()
	}
	label := grouped(float64(n))
	if idleEnd := t0.Add(-500 * time.Millisecond); time.Until(idleEnd) > 2*time.Second {
		q0 := svc.qc.Sent.Load()
		ph := r.beginSampling(ctx, fmt.Sprintf("scheduler-%d-idle", n), svc.name, 0)
		if !sleepUntil(ctx, idleEnd) {
			return res, ctx.Err()
		}
		st := ph.end(ctx)
		q := svc.qc.Sent.Load() - q0
		secs := st.cpu.Secs
		r.add("scheduler", fmt.Sprintf("%s customers: idle %.0f s before the first boundary, CPU of this process", label, secs),
			f2(1000*st.cpu.SelfSecs/secs), "ms CPU/s", "≈ 0", metIf(st.cpu.SelfSecs/secs < 0.005, fmt.Sprintf("(%.3f s in %.0f s)", st.cpu.SelfSecs, secs)))
		r.add("scheduler", "  idle: CPU of this run's PostgreSQL backends", f2(1000*st.cpu.PGMineSecs/secs), "ms CPU/s", "≈ 0", fmt.Sprintf("(%.2f s in %.0f s)", st.cpu.PGMineSecs, secs))
		r.add("scheduler", "  idle: statements sent by the scheduler", grouped(float64(q)), "statements", "", "")
	}
	if !sleepUntil(ctx, t0) {
		return res, ctx.Err()
	}
	ph := r.begin(ctx, fmt.Sprintf("scheduler-%d-busy", n), svc.name)
	if !sleepUntil(ctx, busyEnd) {
		return res, ctx.Err()
	}
	// Boundaries just before busyEnd are still being processed: give them a
	// moment before closing the window's accounting.
	_ = sleepUntil(ctx, time.Now().Add(2*time.Second))
	st := ph.end(ctx)
	stopSched()
	<-schedDone
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.liveHeap = int64(ms.HeapAlloc) //nolint:gosec // G115: heap sizes fit in int64
	res.maxRSS, res.maxHep = st.maxRSS, st.maxHeap

	lates := lat.window(t0, busyEnd)
	slices.Sort(lates)
	var processed, wrongAt int64
	if err := svc.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
			SELECT 1 FROM label_changes c WHERE c.stream_id = p.stream_id AND c.label = 'activity' AND c.cause_kind = 'time' AND c.at = p.evaluated_at))
		FROM customer_projections p WHERE p.evaluated_at >= $1 AND p.evaluated_at < $2`, t0, busyEnd).Scan(&processed, &wrongAt); err != nil {
		return res, err
	}
	rate := float64(len(lates)) / o.schedBusy.Seconds()
	r.add("scheduler", fmt.Sprintf("%s customers: boundaries advanced in %.0f s", label, o.schedBusy.Seconds()), grouped(float64(len(lates))), "customers",
		"", fmt.Sprintf("(%.0f/s; %d due, %d advanced in the database)", rate, expected, processed))
	if len(lates) > 0 {
		p99 := percentile(lates, 0.99)
		r.add("scheduler", "  lateness (processing − boundary) p50", f1(1000*percentile(lates, 0.5)), "ms", "", "")
		r.add("scheduler", "  lateness p99", f1(1000*p99), "ms", "≤ 1000", metIf(p99 <= 1 && int64(len(lates)) >= expected*98/100, ""))
		r.add("scheduler", "  lateness max", f1(1000*lates[len(lates)-1]), "ms", "", "")
	}
	r.add("scheduler", "  busy: CPU this process / this run's PostgreSQL backends", f2(st.cpu.Self)+" / "+f2(st.cpu.PGMine), "cores", "", "")
	r.add("scheduler", "  busy: peak RSS / peak Go heap in use", f0(float64(st.maxRSS)/(1<<20))+" / "+f0(float64(st.maxHeap)/(1<<20)), "MiB", "", "")
	r.note("scheduler %s: %d boundaries due in the window, %d customers advanced (their activity change is stamped at the boundary for all but %d); %s",
		label, expected, processed, wrongAt, st.cpu)
	return res, nil
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
