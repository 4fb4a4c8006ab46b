package notify

import (
	"errors"
	"fmt"
	"os"

	"github.com/goccy/go-yaml"
)

// RouteRef is a name of the rules that a route matches on: an alert kind,
// a value tier or a tag. A rules version may not remove it (segmentd checks
// the rules against the routes file before either takes effect).
type RouteRef struct {
	Field string // "kind", "value_tier" or "tags"
	Value string
	Route string
	// Where is "file line N (routes[i].match.field[j])".
	Where string
}

// ReadRouteRefs lists what the routes of a routes file match on. It reads
// only the routes (no secrets are looked up); a file that does not parse is
// a *ConfigError.
func ReadRouteRefs(path string) ([]RouteRef, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the routes file
	if err != nil {
		return nil, fmt.Errorf("SEGMENTS_NOTIFY: %w", err)
	}
	var f struct {
		Routes []routeConfig `yaml:"routes"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		ce := &ConfigError{File: path, Field: "$", Message: yaml.FormatError(err, false, false)}
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil {
			ce.Line = ye.GetToken().Position.Line
		}
		return nil, ce
	}
	p := &configParser{name: path, data: data}
	var refs []RouteRef
	for i, rc := range f.Routes {
		name := rc.Name
		if name == "" {
			name = fmt.Sprintf("routes[%d]", i)
		}
		for _, m := range []struct {
			field  string
			values []string
		}{{"kind", rc.Match.Kind}, {"value_tier", rc.Match.ValueTier}, {"tags", rc.Match.Tags}} {
			for j, v := range m.values {
				field := fmt.Sprintf("routes[%d].match.%s[%d]", i, m.field, j)
				refs = append(refs, RouteRef{Field: m.field, Value: v, Route: name,
					Where: fmt.Sprintf("notify route %q (%s line %d, %s)", name, path, p.line("$."+field), field)})
			}
		}
	}
	return refs, nil
}
