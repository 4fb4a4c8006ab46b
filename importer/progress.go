package importer

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// BarProgress draws a progress bar (for a terminal).
type BarProgress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

// NewBarProgress returns a progress bar writing to w.
func NewBarProgress(w io.Writer) *BarProgress { return &BarProgress{w: w} }

// Start implements Progress.
func (p *BarProgress) Start(total int) {
	p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription("导入 importing"), progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("rows"), progressbar.OptionShowIts(),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionOnCompletion(func() { _, _ = fmt.Fprintln(p.w) }))
}

// Add implements Progress.
func (p *BarProgress) Add(rows int) { _ = p.bar.Add(rows) }

// Finish implements Progress.
func (p *BarProgress) Finish() { _ = p.bar.Finish() }

// LineProgress writes a plain line at most once per interval (for logs and
// pipes, where a bar's control characters would be noise).
type LineProgress struct {
	w        io.Writer
	interval time.Duration
	mu       sync.Mutex
	total    int
	done     int
	last     time.Time
}

// NewLineProgress returns a LineProgress writing to w every interval.
func NewLineProgress(w io.Writer, interval time.Duration) *LineProgress {
	return &LineProgress{w: w, interval: interval}
}

// Start implements Progress.
func (p *LineProgress) Start(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total, p.last = total, time.Now()
	_, _ = fmt.Fprintf(p.w, "导入 importing: 0/%d rows\n", total)
}

// Add implements Progress.
func (p *LineProgress) Add(rows int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += rows
	if now := time.Now(); now.Sub(p.last) >= p.interval {
		p.last = now
		_, _ = fmt.Fprintf(p.w, "导入 importing: %d/%d rows\n", p.done, p.total)
	}
}

// Finish implements Progress.
func (p *LineProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = fmt.Fprintf(p.w, "导入 importing: %d/%d rows, done\n", p.done, p.total)
}

// Done returns the rows handled so far and the total.
func (p *LineProgress) Done() (done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done, p.total
}
