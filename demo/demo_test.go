package demo

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// A message as subscriber.Format prints it: its subject, then (after its
// headers) its data on one line.
var printedMsg = regexp.MustCompile(`(?m)^#\d+ (\S+)  lag [^\n]*\n(?:  [^\n]*\n)*?  data \(\d+ bytes\): (\{[^\n]*\})$`)

// checkRoutedByData checks that every message printed in out is on the
// subject its JSON data gives, the fallback token where the customer is
// missing, and returns how many it saw and how many were on the fallback.
func checkRoutedByData(t *testing.T, out string) (msgs, fallbacks int) {
	t.Helper()
	for _, m := range printedMsg.FindAllStringSubmatch(out, -1) {
		var o demoOrder
		if err := json.Unmarshal([]byte(m[2]), &o); err != nil {
			t.Fatalf("data %q: %v", m[2], err)
		}
		customer := "_"
		if o.Customer != nil {
			customer = o.Customer.ID
		} else {
			fallbacks++
		}
		if want := "kinesis.demo." + o.Entity + "." + o.Event + "." + customer; m[1] != want {
			t.Errorf("data %s on subject %s, want %s", m[2], m[1], want)
		}
		msgs++
	}
	return msgs, fallbacks
}

// With JSON records, each message is on the subject its data gives, also
// through JetStream (the DEMO stream captures those subjects), and the
// summary finds every record once.
func TestRunJSONRoutesBySubjectsFromData(t *testing.T) {
	for _, js := range []bool{false, true} {
		t.Run(map[bool]string{false: "core", true: "jetstream"}[js], func(t *testing.T) {
			var out testutil.SyncBuffer
			err := Run(context.Background(), Options{Duration: 3 * time.Second, Rate: 20, Shards: 2, JetStream: js,
				Payload: PayloadJSON, Log: zerolog.Nop()}, &out)
			s := out.String()
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, s)
			}
			msgs, fallbacks := checkRoutedByData(t, s)
			if msgs < 2 || fallbacks == 0 {
				t.Errorf("%d messages, %d on the fallback subject: want some of each", msgs, fallbacks)
			}
			for _, want := range []string{
				"subject kinesis.demo.{data.entity}.{data.event}.{data.customer.id} (a missing field: _); subscribed to kinesis.demo.*.*.*\n",
				" 0 duplicates", "by subject: kinesis.demo.order.",
			} {
				if !strings.Contains(s, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			// Every message printed was checked, and every record came once.
			sum := regexp.MustCompile(`summary: produced (\d+) user records, received (\d+) messages \((\d+) unique`).FindStringSubmatch(s)
			if sum == nil || sum[1] != sum[3] || sum[2] != strconv.Itoa(msgs) {
				t.Errorf("summary %q, %d messages checked", sum, msgs)
			}
			if t.Failed() {
				t.Logf("output:\n%s", s)
			}
		})
	}
}

func TestJSONRecordOmitsTheCustomerOfEveryTenth(t *testing.T) {
	kinds := map[string]bool{}
	for n := range 20 {
		var o demoOrder
		if err := json.Unmarshal(jsonRecord(n, 3), &o); err != nil {
			t.Fatal(err)
		}
		kinds[o.Entity+"."+o.Event] = true
		if got, want := o.Customer == nil, n%10 == 1; got != want {
			t.Errorf("record %d: no customer %v, want %v", n, got, want)
		}
		if o.Customer != nil && o.Customer.ID != "c-3" {
			t.Errorf("record %d: customer %q", n, o.Customer.ID)
		}
	}
	if len(kinds) != len(jsonEvents) {
		t.Errorf("kinds %v, want all of %v", kinds, jsonEvents)
	}
}

func TestValidatePayload(t *testing.T) {
	for p, ok := range map[string]bool{"": true, PayloadText: true, PayloadJSON: true, "xml": false} {
		o := Options{Rate: 1, Shards: 1, Payload: p}
		if err := o.Validate(); (err == nil) != ok {
			t.Errorf("payload %q: %v", p, err)
		}
	}
}

// A first run says nothing but what the demo prints: no warning about
// settings the user never made, in core mode (a server without JetStream)
// and with JetStream; and it leaves nothing behind in the temporary
// directory.
func TestRunStartsQuietAndCleansUp(t *testing.T) {
	for _, js := range []bool{false, true} {
		t.Run(map[bool]string{false: "core", true: "jetstream"}[js], func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			var out, logs testutil.SyncBuffer
			log := zerolog.New(&logs).Level(zerolog.WarnLevel)
			err := Run(context.Background(), Options{Duration: 2 * time.Second, Rate: 10, Shards: 1, JetStream: js, Quiet: true, Log: log}, &out)
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out.String())
			}
			if logs.String() != "" {
				t.Errorf("the relay logged at warn level or above:\n%s", logs.String())
			}
			left, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range left {
				t.Errorf("the demo left %s in the temporary directory", e.Name())
			}
		})
	}
}
