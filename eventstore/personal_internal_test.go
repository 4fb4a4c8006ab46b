package eventstore

import (
	"testing"

	"github.com/segments-dev/segments/domain"
)

func TestEveryPersonalFieldHasItsOwnMask(t *testing.T) {
	for _, f := range domain.PersonalFields() {
		if _, ok := maskers[f]; !ok {
			t.Errorf("personal field %s has no masker (it would show as ***)", f)
		}
	}
	if len(maskers) != len(domain.PersonalFields()) {
		t.Errorf("%d maskers for %d personal fields", len(maskers), len(domain.PersonalFields()))
	}
}
