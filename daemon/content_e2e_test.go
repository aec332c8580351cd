package daemon

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
)

// jsonEvent is the data of the JSON records these tests write: Key and I
// say which record it is (key:i), the rest is routed or filtered on.
type jsonEvent struct {
	Key      string         `json:"key"`
	I        int            `json:"i"`
	Type     string         `json:"type,omitempty"`
	Customer map[string]any `json:"customer,omitempty"`
	Amount   float64        `json:"amount"`
}

var eventTypes = []string{"order.created", "order.cancelled", "order.shipped"}

// orderEvent is record i of key: its type cycles through eventTypes, and
// every 7th has no type.
func orderEvent(key string, i int) jsonEvent {
	ev := jsonEvent{Key: key, I: i, Customer: map[string]any{"id": key}, Amount: float64(i) * 1.5}
	if i%7 != 6 {
		ev.Type = eventTypes[i%len(eventTypes)]
	}
	return ev
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeEvents parses the messages' data as jsonEvents.
func decodeEvents(t testing.TB, msgs []*nats.Msg) []jsonEvent {
	t.Helper()
	out := make([]jsonEvent, len(msgs))
	for i, m := range msgs {
		if err := json.Unmarshal(m.Data, &out[i]); err != nil {
			t.Fatalf("message on %s: data %q: %v", m.Subject, m.Data, err)
		}
	}
	return out
}

// checkInOrder fails unless events holds, for every key, exactly the
// records want(key) lists, once each and in that order.
func checkInOrder(t testing.TB, events []jsonEvent, keys []string, want func(key string) []int) {
	t.Helper()
	got := map[string][]int{}
	for _, ev := range events {
		got[ev.Key] = append(got[ev.Key], ev.I)
	}
	for _, k := range keys {
		if w := want(k); fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Fatalf("key %s: records %v, want %v", k, got[k], w)
		}
	}
}

func TestRunRoutesBySubjectFromData(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("orders", 2); err != nil {
		t.Fatal(err)
	}
	keys := []string{"c-1", "c-2", "c.3", "c 4"}
	const n = 30
	put := func(from, to int) {
		for i := from; i < to; i++ {
			for _, k := range keys {
				if _, _, err := e.Emu.PutRecord("orders", k, mustJSON(t, orderEvent(k, i))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	put(0, n/2)
	// Data that is not JSON, and JSON that is not an object.
	for _, data := range []string{"plain text", `["order.created"]`, `{"type":"order.created"`} {
		if _, _, err := e.Emu.PutRecord("orders", "odd", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	stop := e.run(e.config(false, `  - name: orders
    subject: "orders.{data.type}.{data.customer.id}"
    subject_fallback: none`))
	put(n/2, n)
	total := len(keys)*n + 3
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return len(e.Msgs.OnSubject("orders.")) >= total })

	// A subscriber on orders.created.> gets exactly the created orders, in
	// key order, each key on its own token (escaped).
	created := e.Msgs.OnSubject("orders.order%2Ecreated.")
	for _, m := range created {
		var ev jsonEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if want := "orders.order%2Ecreated." + escapeToken(ev.Key); m.Subject != want {
			t.Fatalf("record %s:%d on %s, want %s", ev.Key, ev.I, m.Subject, want)
		}
	}
	checkInOrder(t, decodeEvents(t, created), keys, func(string) []int {
		var w []int
		for i := 0; i < n; i++ {
			if i%7 != 6 && eventTypes[i%len(eventTypes)] == "order.created" {
				w = append(w, i)
			}
		}
		return w
	})
	// The records without a type are on the fallback token.
	untyped := e.Msgs.OnSubject("orders.none.")
	var events []jsonEvent
	odd := 0
	for _, m := range untyped {
		if m.Subject == "orders.none.none" {
			odd++
			continue
		}
		events = append(events, decodeEvents(t, []*nats.Msg{m})...)
	}
	checkInOrder(t, events, keys, func(string) []int { return []int{6, 13, 20, 27} })
	if odd != 3 {
		t.Fatalf("%d records on orders.none.none, want the 3 that are not a JSON object", odd)
	}
	if all := len(e.Msgs.OnSubject("orders.")); all != total {
		t.Fatalf("%d messages, want %d", all, total)
	}
	st := e.d.pub.StreamStats()["orders"]
	if want := uint64(len(keys)*4 + 3); st.SubjectFallbacks != want {
		t.Fatalf("subject fallbacks %d, want %d", st.SubjectFallbacks, want)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// escapeToken is a subject token for s, as the relay escapes it.
func escapeToken(s string) string {
	out := ""
	for _, c := range []byte(s) {
		switch {
		case c == '.' || c == ' ' || c == '*' || c == '>' || c == '%':
			out += fmt.Sprintf("%%%02X", c)
		default:
			out += string(c)
		}
	}
	return out
}
