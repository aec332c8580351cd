package pattern

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	deep := `{"data": ` + strings.Repeat(`{"a": `, MaxDepth) + `["x"]` + strings.Repeat(`}`, MaxDepth) + `}`
	many := `{"data": {"a": [` + strings.Repeat(`"x", `, MaxValues) + `"x"]}}`
	for _, tc := range []struct {
		src  string
		want string // the whole message, or a part when it ends with "..."
	}{
		{``, `pattern is empty: write a JSON object such as {"data": {"type": ["created"]}}`},
		{`{"data": `, `pattern is not valid JSON: unexpected EOF`},
		{`{"data": {"a": ["x"]}} {}`, `pattern is not valid JSON: text after the closing brace`},
		{`["x"]`, `pattern must be a JSON object, not a list`},
		{`"data"`, `pattern must be a JSON object, not a string`},
		{`{}`, `the pattern has no fields: name at least one of data, partitionKey, sequenceNumber, approximateArrivalTimestamp, $or`},
		{`{"detail": {"a": ["x"]}}`, `unknown key "detail": a pattern's top-level keys are data, partitionKey, sequenceNumber, approximateArrivalTimestamp, $or`},
		{`{"kinesis": {"partitionKey": ["1"]}}`, `unknown key "kinesis": a pattern's top-level keys are ...`},
		{`{"data": ["x"]}`, `data: must be an object of fields of the record's JSON data, such as {"type": ["created"]}, not a list`},
		{`{"data": "x"}`, `data: must be an object of fields of the record's JSON data, such as {"type": ["created"]}, not a string`},
		{`{"data": {}}`, `data: an empty object matches nothing: name at least one field`},
		{`{"partitionKey": "1"}`, `partitionKey: must be a list of values, such as ["a", {"prefix": "b"}], not a string`},
		{`{"partitionKey": {"a": ["1"]}}`, `partitionKey: must be a list of values, such as ["a", {"prefix": "b"}], not an object`},
		{`{"data": {"type": "created"}}`, `data.type: must be a list of values, such as ["created"], or an object of fields, not a string`},
		{`{"data": {"n": 5}}`, `data.n: must be a list of values, such as [5], or an object of fields, not a number`},
		{`{"data": {"a": {"b": null}}}`, `data.a.b: must be a list of values, such as [null], or an object of fields, not null`},
		{`{"data": {"type": []}}`, `data.type: an empty list matches nothing: list at least one value`},
		{`{"data": {"type": [["x"]]}}`, `data.type: a list of values holds strings, numbers, true, false, null or operator objects, not a list`},
		{`{"data": {"type": [{}]}}`, `data.type: an operator object has exactly one key (one of "prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists"), not 0`},
		{`{"data": {"type": [{"prefix": "a", "suffix": "b"}]}}`, `data.type: an operator object has exactly one key ...`},
		{`{"data": {"type": [{"begins-with": "a"}]}}`, `data.type: unknown operator "begins-with": operators are "prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists"`},
		{`{"data": {"ip": [{"cidr": "10.0.0.0/24"}]}}`, `data.ip: operator "cidr" is not one Lambda filters support; use one of ...`},
		{`{"data": {"f": [{"wildcard": "*.png"}]}}`, `data.f: operator "wildcard" is not one Lambda filters support; use one of ...`},
		{`{"data": {"type": [{"prefix": 5}]}}`, `data.type: "prefix" takes a string or {"equals-ignore-case": string}, not a number`},
		{`{"data": {"type": [{"suffix": ["a"]}]}}`, `data.type: "suffix" takes a string or {"equals-ignore-case": string}, not a list`},
		{`{"data": {"type": [{"prefix": {"equals-ignore-case": 1}}]}}`, `data.type: "prefix" takes a string or {"equals-ignore-case": string}, not an object`},
		{`{"data": {"type": [{"equals-ignore-case": ["a"]}]}}`, `data.type: "equals-ignore-case" takes a string, not a list`},
		{`{"data": {"type": [{"exists": "yes"}]}}`, `data.type: "exists" takes true or false, not a string`},
		{`{"data": {"n": [{"numeric": 5}]}}`, `data.n: "numeric" takes [op, number] or [lower-op, number, upper-op, number], such as [">", 0, "<=", 5]`},
		{`{"data": {"n": [{"numeric": [">", 0, "<"]}]}}`, `data.n: "numeric" takes [op, number] or ...`},
		{`{"data": {"n": [{"numeric": ["!=", 5]}]}}`, `data.n: unknown "numeric" operator "!=": use "=", "<", "<=", ">" or ">="`},
		{`{"data": {"n": [{"numeric": [">", "5"]}]}}`, `data.n: "numeric" ">" takes a number, not a string`},
		{`{"data": {"n": [{"numeric": [5, ">"]}]}}`, `data.n: "numeric" operator 1 must be one of "=", "<", "<=", ">", ">=", not a number`},
		{`{"data": {"n": [{"numeric": ["=", 5, "<", 6]}]}}`, `data.n: "numeric" "=" stands alone: ["=", number]`},
		{`{"data": {"n": [{"numeric": [">", 5, ">=", 6]}]}}`, `data.n: "numeric" range is [lower-op, number, upper-op, number], lower bound first, such as [">", 0, "<=", 5]`},
		{`{"data": {"n": [{"numeric": ["<", 5, "<=", 6]}]}}`, `data.n: "numeric" range is [lower-op, number, upper-op, number], lower bound first, ...`},
		{`{"data": {"n": [{"numeric": ["<=", 3, ">", -1]}]}}`, `data.n: "numeric" range is [lower-op, number, upper-op, number], lower bound first, ...`},
		{`{"data": {"n": [{"numeric": [">=", 1, "<=", 1]}]}}`, `data.n: "numeric" range is empty: its lower bound must be below its upper bound`},
		{`{"data": {"n": [{"numeric": ["=", 123456789012345678]}]}}`, `data.n: "numeric" "=": 123456789012345678 is not exactly a 64-bit float, so it cannot be compared`},
		{`{"data": {"n": [{"numeric": [">", 10, "<", 5]}]}}`, `data.n: "numeric" range is empty: its lower bound must be below its upper bound`},
		{`{"data": {"n": [{"numeric": [">", 5, "<", 5]}]}}`, `data.n: "numeric" range is empty: ...`},
		{`{"data": {"n": [{"numeric": ["=", 1e999]}]}}`, `data.n: "numeric" "=": 1e999 is not exactly a 64-bit float, so it cannot be compared`},
		{`{"data": {"s": [{"anything-but": []}]}}`, `data.s: "anything-but" has an empty list: list at least one value`},
		{`{"data": {"s": [{"anything-but": ["a", 1]}]}}`, `data.s: "anything-but" list mixes strings and numbers: list only strings or only numbers`},
		{`{"data": {"s": [{"anything-but": [null]}]}}`, `data.s: "anything-but" takes a string, a number, a list of only strings or only numbers, or an object ...`},
		{`{"data": {"s": [{"anything-but": true}]}}`, `data.s: "anything-but" takes a string, a number, ...`},
		{`{"data": {"s": [{"anything-but": {"prefix": 1}}]}}`, `data.s: "anything-but" "prefix" takes a non-empty string or a non-empty list of them`},
		{`{"data": {"s": [{"anything-but": {"suffix": ""}}]}}`, `data.s: "anything-but" "suffix" takes a non-empty string or a non-empty list of them`},
		{`{"data": {"s": [{"anything-but": {"prefix": ["a", ""]}}]}}`, `data.s: "anything-but" "prefix" takes a non-empty string or a non-empty list of them`},
		{`{"data": {"s": [{"anything-but": {"numeric": [">", 1]}}]}}`, `data.s: "anything-but" takes "prefix", "suffix" or "equals-ignore-case" in an object, not "numeric"`},
		{`{"data": {"s": [{"anything-but": {"equals-ignore-case": []}}]}}`, `data.s: "anything-but" "equals-ignore-case" takes a string or a non-empty list of strings, not a list`},
		{`{"data": {"s": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}}`, `data.s: "anything-but" takes a string, ...`},
		{`{"data": {"$or": [{"a": ["x"]}]}}`, `data.$or: must be a list of at least two objects, such as [{"a": ["x"]}, {"b": ["y"]}]`},
		{`{"data": {"$or": {"a": ["x"]}}}`, `data.$or: must be a list of at least two objects, ...`},
		{`{"data": {"$or": [{"a": ["x"]}, ["b"]]}}`, `data.$or[1]: must be an object, not a list`},
		{`{"data": {"$or": [{"a": ["x"]}, {"b": "y"}]}}`, `data.$or[1].b: must be a list of values, such as ["y"], or an object of fields, not a string`},
		{`{"data": {"$or": [{"a": ["x"]}, {}]}}`, `data.$or[1]: an empty object matches nothing: name at least one field`},
		{`{"$or": [{"data": {"a": ["x"]}}, {"partition": ["1"]}]}`, `$or[1]: unknown key "partition": a pattern's top-level keys are ...`},
		{`{"$or": [{"data": {"a": ["x"]}}, {}]}`, `$or[1]: the pattern has no fields: ...`},
		{`{"$or": [{"partitionKey": ["1"]}, {"data": {"x": {"y": [1, {"prefix": 2}]}}}]}`, `$or[1].data.x.y: "prefix" takes a string or {"equals-ignore-case": string}, not a number`},
		{`{"partitionKey": [1]}`, `partitionKey: is a string and never matches a number, boolean, null or "numeric": quote the value`},
		{`{"sequenceNumber": [{"numeric": [">", 1]}]}`, `sequenceNumber: is a string and never matches ...`},
		{`{"$or": [{"partitionKey": ["a"]}, {"partitionKey": [null]}]}`, `$or[1].partitionKey: is a string and never matches ...`},
		{`{"approximateArrivalTimestamp": ["1545084650.987"]}`, `approximateArrivalTimestamp: is a number (epoch seconds, such as 1545084650.987) and matches only numbers, "numeric", "anything-but" and "exists"`},
		{`{"approximateArrivalTimestamp": [{"prefix": "15"}]}`, `approximateArrivalTimestamp: is a number ...`},
		{deep, `data.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a: nested deeper than 32 levels`},
		{many, `data.a: the pattern has more than 1024 values`},
		{strings.Repeat(" ", MaxPatternBytes+1), `pattern is 16385 bytes, more than the 16384 allowed`},
	} {
		p, err := Parse(tc.src)
		if err == nil {
			t.Errorf("Parse(%.80s) = %v, want error %q", tc.src, p, tc.want)
			continue
		}
		got := err.Error()
		if prefix, ok := strings.CutSuffix(tc.want, "..."); ok {
			if !strings.HasPrefix(got, prefix) {
				t.Errorf("Parse(%.80s) error:\n got %q\nwant %q", tc.src, got, tc.want)
			}
		} else if got != tc.want {
			t.Errorf("Parse(%.80s) error:\n got %q\nwant %q", tc.src, got, tc.want)
		}
	}
}

