package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// usageError: a command line that does not parse (or asks for help). The
// command's usage is printed with it: on standard output and exit 0 for
// -h/--help, on standard error and exit 2 otherwise.
type usageError struct {
	fs  *flag.FlagSet
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// newFlagSet is a command's flag set: its usage names the command and its
// arguments (synopsis), never another command's. Parse prints nothing;
// mainCode prints the usage where it belongs.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		w := fs.Output()
		_, _ = fmt.Fprintf(w, "Usage: segmentd %s %s\n", name, synopsis)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			_, _ = fmt.Fprintln(w, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a command's arguments; positional arguments are
// refused unless the command takes them (positional).
func parseFlags(fs *flag.FlagSet, args []string, positional bool) error {
	if err := fs.Parse(args); err != nil {
		return &usageError{fs: fs, err: err}
	}
	if !positional && fs.NArg() > 0 {
		return usageErrorf(fs, "unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

func usageErrorf(fs *flag.FlagSet, format string, args ...any) error {
	return &usageError{fs: fs, err: fmt.Errorf(format, args...)}
}

// Exit codes: 2 is a command line that does not parse (like the flag
// package's own), 1 any other failure.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// report prints err where it belongs and returns the exit code.
func report(err error, stdout, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if !errors.As(err, &ue) {
		_, _ = fmt.Fprintln(stderr, "segmentd:", err)
		return exitError
	}
	if errors.Is(err, flag.ErrHelp) {
		printUsage(ue.fs, stdout)
		return exitOK
	}
	_, _ = fmt.Fprintln(stderr, "segmentd:", err)
	printUsage(ue.fs, stderr)
	return exitUsage
}

// printUsage writes a command's usage (the subcommand list when fs is nil).
func printUsage(fs *flag.FlagSet, w io.Writer) {
	if fs == nil {
		_, _ = io.WriteString(w, usage)
		return
	}
	fs.SetOutput(w)
	fs.Usage()
	fs.SetOutput(io.Discard)
}
