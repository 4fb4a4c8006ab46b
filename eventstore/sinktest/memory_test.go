package sinktest_test

import (
	"testing"

	"github.com/segments-dev/segments/eventstore/sinktest"
)

func TestTheMemorySinkConforms(t *testing.T) {
	sinktest.Run(t, func(*testing.T) sinktest.Open { return sinktest.NewMemoryStream(50).Open })
}
