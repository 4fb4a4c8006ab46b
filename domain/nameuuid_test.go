package domain

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"pgregory.net/rapid"
)

// The allocation-free name-based ids are the ids uuid.NewSHA1 gives for the
// keys they always had: stored ids (streams, label changes, alerts) must not
// change.
func TestNameUUIDsMatchUUIDNewSHA1(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		text := func(label string) string {
			// Mostly short, sometimes past the stack buffer; any UTF-8.
			if rapid.IntRange(0, 9).Draw(t, label+"-long") == 0 {
				return strings.Repeat(rapid.String().Draw(t, label), 20) + rapid.StringN(200, 400, -1).Draw(t, label+"-tail")
			}
			return rapid.String().Draw(t, label)
		}
		code := CustomerCode(text("code"))
		if got, want := code.StreamID(), uuid.NewSHA1(customerStreamNamespace, []byte(code)); got != want {
			t.Fatalf("StreamID(%q) = %s, want %s", code, got, want)
		}

		at := time.Unix(0, rapid.Int64().Draw(t, "at"))
		kind := text("kind")
		want := uuid.NewSHA1(alertNamespace, []byte(string(code)+"\x00"+kind+"\x00"+strconv.FormatInt(at.UnixNano(), 10)))
		if got := AlertID(code, kind, at); got != want {
			t.Fatalf("AlertID = %s, want %s", got, want)
		}

		var ev uuid.UUID
		copy(ev[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "event"))
		c := LabelChange{Customer: code, Label: text("label"), Cause: CauseKind(text("cause")), EventID: ev,
			RuleVersion: rapid.Int().Draw(t, "rules"), To: text("to"), At: at}
		key := string(c.Customer) + "\x00" + c.Label + "\x00" + string(c.Cause) + "\x00" + c.EventID.String() +
			"\x00" + strconv.Itoa(c.RuleVersion) + "\x00" + c.To + "\x00" + strconv.FormatInt(c.At.UnixNano(), 10)
		if got, want := changeID(&c), uuid.NewSHA1(changeNamespace, []byte(key)); got != want {
			t.Fatalf("changeID = %s, want %s", got, want)
		}
	})
}

func TestNameUUIDsDoNotAllocate(t *testing.T) {
	code := CustomerCode("KH202405010001")
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	c := LabelChange{Customer: code, Label: LabelValueTier, Cause: CauseEvent, EventID: uuid.New(), RuleVersion: 1, To: "strategic", At: at}
	var sink uuid.UUID
	if n := testing.AllocsPerRun(100, func() {
		sink = code.StreamID()
		sink = AlertID(code, "activity_dropped", at)
		sink = changeID(&c)
	}); n != 0 {
		t.Errorf("%v allocations per three ids, want 0", n)
	}
	_ = sink
}
