package importer_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/segments-dev/segments/internal/fixturegen"
)

var update = flag.Bool("update", false, "rewrite importer/testdata from internal/fixturegen")

// The committed fixtures are what the generator writes today: a change of
// the generator is a change of the fixtures, made with -update.
func TestFixturesAreCurrent(t *testing.T) {
	if *update {
		if err := fixturegen.WriteSet("testdata"); err != nil {
			t.Fatal(err)
		}
	}
	fresh := t.TempDir()
	if err := fixturegen.WriteSet(fresh); err != nil {
		t.Fatal(err)
	}
	for _, f := range fixturegen.Set {
		want, err := os.ReadFile(filepath.Join(fresh, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("testdata", f.Name))
		if err != nil {
			t.Errorf("%s: %v (run go test ./importer -run TestFixturesAreCurrent -update)", f.Name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/%s differs from what internal/fixturegen writes (run go test ./importer -run TestFixturesAreCurrent -update)", f.Name)
		}
	}
}