func TestParseValid(t *testing.T) {
	for _, src := range []string{
		`{"data": {"a": ["x", 1, true, false, null, {"prefix": ""}]}}`,
		`{"data": {"a.b": ["x"], "": ["empty key"], "@c": ["modifier-like key"]}}`,
		`{"data": {"n": [{"numeric": ["=", 0]}, {"numeric": ["<", -1e9]}, {"numeric": [">=", 1, "<=", 1.5]}, {"numeric": ["=", 0.1]}]}}`,
		`{"data": {"s": [{"anything-but": {"equals-ignore-case": "x"}}, {"anything-but": 1.5}, {"anything-but": [1, 2]}, {"anything-but": {"prefix": ["a", "b"]}}]}}`,
		`{"data": {"a": ["x"]}, "partitionKey": ["1"], "sequenceNumber": [{"exists": true}], "approximateArrivalTimestamp": [{"numeric": [">", 0]}]}`,
		"{\n  \"data\": {\n    \"type\": [\"order.created\", {\"prefix\": \"order.cancel\"}]\n  }\n}\n",
	} {
		p, err := Parse(src)
		if err != nil {
			t.Errorf("Parse(%s): %v", src, err)
			continue
		}
		if p.String() != src {
			t.Errorf("String() = %q, want the source %q", p.String(), src)
		}
	}
}

