package domain

import (
	"cmp"
	_ "embed" // the default rule set ships inside the binary
	"errors"
	"fmt"
	"slices"

	"github.com/goccy/go-yaml"
)

type rulesFile struct {
	Versions []versionConfig `yaml:"versions"`
}

type versionConfig struct {
	Version         int                    `yaml:"version"`
	EffectiveAt     string                 `yaml:"effective_at"`
	TimeZone        *string                `yaml:"time_zone"`
	Windows         *windowsConfig         `yaml:"windows"`
	ValueTiers      []tierConfig           `yaml:"value_tiers"`
	Activity        *activityConfig        `yaml:"activity"`
	Lifecycle       map[string]string      `yaml:"lifecycle"`
	NeedOrientation *needConfig            `yaml:"need_orientation"`
	Tags            []tagConfig            `yaml:"tags"`
	Labels          []labelConfig          `yaml:"labels"`
	Remove          *removeConfig          `yaml:"remove"`
	Alerts          map[string]alertConfig `yaml:"alerts"`
	BusinessDays    []string               `yaml:"business_days"`
}

// removeConfig names what a version drops from the previous one: tags merge
// by name, so dropping one must be said.
type removeConfig struct {
	Tags   []string `yaml:"tags"`
	Labels []string `yaml:"labels"`
}

type windowsConfig struct {
	ShortMonths int    `yaml:"short_months"`
	LongMonths  int    `yaml:"long_months"`
	Short       string `yaml:"short"` // a duration such as 30s: replaces short_months
	Long        string `yaml:"long"`  // a duration: replaces long_months
}

type tierConfig struct {
	Value        string `yaml:"value"`
	Display      string `yaml:"display"`
	Short        string `yaml:"short"`
	MinNetAmount string `yaml:"min_net_amount"`
}

type activityLevel struct {
	Display   string `yaml:"display"`
	MinOrders *int64 `yaml:"min_orders"`
}

type activityConfig struct {
	High   activityLevel `yaml:"high"`
	Medium activityLevel `yaml:"medium"`
	Low    activityLevel `yaml:"low"`
}

type needConfig struct {
	Display  map[string]string `yaml:"display"`
	Keywords []struct {
		Keyword     string `yaml:"keyword"`
		Orientation string `yaml:"orientation"`
	} `yaml:"keywords"`
}

type tagConfig struct {
	Name     string `yaml:"name"`
	Display  string `yaml:"display"`
	When     string `yaml:"when"`
	Reason   string `yaml:"reason"`
	ReasonEN string `yaml:"reason_en"`
	Alert    string `yaml:"alert"` // an alert kind raised when the tag is gained
}

type alertConfig struct {
	Display         string `yaml:"display"`
	Due             string `yaml:"due"`
	DueBusinessDays int    `yaml:"due_business_days"`
	Playbook        string `yaml:"playbook"`
}

// builtInVersion is the last version of the embedded default rules file as
// written (that file names every setting).
func builtInVersion() (*versionConfig, error) {
	var f rulesFile
	if err := yaml.UnmarshalWithOptions(defaultRulesYAML, &f, yaml.Strict()); err != nil || len(f.Versions) == 0 {
		return nil, fmt.Errorf("built-in rules: %w", cmp.Or(err, errors.New("no version")))
	}
	return &f.Versions[len(f.Versions)-1], nil
}

// inherit fills what v leaves out from the previous version. Tags merge by
// name (mergeTags); every other setting v names replaces the previous one.
func (p *rulesParser) inherit(v, prev versionConfig, at string) (versionConfig, error) {
	tags, err := p.mergeTags(prev.Tags, v.Tags, v.Remove, at)
	if err != nil {
		return v, err
	}
	labels, err := p.mergeLabels(prev.Labels, v.Labels, v.Remove, at)
	if err != nil {
		return v, err
	}
	v.Tags, v.Labels, v.Remove = tags, labels, nil
	v.Alerts = mergeAlerts(prev.Alerts, v.Alerts)
	if v.TimeZone == nil {
		v.TimeZone = prev.TimeZone
	}
	if v.Windows == nil {
		v.Windows = prev.Windows
	}
	if v.ValueTiers == nil {
		v.ValueTiers = prev.ValueTiers
	}
	if v.Activity == nil {
		v.Activity = prev.Activity
	}
	if v.Lifecycle == nil {
		v.Lifecycle = prev.Lifecycle
	}
	if v.NeedOrientation == nil {
		v.NeedOrientation = prev.NeedOrientation
	}
	if v.BusinessDays == nil {
		v.BusinessDays = prev.BusinessDays
	}
	return v, nil
}

// mergeTags is a version's tags: the previous version's, each replaced by the
// tag of the same name that this version names (fields it leaves empty are
// the previous tag's), then this version's new tags in its order, less those
// its remove list names. Naming tags never drops the others.
func (p *rulesParser) mergeTags(prev, named []tagConfig, remove *removeConfig, at string) ([]tagConfig, error) {
	drop := map[string]bool{}
	if remove != nil {
		for i, name := range remove.Tags {
			if !slices.ContainsFunc(prev, func(t tagConfig) bool { return t.Name == name }) {
				return nil, p.errf(fmt.Sprintf("%s.remove.tags[%d]", at, i), "the previous version has no tag %q", name)
			}
			drop[name] = true
		}
	}
	merged := slices.Clone(prev)
	for i, t := range named {
		if drop[t.Name] {
			return nil, p.errf(fmt.Sprintf("%s.tags[%d]", at, i), "tag %q is both named and removed", t.Name)
		}
		j := slices.IndexFunc(merged, func(m tagConfig) bool { return m.Name == t.Name })
		if j < 0 {
			merged = append(merged, t)
			continue
		}
		old := merged[j]
		for _, f := range []struct {
			dst *string
			src string
		}{
			{&old.Display, t.Display}, {&old.When, t.When}, {&old.Reason, t.Reason}, {&old.ReasonEN, t.ReasonEN}, {&old.Alert, t.Alert},
		} {
			if f.src != "" {
				*f.dst = f.src
			}
		}
		merged[j] = old
	}
	return slices.DeleteFunc(merged, func(t tagConfig) bool { return drop[t.Name] }), nil
}
