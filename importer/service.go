package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Job states of an import started through the Service.
const (
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// MaxReportLines is how many report lines a job's status carries; the
// whole report stays in the job's directory.
const MaxReportLines = 1000

// JobStatus is what GET /v1/imports/{id} shows.
type JobStatus struct {
	ID        string    `json:"import_id"`
	File      string    `json:"file"`
	State     string    `json:"state"`
	RowsDone  int       `json:"rows_done"`
	RowsTotal int       `json:"rows_total"`
	Summary   *Summary  `json:"summary,omitempty"`
	Error     string    `json:"error,omitempty"`
	Report    []Problem `json:"report,omitempty"`
}

// Service runs imports uploaded over HTTP, one goroutine each, and keeps
// their status in memory (a restarted process forgets them; importing the
// file again is harmless: it stores nothing twice).
type Service struct {
	Dir      string // where uploads and reports are kept
	Store    Appender
	Location *time.Location
	Now      func() time.Time
	Logger   *slog.Logger

	mu   sync.Mutex
	jobs map[string]*job
}

type job struct {
	status   JobStatus
	progress *LineProgress
	report   string
}

// Start saves the upload and imports it in the background. The import id
// is the content hash of the upload (or name): the same file sent again
// returns the running or finished job instead of starting another.
func (s *Service) Start(ctx context.Context, filename, name string, body io.Reader) (string, error) {
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(s.Dir, "upload-*"+filepath.Ext(filepath.Base(filename)))
	if err != nil {
		return "", err
	}
	path := tmp.Name()
	_, err = io.Copy(tmp, body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", err
	}
	id := name
	if id == "" {
		if id, err = Identity(path); err != nil {
			return "", err
		}
	}
	if _, err := SniffFile(path); err != nil {
		_ = os.Remove(path)
		return "", err
	}
	s.mu.Lock()
	if s.jobs == nil {
		s.jobs = map[string]*job{}
	}
	if j, ok := s.jobs[id]; ok && j.status.State != JobFailed {
		s.mu.Unlock()
		_ = os.Remove(path)
		return id, nil
	}
	j := &job{status: JobStatus{ID: id, File: filepath.Base(filename), State: JobRunning},
		progress: NewLineProgress(io.Discard, time.Hour), report: path + ".report.csv"}
	s.jobs[id] = j
	s.mu.Unlock()
	go s.run(context.WithoutCancel(ctx), j, path, id)
	return id, nil
}

func (s *Service) run(ctx context.Context, j *job, path, id string) {
	sum, err := Run(ctx, Options{Path: path, Name: id, Location: s.Location, Now: s.Now, Store: s.Store,
		Progress: j.progress, ReportPath: j.report})
	lines, rerr := ReadReport(j.report, MaxReportLines)
	s.mu.Lock()
	defer s.mu.Unlock()
	sum.File, sum.ReportPath = j.status.File, ""
	j.status.Summary, j.status.Report = &sum, lines
	j.status.State = JobDone
	if err == nil {
		err = rerr
	}
	if err != nil {
		j.status.State, j.status.Error = JobFailed, err.Error()
		if s.Logger != nil {
			s.Logger.Warn("import failed", "import", id, "err", err)
		}
	}
}

// ErrNoImport: no import with that id in this process.
var ErrNoImport = errors.New("no such import")

// Status returns a job's progress and, when finished, its summary and report.
func (s *Service) Status(id string) (JobStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return JobStatus{}, fmt.Errorf("%w: %s", ErrNoImport, id)
	}
	st := j.status
	st.RowsDone, st.RowsTotal = j.progress.Done()
	return st, nil
}
