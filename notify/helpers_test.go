package notify

import (
	"os"
	"testing"
)

func createTemp(t *testing.T) (*os.File, error) { return os.CreateTemp(t.TempDir(), "secret") }