func TestParseFilter(t *testing.T) {
	f, errs := ParseFilter([]string{
		`{"data": {"type": ["a"]}}`,
		`{"data": {"type": "a"}}`,
		`{"partitionKey": [{"prefix": "vip-"}]}`,
		`{"data": {"n": [{"numeric": ["~", 1]}]}}`,
	})
	if f != nil {
		t.Errorf("ParseFilter with invalid patterns returned a filter: %v", f)
	}
	if len(errs) != 2 {
		t.Fatalf("ParseFilter errors = %v, want 2", errs)
	}
	for i, want := range []struct {
		index int
		msg   string
	}{
		{1, `filter[1]: data.type: must be a list of values, such as ["a"], or an object of fields, not a string`},
		{3, `filter[3]: data.n: unknown "numeric" operator "~": use "=", "<", "<=", ">" or ">="`},
	} {
		var pe *ParseError
		if !errors.As(errs[i], &pe) || pe.Index != want.index {
			t.Errorf("error %d = %#v, want a *ParseError with index %d", i, errs[i], want.index)
		}
		if got := errs[i].Error(); got != want.msg {
			t.Errorf("error %d:\n got %q\nwant %q", i, got, want.msg)
		}
	}

	f, errs = ParseFilter([]string{`{"partitionKey": ["1"]}`, `{"data": {"type": ["a"]}}`})
	if errs != nil || len(f) != 2 {
		t.Fatalf("ParseFilter(valid) = %v, %v", f, errs)
	}
	if !f.UsesData() || f[0].UsesData() || !f[1].UsesData() {
		t.Errorf("UsesData: filter %v, patterns %v %v", f.UsesData(), f[0].UsesData(), f[1].UsesData())
	}
	if (Filter{f[0]}).UsesData() {
		t.Error("a filter on partitionKey only uses data")
	}
	meta := Filter{f[0]}
	if !meta.Match(&Input{Data: []byte("not json"), PartitionKey: "1"}) {
		t.Error("a metadata filter does not match non-JSON data")
	}
	if (Filter{}).UsesData() || !(Filter{}).Match(&Input{}) || !Filter(nil).Match(&Input{}) {
		t.Error("an empty filter must pass every record and use no data")
	}
	in := &Input{Data: []byte(`{"type": "b"}`), JSON: true, PartitionKey: "2"}
	if f.Match(in) {
		t.Error("a record matching no pattern passes")
	}
	in.PartitionKey = "1"
	if !f.Match(in) {
		t.Error("a record matching the first pattern does not pass")
	}
}
