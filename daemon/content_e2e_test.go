package daemon

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/kpl"
	"github.com/fanoutd/fanoutd/record"
	"github.com/fanoutd/fanoutd/relay"
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

// putData writes records of the given data under key, in order.
func putData(t testing.TB, e *e2eEnv, stream, key string, data ...[]byte) {
	t.Helper()
	for _, d := range data {
		if _, _, err := e.Emu.PutRecord(stream, key, d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunGzipPayloadMixedWithPlainAndHostile(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("events", 1); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var want []string
	for i := 0; i < n; i++ {
		d := testutil.RecordData("k", i)
		want = append(want, string(d))
		switch {
		case i == 10: // a gzip bomb: 64 MiB of zeros in about 64 KiB
			putData(t, e, "events", "bomb", testutil.GzipBytes(make([]byte, 64<<20)))
		case i == 20: // a gzip whose body is corrupt
			bad := testutil.GzipBytes([]byte(strings.Repeat("corrupt me ", 100)))
			bad[len(bad)/2] ^= 0xff
			putData(t, e, "events", "corrupt", bad)
		}
		if i%2 == 0 {
			d = testutil.GzipBytes(d)
		}
		putData(t, e, "events", "k", d)
	}
	stop := e.run(e.config(false, `  - name: events
    subject: "events.{partition_key}"
    payload: gzip
    max_decompressed: 1MiB`))
	testutil.WaitFor(t, 30*time.Second, "every record", func() bool { return len(e.Msgs.OnSubject("events.k")) >= n })
	var got []string
	for _, m := range e.Msgs.OnSubject("events.k") {
		got = append(got, string(m.Data))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records %q,\nwant %q", got, want)
	}
	testutil.WaitFor(t, 10*time.Second, "two dead letters", func() bool { return len(e.Msgs.OnSubject("fanoutd.deadletter.events")) >= 2 })
	reasons := map[string]string{}
	for _, m := range e.Msgs.OnSubject("fanoutd.deadletter.events") {
		reasons[m.Header.Get("Kinesis-Partition-Key")] = m.Header.Get("Fanoutd-Dead-Letter-Reason")
		if len(m.Data) != 0 {
			t.Fatalf("a dead letter with %d bytes of data", len(m.Data))
		}
	}
	if reasons["bomb"] != "decompressed_too_large" || reasons["corrupt"] != "bad_gzip" {
		t.Fatalf("dead-letter reasons %v, want bomb: decompressed_too_large, corrupt: bad_gzip", reasons)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunUnpacksCloudWatchLogs(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("logs", 2); err != nil {
		t.Fatal(err)
	}
	groups := []string{"/aws/lambda/orders", "/aws/lambda/billing"}
	const records, perRecord = 10, 25
	next := map[string]int{}
	record := func(group string) []byte {
		r := testutil.LogsRecord{Owner: "111111111111", LogGroup: group, LogStream: "2026/12/07/[$LATEST]abc",
			SubscriptionFilters: []string{"to-kinesis"}, MessageType: "DATA_MESSAGE"}
		for j := 0; j < perRecord; j++ {
			i := next[group]
			next[group]++
			msg := fmt.Sprintf(`{"key":%q,"i":%d,"level":%q}`, group, i, []string{"INFO", "ERROR"}[i%2])
			if i%5 == 4 {
				msg = fmt.Sprintf("%s:%d plain text", group, i) // not JSON: no level
			}
			r.LogEvents = append(r.LogEvents, testutil.LogEvent{ID: fmt.Sprintf("3719%020d", i), Timestamp: 1765100000000 + int64(i), Message: msg})
		}
		return r.Gzip()
	}
	for i := 0; i < records; i++ {
		for _, g := range groups {
			putData(t, e, "logs", g, record(g))
		}
		if i == 3 {
			putData(t, e, "logs", "control", testutil.ControlRecord.Gzip())
		}
	}
	putData(t, e, "logs", "odd", testutil.GzipBytes([]byte(`{"messageType":"DATA_MESSAGE"}`)), []byte("not gzip"))
	stop := e.run(e.config(false, `  - name: logs
    subject: "logs.{log_group}.{data.level}"
    subject_fallback: plain
    payload: cloudwatch_logs`))
	total := len(groups) * records * perRecord
	testutil.WaitFor(t, 30*time.Second, "every log event", func() bool { return len(e.Msgs.OnSubject("logs.")) >= total })
	for _, g := range groups {
		tok := escapeToken(g)
		var got []int
		for _, m := range e.Msgs.OnSubject("logs.") {
			if !strings.HasPrefix(m.Subject, "logs."+tok+".") {
				continue
			}
			h := m.Header
			i := len(got)
			got = append(got, i)
			wantSubject := "logs." + tok + "." + []string{"INFO", "ERROR"}[i%2]
			wantData := fmt.Sprintf(`{"key":%q,"i":%d,"level":%q}`, g, i, []string{"INFO", "ERROR"}[i%2])
			if i%5 == 4 {
				wantSubject, wantData = "logs."+tok+".plain", fmt.Sprintf("%s:%d plain text", g, i)
			}
			if m.Subject != wantSubject || string(m.Data) != wantData {
				t.Fatalf("event %d of %s: %s %q, want %s %q", i, g, m.Subject, m.Data, wantSubject, wantData)
			}
			for k, want := range map[string]string{
				"Cloudwatch-Log-Group":            relay.EscapeHeaderValue(g),
				"Cloudwatch-Log-Stream":           relay.EscapeHeaderValue("2026/12/07/[$LATEST]abc"),
				"Cloudwatch-Owner":                "111111111111",
				"Cloudwatch-Event-Id":             fmt.Sprintf("3719%020d", i),
				"Cloudwatch-Event-Timestamp":      time.UnixMilli(1765100000000 + int64(i)).UTC().Format("2006-01-02T15:04:05.000Z"),
				"Cloudwatch-Subscription-Filters": "to-kinesis",
				"Kinesis-Partition-Key":           relay.EscapeHeaderValue(g),
			} {
				if got := h.Get(k); got != want {
					t.Fatalf("event %d of %s: %s = %q, want %q", i, g, k, got, want)
				}
			}
			if id, suffix := h.Get("Nats-Msg-Id"), fmt.Sprintf(":0:%d", i%perRecord); !strings.HasSuffix(id, suffix) {
				t.Fatalf("event %d of %s: Nats-Msg-Id %q, want it to end in %q", i, g, id, suffix)
			}
		}
		if len(got) != records*perRecord {
			t.Fatalf("%s: %d events, want %d", g, len(got), records*perRecord)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "two dead letters", func() bool { return len(e.Msgs.OnSubject("fanoutd.deadletter.logs")) >= 2 })
	for _, m := range e.Msgs.OnSubject("fanoutd.deadletter.logs") {
		if r := m.Header.Get("Fanoutd-Dead-Letter-Reason"); r != "not_cloudwatch_logs" && r != "bad_gzip" {
			t.Fatalf("dead letter reason %q", r)
		}
	}
	if st := e.d.pub.StreamStats()["logs"]; st.ControlMessages != 1 || st.DeadLettered != 2 {
		t.Fatalf("control messages %d, dead letters %d; want 1 and 2", st.ControlMessages, st.DeadLettered)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// The filter of these tests, one pattern per operator family, and what it
// lets through: a record passes if one pattern matches.
var testFilter = []string{
	`{"data": {"type": ["order.created"]}}`,                                            // exact
	`{"data": {"type": [{"prefix": "refund."}], "amount": [{"numeric": [">", 100]}]}}`, // prefix and a numeric range together
	`{"data": {"note": [null]}}`,                                                       // null
	`{"data": {"type": [{"suffix": ".vip"}]}}`,                                         // suffix
	`{"data": {"type": [{"equals-ignore-case": "ORDER.RETURNED"}]}}`,                   // equals-ignore-case
	`{"data": {"flag": [{"exists": true}], "type": [{"anything-but": ["x"]}]}}`,        // exists and anything-but
	`{"data": {"amount": [{"numeric": ["=", 7]}]}}`,                                    // numeric equals
	`{"data": {"note": [""]}}`,                                                         // empty
	`{"$or": [{"partitionKey": [{"prefix": "vip-"}]}, {"data": {"type": ["gift"]}}]}`,  // $or, metadata
	`{"partitionKey": ["vip-9"]}`,                                                      // metadata alone: data need not be JSON
}

// filteredEvent is record i of key, and whether testFilter lets it through.
func filteredEvent(key string, i int) (map[string]any, bool) {
	ev := map[string]any{"key": key, "i": i}
	switch i % 12 {
	case 0:
		ev["type"] = "order.created"
		return ev, true
	case 1:
		ev["type"], ev["amount"] = "refund.partial", 150
		return ev, true
	case 2:
		ev["type"], ev["amount"] = "refund.partial", 50 // amount too small
		return ev, strings.HasPrefix(key, "vip-")
	case 3:
		ev["type"], ev["note"] = "order.updated", nil
		return ev, true
	case 4:
		ev["type"] = "order.shipped.vip"
		return ev, true
	case 5:
		ev["type"] = "Order.Returned"
		return ev, true
	case 6:
		ev["type"], ev["flag"] = "order.updated", false
		return ev, true
	case 7:
		ev["type"], ev["flag"] = "x", true // anything-but refuses it
		return ev, strings.HasPrefix(key, "vip-")
	case 8:
		ev["type"], ev["amount"] = "order.updated", 7.0
		return ev, true
	case 9:
		ev["type"], ev["note"] = "order.updated", ""
		return ev, true
	case 10:
		ev["type"] = "gift"
		return ev, true
	}
	ev["type"] = "order.updated" // matches nothing, but for a vip- key
	return ev, strings.HasPrefix(key, "vip-")
}

func filterYAML() string {
	var b strings.Builder
	b.WriteString("    filter:\n")
	for _, p := range testFilter {
		fmt.Fprintf(&b, "      - '%s'\n", p)
	}
	return b.String()
}

// Filters apply to every user record of KPL aggregates, in every read mode:
// exactly the matching records arrive, in order, and the others are
// counted.
func TestRunFiltersKPLUserRecords(t *testing.T) {
	for _, read := range []string{"efo", "polling"} {
		t.Run(read, func(t *testing.T) {
			e := newE2E(t, emutest.Options(), false)
			if err := e.Emu.CreateStream("orders", 2); err != nil {
				t.Fatal(err)
			}
			keys := []string{"k-1", "vip-2", "k-3"}
			const n = 48
			want := map[string][]int{}
			for _, k := range keys {
				var user []record.Record
				for i := 0; i < n; i++ {
					ev, pass := filteredEvent(k, i)
					if pass {
						want[k] = append(want[k], i)
					}
					user = append(user, record.Record{PartitionKey: k, Data: mustJSON(t, ev)})
					if len(user) == 12 || i == n-1 {
						putData(t, e, "orders", k, kpl.Aggregate(user))
						user = nil
					}
				}
			}
			// Data that is not JSON passes only a pattern without a data part
			// (Lambda's rule: a pattern on data drops it, even in a $or).
			putData(t, e, "orders", "vip-9", []byte("not json"))
			putData(t, e, "orders", "k-9", []byte("not json"))
			passing := 1
			for _, w := range want {
				passing += len(w)
			}
			stop := e.run(e.config(false, "  - name: orders\n    subject: \"orders.{partition_key}\"\n    read: "+read+"\n"+filterYAML()))
			testutil.WaitFor(t, 30*time.Second, "every record published or filtered", func() bool {
				st := e.d.pub.StreamStats()["orders"]
				return st.Filtered+st.Published >= uint64(len(keys)*n+2) && len(e.Msgs.OnSubject("orders.")) >= int(st.Published)
			})
			var events []jsonEvent
			nonJSON := 0
			for _, m := range e.Msgs.OnSubject("orders.") {
				if string(m.Data) == "not json" {
					if m.Subject != "orders.vip-9" {
						t.Fatalf("non-JSON record of %s passed the filter", m.Subject)
					}
					nonJSON++
					continue
				}
				events = append(events, decodeEvents(t, []*nats.Msg{m})...)
			}
			checkInOrder(t, events, keys, func(k string) []int { return want[k] })
			if nonJSON != 1 {
				t.Fatalf("%d non-JSON records passed, want 1", nonJSON)
			}
			if st := e.d.pub.StreamStats()["orders"]; st.Filtered != uint64(len(keys)*n+2-passing) || st.Published != uint64(passing) {
				t.Fatalf("filtered %d, published %d; want %d and %d", st.Filtered, st.Published, len(keys)*n+2-passing, passing)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A reload that changes a stream's filter and subject applies to the next
// batch, without a restart of the stream or a replay: every record is
// published once, by the route in effect when it was read.
func TestReloadChangesFilterAndSubjectWithoutReplay(t *testing.T) {
	e := newE2E(t, emutest.Options(), false)
	if err := e.Emu.CreateStream("orders", 2); err != nil {
		t.Fatal(err)
	}
	keys := []string{"k1", "k2", "k3"}
	put := func(from, to int) {
		for i := from; i < to; i++ {
			for _, k := range keys {
				putData(t, e, "orders", k, mustJSON(t, orderEvent(k, i)))
			}
		}
	}
	const n = 30
	handled := func() uint64 {
		st := e.d.pub.StreamStats()["orders"]
		return st.Published + st.Filtered
	}
	before := e.Config(false, `  - name: orders
    subject: "a.{data.type}"
    filter: ['{"data": {"type": ["order.created"]}}']`)
	path := before.Write(t)
	stop := e.run(path)
	put(0, n)
	testutil.WaitFor(t, 30*time.Second, "the first records handled", func() bool { return handled() >= uint64(len(keys)*n) })

	after := before
	after.Streams = `  - name: orders
    subject: "b.{data.type}.{partition_key}"
    filter: ['{"data": {"type": ["order.shipped"]}}']`
	after.WriteFile(t, path)
	if err := e.d.Reload(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.logs.String(), `"routes_changed":["orders"]`) {
		t.Fatal("the reload did not report the stream's route as changed")
	}
	put(n, 2*n)
	testutil.WaitFor(t, 30*time.Second, "the second records handled", func() bool { return handled() >= uint64(2*len(keys)*n) })

	typed := func(typ string, from, to int) func(string) []int {
		return func(string) []int {
			var w []int
			for i := from; i < to; i++ {
				if orderEvent("", i).Type == typ {
					w = append(w, i)
				}
			}
			return w
		}
	}
	checkInOrder(t, decodeEvents(t, e.Msgs.OnSubject("a.")), keys, typed("order.created", 0, n))
	checkInOrder(t, decodeEvents(t, e.Msgs.OnSubject("b.")), keys, typed("order.shipped", n, 2*n))
	for _, m := range e.Msgs.OnSubject("b.") {
		if !strings.HasPrefix(m.Subject, "b.order%2Eshipped.k") {
			t.Fatalf("after the reload a record on %s", m.Subject)
		}
	}
	if n := strings.Count(e.logs.String(), `"message":"stream found"`); n != 1 {
		t.Fatalf("the stream was started %d times, want once (a reroute restarts nothing)", n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
