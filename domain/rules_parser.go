package domain

import (
	"cmp"
	"crypto/sha256"
	_ "embed" // the default rule set ships inside the binary
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/goccy/go-yaml/ast"

	"github.com/segments-dev/segments/internal/yamlpos"
)

// RulesError is a problem in a rules file: the file, its line when known
// and the field (a YAML path).
type RulesError struct {
	File    string
	Line    int
	Path    string
	Message string
}

func (e *RulesError) Error() string {
	file := cmp.Or(e.File, "rules")
	if e.Line > 0 {
		return fmt.Sprintf("%s line %d (%s): %s", file, e.Line, e.Path, e.Message)
	}
	return fmt.Sprintf("%s (%s): %s", file, e.Path, e.Message)
}

// ErrRules is wrapped by every error of ParseRules.
var ErrRules = errors.New("invalid rules")

func (e *RulesError) Unwrap() error { return ErrRules }

type rulesParser struct {
	data []byte
	file string
	// written is the version being built as the file states it (without
	// what it inherits), for the paths of its tags and labels.
	written *versionConfig
}

// entryPath is the path of the tag or label named name in the version as
// written: the merged list's order is not the file's, and an inherited
// entry is not in the version at all (its path is then the version's).
// A name given twice is found at its nth (0-based) entry.
func (p *rulesParser) entryPath(at, list, name string, nth ...int) string {
	var names []string
	if p.written != nil {
		switch list {
		case "tags":
			for _, t := range p.written.Tags {
				names = append(names, t.Name)
			}
		case "labels":
			for _, l := range p.written.Labels {
				names = append(names, l.Name)
			}
		}
	}
	skip := 0
	if len(nth) > 0 {
		skip = nth[0]
	}
	for i, n := range names {
		if n == name {
			if skip == 0 {
				return fmt.Sprintf("%s.%s[%d]", at, list, i)
			}
			skip--
		}
	}
	return at
}

// describe sets a version's Source, Definition and Hash from what the file
// states for it (not what it inherits: earlier versions are recorded too).
func (p *rulesParser) describe(rs *RuleSet, written any, at string) error {
	def, err := json.Marshal(written)
	if err != nil {
		return p.errf(at, "cannot encode the version: %v", err)
	}
	sum := sha256.Sum256(def)
	rs.Definition, rs.Hash = string(def), hex.EncodeToString(sum[:])
	if node := p.node(at); node != nil {
		rs.Source = node.String()
	}
	return nil
}

func (p *rulesParser) errf(path, format string, args ...any) error {
	return &RulesError{File: p.file, Line: p.line(path), Path: path, Message: fmt.Sprintf(format, args...)}
}

// line finds the line of a YAML path (yamlpos.Line).
func (p *rulesParser) line(path string) int { return yamlpos.Line(p.data, path) }

func (p *rulesParser) node(path string) ast.Node { return yamlpos.Node(p.data, path) }
