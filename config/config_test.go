package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/payload"
)

// mapLookup is a lookup for LoadBytes backed by a map.
func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// TestLoad_Invalid loads each testdata/invalid file and compares the whole
// error text: the messages are the operator's interface.
func TestLoad_Invalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want string
	}{
		{"at_timestamp_bad", "testdata/invalid/at_timestamp_bad.yaml: streams[0].start_timestamp: must be an RFC 3339 time such as 2024-01-02T15:04:05Z (got \"2024-01-02 15:04:05\")"},
		{"at_timestamp_missing", "testdata/invalid/at_timestamp_missing.yaml: streams[0].start_timestamp: required when start_position is AT_TIMESTAMP"},
		{"aws", "" +
			"testdata/invalid/aws.yaml: aws.region: must be an AWS region such as us-east-1 (got \"US East\")\n" +
			"testdata/invalid/aws.yaml: aws.endpoint: must be an http or https URL (got \"localhost:4567\")\n" +
			"testdata/invalid/aws.yaml: aws.startup_timeout: must be at least 1s (got 500ms)"},
		{"backoff_order", "" +
			"testdata/invalid/backoff_order.yaml: timers.backoff_initial: must not exceed timers.backoff_max (got 1m0s > 30s)\n" +
			"testdata/invalid/backoff_order.yaml: timers.consumer_poll_initial: must not exceed timers.consumer_poll_max (got 10s > 5s)"},
		{"bad_arn", "testdata/invalid/bad_arn.yaml: streams[0].arn: must look like arn:aws:kinesis:REGION:ACCOUNT:stream/NAME (got \"arn:aws:kinesis:us-east-1:1234:stream/orders\")"},
		{"bad_consumer_arn", "testdata/invalid/bad_consumer_arn.yaml: streams[0].consumer_arn: must look like arn:aws:kinesis:REGION:ACCOUNT:stream/NAME/consumer/CONSUMER:TIMESTAMP (got \"arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/fanoutd\")"},
		{"bad_duration", "testdata/invalid/bad_duration.yaml: timers.idle_timeout: invalid duration \"abc\": write a number with a unit, e.g. 10s, 1m30s or 250ms"},
		{"bad_name", "" +
			"testdata/invalid/bad_name.yaml: streams[0].name: must be 1 to 128 characters from a-z, A-Z, 0-9, '_', '.', '-' (got \"my orders\")\n" +
			"testdata/invalid/bad_name.yaml: streams[0].consumer: must be 1 to 128 characters from a-z, A-Z, 0-9, '_', '.', '-' (got \"fan/out\")"},
		{"checkpoint_dir", "testdata/invalid/checkpoint_dir.yaml: checkpoint.dir: required when store is file"},
		{"checkpoint_bucket", "" +
			"testdata/invalid/checkpoint_bucket.yaml: checkpoint.bucket.name: must be 1 to 255 of a-z, A-Z, 0-9, '_' and '-' (got \"\")\n" +
			"testdata/invalid/checkpoint_bucket.yaml: checkpoint.bucket.storage: must be one of file, memory (got \"disk\")\n" +
			"testdata/invalid/checkpoint_bucket.yaml: coordination.mode: must be one of none, jetstream (got \"cluster\")"},
		{"checkpoint_store", "testdata/invalid/checkpoint_store.yaml: checkpoint.store: must be one of file, jetstream (got \"kv\")"},
		{"coordination", "" +
			"testdata/invalid/coordination.yaml: coordination.mode: jetstream requires checkpoint.store: jetstream: shards move between instances, so their checkpoints must be shared (got checkpoint.store \"file\")\n" +
			"testdata/invalid/coordination.yaml: coordination.instance: must be 1 to 128 of a-z, A-Z, 0-9, '_', '.' and '-', unique in the group (got \"web 1\")\n" +
			"testdata/invalid/coordination.yaml: coordination.lease_ttl: must be at least 1s (got 100ms)\n" +
			"testdata/invalid/coordination.yaml: coordination.bucket.name: must be 1 to 255 of a-z, A-Z, 0-9, '_' and '-' (got \"my.leases\")\n" +
			"testdata/invalid/coordination.yaml: coordination.bucket.replicas: must be between 1 and 5, or 0 for 3 on a cluster of at least 3 servers and 1 otherwise (got 7)"},
		{"consumer_arn_mismatch", "" +
			"testdata/invalid/consumer_arn_mismatch.yaml: streams[0].consumer_arn: names stream \"payments\", not \"orders\"\n" +
			"testdata/invalid/consumer_arn_mismatch.yaml: streams[0].consumer_arn: names consumer \"other\", not \"fanoutd\"; set consumer: other\n" +
			"testdata/invalid/consumer_arn_mismatch.yaml: streams[1].consumer_arn: names stream arn:aws:kinesis:eu-west-1:123456789012:stream/refunds, not arn:aws:kinesis:us-east-1:123456789012:stream/refunds"},
		{"duplicate_key", "testdata/invalid/duplicate_key.yaml: streams[0].name: duplicate key (first set on line 2)"},
		{"duplicate_stream", "testdata/invalid/duplicate_stream.yaml: streams[2]: duplicate of streams[0] (stream \"orders\"); each stream is listed once"},
		{"duration_mapping", "testdata/invalid/duration_mapping.yaml: nats.publish_timeout: expected a duration such as \"10s\", got a mapping"},
		{"duration_without_unit", "testdata/invalid/duration_without_unit.yaml: timers.shutdown_timeout: \"20\": add a unit, e.g. 20s"},
		{"empty", "" +
			"testdata/invalid/empty.yaml: streams: at least one stream is required\n" +
			"testdata/invalid/empty.yaml: checkpoint.dir: required when store is file"},
		{"env_syntax", "" +
			"testdata/invalid/env_syntax.yaml: streams[0].name: invalid environment variable name \"1BAD\"\n" +
			"testdata/invalid/env_syntax.yaml: checkpoint.dir: unterminated \"${\" (write \"$${\" for a literal \"${\")"},
		{"env_unset", "" +
			"testdata/invalid/env_unset.yaml: checkpoint.dir: environment variable FANOUTD_TEST_UNSET_DIR is not set\n" +
			"testdata/invalid/env_unset.yaml: nats.token: environment variable FANOUTD_TEST_UNSET_TOKEN is not set\n" +
			"testdata/invalid/env_unset.yaml: nats.token: environment variable FANOUTD_TEST_UNSET_OTHER is not set"},
		{"log", "" +
			"testdata/invalid/log.yaml: log.level: must be one of trace, debug, info, warn, error (got \"verbose\")\n" +
			"testdata/invalid/log.yaml: log.format: must be one of auto, json, console (got \"text\")"},
		{"many", "" +
			"testdata/invalid/many.yaml: aws.endpoint: must be an http or https URL (got \"ftp://example.com\")\n" +
			"testdata/invalid/many.yaml: streams[0].start_position: must be one of TRIM_HORIZON, LATEST, AT_TIMESTAMP (got \"EARLIEST\")\n" +
			"testdata/invalid/many.yaml: streams[0].subject: subject template \"kinesis.{stream}.>\": wildcard '>' at offset 17: a publish subject cannot hold wildcards\n" +
			"testdata/invalid/many.yaml: streams[1]: duplicate of streams[0] (stream \"orders\"); each stream is listed once\n" +
			"testdata/invalid/many.yaml: nats.servers[0]: must be a URL with scheme nats, tls, ws or wss (got \"mqtt://127.0.0.1\")\n" +
			"testdata/invalid/many.yaml: nats.publish_timeout: must be greater than 0 (got 0s)\n" +
			"testdata/invalid/many.yaml: checkpoint.dir: required when store is file\n" +
			"testdata/invalid/many.yaml: log.level: must be one of trace, debug, info, warn, error (got \"loud\")\n" +
			"testdata/invalid/many.yaml: timers.backoff_max: must be greater than 0 (got 0s)"},
		{"merge_unknown_key", "" +
			"testdata/invalid/merge_unknown_key.yaml: streams[0].subjekt: unknown key; did you mean subject?\n" +
			"testdata/invalid/merge_unknown_key.yaml: streams[1].subjekt: unknown key; did you mean subject?"},
		{"name_and_arn", "testdata/invalid/name_and_arn.yaml: streams[0]: set either name or arn, not both"},
		{"nats_auth", "" +
			"testdata/invalid/nats_auth.yaml: nats: set at most one of creds_file, nkey_seed_file, token and user (got creds_file, token)\n" +
			"testdata/invalid/nats_auth.yaml: nats.password: requires nats.user\n" +
			"testdata/invalid/nats_auth.yaml: nats.tls.key_file: required when nats.tls.cert_file is set\n" +
			"testdata/invalid/nats_auth.yaml: nats.creds_file: file /etc/fanoutd/nats.creds does not exist\n" +
			"testdata/invalid/nats_auth.yaml: nats.tls.cert_file: file /etc/fanoutd/cert.pem does not exist"},
		{"nats_no_servers", "testdata/invalid/nats_no_servers.yaml: nats.servers: at least one server is required"},
		{"nats_servers", "" +
			"testdata/invalid/nats_servers.yaml: nats.servers[1]: must be a URL with scheme nats, tls, ws or wss (got \"http://user:xxxxx@example.com:4222\")\n" +
			"testdata/invalid/nats_servers.yaml: nats.servers[2]: must be a URL with scheme nats, tls, ws or wss (got \"127.0.0.1:4222\")"},
		{"nats_tls_key_only", "" +
			"testdata/invalid/nats_tls_key_only.yaml: nats.tls.cert_file: required when nats.tls.key_file is set\n" +
			"testdata/invalid/nats_tls_key_only.yaml: nats.tls.key_file: file /etc/fanoutd/key.pem does not exist"},
		{"no_name_no_arn", "testdata/invalid/no_name_no_arn.yaml: streams[0]: name or arn is required"},
		{"no_streams", "testdata/invalid/no_streams.yaml: streams: at least one stream is required"},
		{"null_stream", "testdata/invalid/null_stream.yaml: streams[1]: expected a mapping, got null"},
		{"on_expired_checkpoint", "testdata/invalid/on_expired_checkpoint.yaml: streams[0].on_expired_checkpoint: must be one of fail, trim_horizon (got \"latest\")"},
		{"read_mode", "" +
			"testdata/invalid/read_mode.yaml: streams[0].read: must be one of efo, polling, auto (got \"push\")\n" +
			"testdata/invalid/read_mode.yaml: streams[0].polling.interval: must be at least 220ms: Kinesis takes 5 GetRecords calls a second per shard (got 0s)\n" +
			"testdata/invalid/read_mode.yaml: streams[0].polling.max_records: must be between 1 and 10000 (got 20000)\n" +
			"testdata/invalid/read_mode.yaml: streams[1].polling.interval: must be at most 4m0s: a shard iterator expires 5 minutes after it was issued (got 5m0s)"},
		{"checkpoint_interval", "testdata/invalid/checkpoint_interval.yaml: checkpoint.interval: must not be negative (got -1s)"},
		{"nats_dead_letter_stream", "" +
			"testdata/invalid/nats_dead_letter_stream.yaml: nats.dead_letter_stream.name: must be 1 to 255 characters without whitespace, '.', '*', '>', '/' or '\\' (got \"dead letters\")\n" +
			"testdata/invalid/nats_dead_letter_stream.yaml: nats.dead_letter_stream.storage: must be one of file, memory (got \"disk\")\n" +
			"testdata/invalid/nats_dead_letter_stream.yaml: nats.dead_letter_stream.replicas: must be between 1 and 5, or 0 for 3 on a cluster of at least 3 servers and 1 otherwise (got 6)\n" +
			"testdata/invalid/nats_dead_letter_stream.yaml: nats.dead_letter_stream.max_age: must not be negative (got -1h0m0s)"},
		{"nats_stream", "testdata/invalid/nats_stream.yaml: nats.stream: requires nats.jetstream: true\n" +
			"testdata/invalid/nats_stream.yaml: nats.stream.name: must be 1 to 255 characters without whitespace, '.', '*', '>', '/' or '\\' (got \"my.stream\")\n" +
			"testdata/invalid/nats_stream.yaml: nats.stream.subjects[1]: must be a NATS subject, wildcards allowed (got \"a.>.b\")\n" +
			"testdata/invalid/nats_stream.yaml: nats.stream.replicas: must be between 1 and 5 (got 7)\n" +
			"testdata/invalid/nats_stream.yaml: nats.stream.storage: must be one of file, memory (got \"disk\")"},
		{"nats_oversize", "testdata/invalid/nats_oversize.yaml: nats.oversize: must be one of dead_letter, fail (got \"drop\"); nats.oversize is deprecated: set nats.large_records instead"},
		{"nats_large_records", "" +
			"testdata/invalid/nats_large_records.yaml: nats.large_records: must be one of object_store, dead_letter, fail (got \"s3\")\n" +
			"testdata/invalid/nats_large_records.yaml: nats.object_store.bucket: must be 1 to 255 characters from a-z, A-Z, 0-9, '_', '-' (got \"big.records\")\n" +
			"testdata/invalid/nats_large_records.yaml: nats.object_store.storage: must be one of file, memory (got \"disk\")\n" +
			"testdata/invalid/nats_large_records.yaml: nats.object_store.replicas: must be between 1 and 5, or 0 for 3 on a cluster of at least 3 servers and 1 otherwise (got 6)\n" +
			"testdata/invalid/nats_large_records.yaml: nats.object_store.max_age: must not be negative (got -1h0m0s)"},
		{"nats_oversize_conflict", "testdata/invalid/nats_oversize_conflict.yaml: nats.oversize: is the deprecated name of nats.large_records, which says dead_letter: remove nats.oversize"},
		{"start_position", "testdata/invalid/start_position.yaml: streams[1].start_position: must be one of TRIM_HORIZON, LATEST, AT_TIMESTAMP (got \"EARLIEST\")"},
		{"subject_empty_token", "" +
			"testdata/invalid/subject_empty_token.yaml: streams[0].subject: subject template \"kinesis..{stream}\": empty token at offset 8: a subject cannot start with '.' or hold '..'\n" +
			"testdata/invalid/subject_empty_token.yaml: streams[1].subject: subject template \"kinesis.{stream}.\": ends with '.'\n" +
			"testdata/invalid/subject_empty_token.yaml: streams[2].subject: subject template \".kinesis\": empty token at offset 0: a subject cannot start with '.' or hold '..'"},
		{"subject_unbalanced", "" +
			"testdata/invalid/subject_unbalanced.yaml: streams[0].subject: subject template \"kinesis.{stream\": unclosed '{' at offset 8\n" +
			"testdata/invalid/subject_unbalanced.yaml: streams[1].subject: subject template \"kinesis.stream}\": '}' without '{' at offset 14"},
		{"subject_unknown_placeholder", "testdata/invalid/subject_unknown_placeholder.yaml: streams[0].subject: subject template \"kinesis.{strem}\": unknown placeholder {strem} at offset 8: use {stream}, {shard}, {partition_key}, {consumer}, {data.PATH}, {log_group} or {log_stream}"},
		{"subject_whitespace", "" +
			"testdata/invalid/subject_whitespace.yaml: streams[0].subject: subject template \"kinesis. {stream}\": whitespace or control character ' ' at offset 8\n" +
			"testdata/invalid/subject_whitespace.yaml: streams[1].subject: subject template \"kinesis.\\x01\": whitespace or control character '\\x01' at offset 8\n" +
			"testdata/invalid/subject_whitespace.yaml: streams[2].subject: subject template is empty: set it, e.g. \"kinesis.{stream}.{shard}\""},
		{"subject_system", "" +
			"testdata/invalid/subject_system.yaml: streams[0].subject: must not start with \"$\": NATS uses those subjects (JetStream API, KV, Object Store, replies); use a prefix of your own such as \"kinesis.\" (got \"$KV.orders.{shard}\")\n" +
			"testdata/invalid/subject_system.yaml: streams[1].subject: must not start with \"_INBOX.\": NATS uses those subjects (JetStream API, KV, Object Store, replies); use a prefix of your own such as \"kinesis.\" (got \"_INBOX.{stream}\")\n" +
			"testdata/invalid/subject_system.yaml: streams[2].subject: must not start with \"$\": NATS uses those subjects (JetStream API, KV, Object Store, replies); use a prefix of your own such as \"kinesis.\" (got \"$JS.API.STREAM.CREATE.{stream}\")\n" +
			"testdata/invalid/subject_system.yaml: nats.dead_letter_subject: must not start with \"$\": NATS uses those subjects (JetStream API, KV, Object Store, replies); use a prefix of your own such as \"kinesis.\" (got \"$O.dead.{stream}\")"},
		{"subject_wildcard", "" +
			"testdata/invalid/subject_wildcard.yaml: streams[0].subject: subject template \"kinesis.*.{stream}\": wildcard '*' at offset 8: a publish subject cannot hold wildcards\n" +
			"testdata/invalid/subject_wildcard.yaml: streams[1].subject: subject template \"kinesis.>\": wildcard '>' at offset 8: a publish subject cannot hold wildcards"},
		{"syntax", "testdata/invalid/syntax.yaml: yaml: line 3: did not find expected '-' indicator"},
		{"syntax_nested", "testdata/invalid/syntax_nested.yaml: yaml: line 8: did not find expected key"},
		{"syntax_quote", "testdata/invalid/syntax_quote.yaml: yaml: line 4: found unexpected end of stream"},
		{"syntax_tab", "testdata/invalid/syntax_tab.yaml: yaml: line 4: found character that cannot start any token"},
		{"timestamp_not_allowed", "testdata/invalid/timestamp_not_allowed.yaml: streams[0].start_timestamp: only allowed when start_position is AT_TIMESTAMP"},
		{"top_level_list", "testdata/invalid/top_level_list.yaml: expected a mapping of sections (aws, streams, nats, checkpoint, log, timers, http, coordination), got a list"},
		{"two_documents", "testdata/invalid/two_documents.yaml: a second YAML document starts on line 5; the config is one document"},
		{"unknown_key", "testdata/invalid/unknown_key.yaml: streams[0].subjct: unknown key; did you mean subject?"},
		{"nats_misspelt_keys", "" +
			"testdata/invalid/nats_misspelt_keys.yaml: nats.publish_timout: unknown key; did you mean publish_timeout?\n" +
			"testdata/invalid/nats_misspelt_keys.yaml: nats.flavour: unknown key\n" +
			"testdata/invalid/nats_misspelt_keys.yaml: timers.idle_timeout: \"1.5\": add a unit, e.g. 1.5s"},
		{"unknown_section", "" +
			"testdata/invalid/unknown_section.yaml: stream: unknown key; did you mean streams?\n" +
			"testdata/invalid/unknown_section.yaml: streams: at least one stream is required"},
		{"unknown_key_and_values", "" +
			"testdata/invalid/unknown_key_and_values.yaml: streams[0].subjct: unknown key; did you mean subject?\n" +
			"testdata/invalid/unknown_key_and_values.yaml: streams[0].start_position: must be one of TRIM_HORIZON, LATEST, AT_TIMESTAMP (got \"EARLIEST\")\n" +
			"testdata/invalid/unknown_key_and_values.yaml: timers.idle_timeout: must be greater than 0 (got 0s)"},
		{"shape_and_values", "" +
			"testdata/invalid/shape_and_values.yaml: streams[0].name: duplicate key (first set on line 5)\n" +
			"testdata/invalid/shape_and_values.yaml: streams[1].start_position: expected a string, got a list\n" +
			"testdata/invalid/shape_and_values.yaml: nats.servers: expected a list, got \"nats://127.0.0.1:4222\"\n" +
			"testdata/invalid/shape_and_values.yaml: nats.publish_timeout: \"10\": add a unit, e.g. 10s\n" +
			"testdata/invalid/shape_and_values.yaml: metrics: unknown key\n" +
			"testdata/invalid/shape_and_values.yaml: streams[0].consumer: must be 1 to 128 characters from a-z, A-Z, 0-9, '_', '.', '-' (got \"fan out\")\n" +
			"testdata/invalid/shape_and_values.yaml: nats.oversize: must be one of dead_letter, fail (got \"drop\"); nats.oversize is deprecated: set nats.large_records instead\n" +
			"testdata/invalid/shape_and_values.yaml: log.level: must be one of trace, debug, info, warn, error (got \"loud\")"},
		{"content", "" +
			"testdata/invalid/content.yaml: streams[0].filter[6]: expected a filter pattern (a JSON object, as a string or a mapping), got a list\n" +
			"testdata/invalid/content.yaml: streams[1].max_decompressed: invalid size \"lots\": write bytes, or a number with a unit such as 64MiB or 512KiB\n" +
			"testdata/invalid/content.yaml: streams[0].subject_fallback: \"a.b\": one subject token holds no '.', '*', '>', whitespace or control character\n" +
			"testdata/invalid/content.yaml: streams[0].subject: {log_group} and {log_stream} need payload: cloudwatch_logs (got payload: zip)\n" +
			"testdata/invalid/content.yaml: streams[0].filter[1]: data.type: \"prefix\" takes a string or {\"equals-ignore-case\": string}, not a number\n" +
			"testdata/invalid/content.yaml: streams[0].filter[3]: data.amount: \"numeric\" takes [op, number] or [lower-op, number, upper-op, number], such as [\">\", 0, \"<=\", 5]\n" +
			"testdata/invalid/content.yaml: streams[0].filter[4]: unknown key \"partitionkey\": a pattern's top-level keys are data, partitionKey, sequenceNumber, approximateArrivalTimestamp, $or\n" +
			"testdata/invalid/content.yaml: streams[0].filter[5]: pattern is not valid JSON: invalid character 'o' in literal null (expecting 'u')\n" +
			"testdata/invalid/content.yaml: streams[0].payload: must be one of raw, gzip, cloudwatch_logs (got \"zip\")\n" +
			"testdata/invalid/content.yaml: streams[0].max_decompressed: must be between 1 and 1.0 GiB (got 2147483648)\n" +
			"testdata/invalid/content.yaml: streams[1].subject: subject template \"logs.{data}\": placeholder {data} at offset 5: names no field: use {data.PATH}, e.g. {data.type} or {data.items.0.sku}\n" +
			"testdata/invalid/content.yaml: nats.dead_letter_subject: {data.PATH}, {log_group} and {log_stream} are not allowed here: a dead letter stands for a record whose data may not decode; use {stream}, {shard}, {partition_key} or {consumer}"},
		{"files", "" +
			"testdata/invalid/files.yaml: nats.creds_file: file testdata/missing.creds does not exist\n" +
			"testdata/invalid/files.yaml: nats.tls.ca_file: testdata is a directory, not a file\n" +
			"testdata/invalid/files.yaml: nats.tls.key_file: file testdata/missing-key.pem does not exist"},
		{"wrong_kinds", "" +
			"testdata/invalid/wrong_kinds.yaml: aws: expected a mapping, got \"us-east-1\"\n" +
			"testdata/invalid/wrong_kinds.yaml: streams: expected a list, got \"orders\"\n" +
			"testdata/invalid/wrong_kinds.yaml: nats.servers: expected a list, got \"nats://127.0.0.1:4222\"\n" +
			"testdata/invalid/wrong_kinds.yaml: nats.jetstream: expected true or false, got \"true\" (remove the quotes)\n" +
			"testdata/invalid/wrong_kinds.yaml: nats.tls: expected a mapping, got a list\n" +
			"testdata/invalid/wrong_kinds.yaml: checkpoint.dir: expected a string, got a list\n" +
			"testdata/invalid/wrong_kinds.yaml: log.level: expected a string, got a mapping"},
		{"zero_durations", "" +
			"testdata/invalid/zero_durations.yaml: nats.publish_timeout: must be greater than 0 (got 0s)\n" +
			"testdata/invalid/zero_durations.yaml: timers.idle_timeout: must be greater than 0 (got 0s)\n" +
			"testdata/invalid/zero_durations.yaml: timers.min_resubscribe_interval: must be greater than 0 (got -1s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join("testdata", "invalid", tc.name+".yaml")
			cfg, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want error", path, cfg)
			}
			if got, want := err.Error(), tc.want; got != want {
				t.Fatalf("Load(%s) error:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

// TestLoad_InvalidCoverage keeps the table and the directory in step.
func TestLoad_InvalidCoverage(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("config_test.go")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if !strings.Contains(string(src), `{"`+name+`", `) {
			t.Errorf("%s has no case in TestLoad_Invalid", f)
		}
	}
}

func TestLoad_ValidationErrorType(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join("testdata", "invalid", "many.yaml"))
	ve, ok := errors.AsType[*ValidationError](err)
	if !ok {
		t.Fatalf("error %T, want *ValidationError", err)
	}
	if got, want := len(ve.Problems), 9; got != want {
		t.Fatalf("len(Problems) = %d, want %d", got, want)
	}
	if got, want := ve.Problems[1], (Problem{Path: "streams[0].start_position", Message: `must be one of TRIM_HORIZON, LATEST, AT_TIMESTAMP (got "EARLIEST")`}); got != want {
		t.Fatalf("Problems[1] = %+v, want %+v", got, want)
	}

	// A syntax error is not a list of problems.
	_, err = Load(filepath.Join("testdata", "invalid", "syntax.yaml"))
	if _, ok := errors.AsType[*ValidationError](err); ok {
		t.Fatalf("syntax error is a *ValidationError: %v", err)
	}
}

func TestLoad_MissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) error = %v, want os.ErrNotExist", err)
	}
}

func TestLoad_Full(t *testing.T) {
	t.Parallel()
	cfg, err := Load(filepath.Join("testdata", "valid", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(cfg.Streams), 2; got != want {
		t.Fatalf("len(Streams) = %d, want %d", got, want)
	}
	s := cfg.Streams[1]
	if got, want := s.StreamName(), "payments"; got != want {
		t.Fatalf("StreamName() = %q, want %q", got, want)
	}
	if got, want := s.Region(), "eu-west-1"; got != want {
		t.Fatalf("Region() = %q, want %q", got, want)
	}
	if got, want := s.StartPosition, fanout.StartAtTimestamp; got != want {
		t.Fatalf("StartPosition = %q, want %q", got, want)
	}
	// Unquoted, YAML reads it as a timestamp; the string field keeps the text.
	if got, want := s.StartTimestamp, "2024-01-02T15:04:05Z"; got != want {
		t.Fatalf("StartTimestamp = %q, want %q", got, want)
	}
	if got, want := s.StartTime(), time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("StartTime() = %v, want %v", got, want)
	}
	// A stream that sets only read keeps the polling defaults.
	if got, want := s.Spec(), (fanout.PollingSpec{Interval: time.Second, MaxRecords: 10000}); s.Read != fanout.ReadAuto || got.Read != fanout.ReadAuto || got.Polling != want {
		t.Fatalf("read %q, Spec().Read %q, Spec().Polling %+v; want auto and %+v", s.Read, got.Read, got.Polling, want)
	}
	if got, want := cfg.NATS.Servers, []string{"nats://127.0.0.1:4222", "nats://127.0.0.1:4223"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Servers = %q, want %q", got, want)
	}
	if !cfg.NATS.JetStream {
		t.Fatal("JetStream = false, want true")
	}
	// full.yaml spells out every default: it must equal the defaults.
	def := Default()
	def.AWS.Region = "us-east-1"
	def.Streams = cfg.Streams
	def.NATS.Servers = cfg.NATS.Servers
	def.NATS.JetStream = true
	def.Checkpoint.Dir = "/var/lib/fanoutd"
	def.NATS.Stream.Name = "KINESIS"
	def.NATS.Stream.Subjects = []string{"kinesis.>", "fanoutd.deadletter.>"}
	if !reflect.DeepEqual(cfg, def) {
		t.Fatalf("full.yaml:\n%+v\nwant defaults:\n%+v", cfg, def)
	}
}

func TestLoad_Defaults(t *testing.T) {
	t.Parallel()
	cfg, err := Load(filepath.Join("testdata", "valid", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		AWS: AWSConfig{StartupTimeout: Duration(time.Minute)},
		Streams: []StreamConfig{{
			Name:          "orders",
			Consumer:      "fanoutd",
			StartPosition: fanout.StartTrimHorizon,
			Subject:       "kinesis.{stream}",

			SubjectFallback: "_",
			Payload:         payload.Raw,
			MaxDecompressed: 64 << 20,

			OnExpiredCheckpoint: fanout.OnExpiredFail,
			Read:                fanout.ReadEFO,
			Polling:             PollingConfig{Interval: Duration(time.Second), MaxRecords: 10000},
		}},
		NATS: NATSConfig{
			Servers:           []string{"nats://127.0.0.1:4222"},
			Name:              "fanoutd",
			PublishTimeout:    Duration(10 * time.Second),
			BatchPublish:      true,
			LargeRecords:      "object_store",
			DeadLetterSubject: "fanoutd.deadletter.{stream}",
			ObjectStore:       ObjectStoreConfig{Bucket: "FANOUTD_RECORDS", Storage: "file", MaxAge: Duration(24 * time.Hour)},
			Stream:            JetStreamConfig{Replicas: 1, Storage: "file", DuplicateWindow: Duration(2 * time.Minute)},
			DeadLetterStream:  DeadLetterStreamConfig{Name: "FANOUTD_DEAD_LETTERS", Storage: "file", MaxAge: Duration(7 * 24 * time.Hour)},
		},
		Checkpoint: CheckpointConfig{Store: "file", Dir: "/var/lib/fanoutd", Interval: Duration(time.Second),
			Bucket: BucketConfig{Name: "fanoutd_checkpoints", Storage: "file"}},
		Coordination: CoordinationConfig{Mode: "none", LeaseTTL: Duration(10 * time.Second),
			Bucket: BucketConfig{Name: "fanoutd_coordination", Storage: "file"}},
		Log:  LogConfig{Level: "info", Format: "auto"},
		HTTP: HTTPConfig{Listen: "127.0.0.1:9780"},
		Timers: TimersConfig{
			IdleTimeout:            Duration(60 * time.Second),
			ShardSyncInterval:      Duration(60 * time.Second),
			MinResubscribeInterval: Duration(time.Second),
			BackoffInitial:         Duration(200 * time.Millisecond),
			BackoffMax:             Duration(30 * time.Second),
			ConsumerPollInitial:    Duration(500 * time.Millisecond),
			ConsumerPollMax:        Duration(5 * time.Second),
			ConsumerActiveTimeout:  Duration(2 * time.Minute),
			ShutdownTimeout:        Duration(20 * time.Second),
			CheckpointWriteTimeout: Duration(10 * time.Second),
			StallTimeout:           Duration(2 * time.Minute),
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("minimal.yaml:\n%+v\nwant:\n%+v", cfg, want)
	}
}

// TestLoad_LargeRecordsAlias checks that the deprecated nats.oversize
// still decides, alone or with a large_records that says the same.
func TestLoad_LargeRecordsAlias(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ nats, want string }{
		{"{}", "object_store"},
		{"{large_records: dead_letter}", "dead_letter"},
		{"{oversize: fail}", "fail"},
		{"{oversize: dead_letter}", "dead_letter"},
		{"{oversize: fail, large_records: fail}", "fail"},
		{"{oversize: dead_letter, large_records: object_store}", "dead_letter"},
	} {
		cfg, err := LoadBytes([]byte("streams: [{name: orders}]\ncheckpoint: {dir: /tmp/x}\nnats: "+tc.nats+"\n"), mapLookup(nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.nats, err)
		}
		if got := cfg.NATS.LargeRecordPolicy(); string(got) != tc.want {
			t.Fatalf("nats %s: LargeRecordPolicy() = %q, want %q", tc.nats, got, tc.want)
		}
	}
}

// TestLoad_PartialSection checks that setting one key of a section keeps
// the defaults of its other keys.
func TestLoad_PartialSection(t *testing.T) {
	t.Parallel()
	cfg, err := LoadBytes([]byte(`
streams: [{name: orders, consumer: c1}]
checkpoint: {dir: /tmp/x}
nats: {jetstream: true}
timers: {idle_timeout: 1500ms}
log:
`), mapLookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Timers.IdleTimeout, Duration(1500*time.Millisecond); got != want {
		t.Fatalf("IdleTimeout = %v, want %v", got, want)
	}
	if got, want := cfg.Timers.BackoffMax, Default().Timers.BackoffMax; got != want {
		t.Fatalf("BackoffMax = %v, want default %v", got, want)
	}
	if got, want := cfg.NATS.Name, "fanoutd"; got != want {
		t.Fatalf("NATS.Name = %q, want %q", got, want)
	}
	if got, want := cfg.Log, Default().Log; got != want {
		t.Fatalf("Log = %+v, want %+v", got, want)
	}
	if got, want := cfg.Streams[0].Subject, DefaultSubject; got != want {
		t.Fatalf("Subject = %q, want %q", got, want)
	}
}

func TestLoad_Anchors(t *testing.T) {
	t.Parallel()
	cfg, err := Load(filepath.Join("testdata", "valid", "anchors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range cfg.Streams {
		got = append(got, s.Name+" "+s.Consumer+" "+s.Subject)
	}
	want := []string{
		"orders shared events.{stream}.{shard}",
		"payments shared events.{stream}.{shard}",
		"refunds shared refunds.{partition_key}",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("streams = %q, want %q", got, want)
	}
}

func TestLoad_Env(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "valid", "env.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadBytes(data, mapLookup(map[string]string{
		"REGION":        "eu-central-1",
		"STREAM":        "orders",
		"ENVIRONMENT":   "prod",
		"NATS_URL":      "tls://nats.example.com:4222",
		"JETSTREAM":     "true",
		"NATS_PASSWORD": "p@ss: word, with $ and #",
		"STATE_DIR":     "/srv/state",
		"IDLE":          "90s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	wantFields(t, []field{
		{cfg.AWS.Region, "eu-central-1"},
		{cfg.Streams[0].Name, "orders"},
		{cfg.Streams[0].Subject, "kinesis.prod.{stream}"},
		{cfg.NATS.Servers[0], "tls://nats.example.com:4222"},
		{string(cfg.NATS.Password), "p@ss: word, with $ and #"},
		{cfg.Checkpoint.Dir, "/srv/state/checkpoints"},
		{cfg.Timers.IdleTimeout.String(), "1m30s"},
	})
	if !cfg.NATS.JetStream {
		t.Error("JetStream = false, want true from ${JETSTREAM}")
	}
}

func TestExpandString(t *testing.T) {
	t.Parallel()
	lookup := mapLookup(map[string]string{"A": "x", "EMPTY": "", "B_2": "y"})
	for _, tc := range []struct {
		in, want string
		errs     string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "x"},
		{in: "pre-${A}-${B_2}-post", want: "pre-x-y-post"},
		{in: "${EMPTY}", want: ""},
		{in: "$${A}", want: "${A}"},
		{in: "$$${A}", want: "$${A}"}, // left to right: "$", then "$${"
		{in: "$A $ $$ a$b", want: "$A $ $$ a$b"},
		{in: "${NOPE}", errs: "environment variable NOPE is not set"},
		{in: "${}", errs: `invalid environment variable name ""`},
		{in: "${A-B}", errs: `invalid environment variable name "A-B"`},
		{in: "${A", errs: `unterminated "${" (write "$${" for a literal "${")`},
		{in: "${X}${Y}", errs: "environment variable X is not set; environment variable Y is not set"},
	} {
		got, errs := expandString(tc.in, lookup)
		if g, w := strings.Join(errs, "; "), tc.errs; g != w {
			t.Errorf("expandString(%q) errors = %q, want %q", tc.in, g, w)
			continue
		}
		if tc.errs == "" && got != tc.want {
			t.Errorf("expandString(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestLoad_EnvNoInjection checks that a variable's value stays one scalar:
// it cannot add keys or list items, whatever YAML it holds.
func TestLoad_EnvNoInjection(t *testing.T) {
	t.Parallel()
	cfg, err := LoadBytes([]byte(`
streams:
  - name: orders
checkpoint:
  dir: ${DIR}
nats:
  token: ${TOKEN}
  name: "${NAME}"
`), mapLookup(map[string]string{
		"DIR":   "/x\nlog: {level: bogus}",
		"TOKEN": "[a, b]",
		"NAME":  "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Checkpoint.Dir, "/x\nlog: {level: bogus}"; got != want {
		t.Fatalf("Dir = %q, want %q", got, want)
	}
	if got, want := string(cfg.NATS.Token), "[a, b]"; got != want {
		t.Fatalf("Token = %q, want %q", got, want)
	}
	if got, want := cfg.NATS.Name, "true"; got != want {
		t.Fatalf("Name = %q, want %q", got, want)
	}
	if got, want := cfg.Log.Level, "info"; got != want {
		t.Fatalf("Log.Level = %q, want %q", got, want)
	}
}

func TestValidate_Programmatic(t *testing.T) {
	t.Parallel()
	cfg := Default()
	s := DefaultStream()
	s.Name = "orders"
	cfg.Streams = append(cfg.Streams, s)
	cfg.Checkpoint.Dir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}

	if err := Default().Validate(); err == nil {
		t.Fatal("Default().Validate() = nil, want missing streams and dir")
	}
}

func TestSecret_NotPrinted(t *testing.T) {
	t.Parallel()
	cfg, err := LoadBytes([]byte(`
streams: [{name: orders}]
checkpoint: {dir: /x}
nats: {user: u, password: hunter2}
`), mapLookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(cfg.NATS.Password), "hunter2"; got != want {
		t.Fatalf("Password = %q, want %q", got, want)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, cfg); strings.Contains(out, "hunter2") {
			t.Errorf("%s prints the password: %s", format, out)
		}
	}
}

// TestLoad_EnvTyping checks how expanded values are typed: from their text,
// quoted or not, with string fields keeping the text as it is.
func TestLoad_EnvTyping(t *testing.T) {
	t.Parallel()
	cfg, err := LoadBytes([]byte(`
streams: [{name: "${NUM}", consumer: "${EMPTY}x"}]
checkpoint: {dir: "${DIR}"}
nats: {jetstream: "${T}", token: "${EMPTY}", user: "${NULL}", password: "${EMPTY}", name: '$${LITERAL}'}
timers: {idle_timeout: "${IDLE}"}
`), mapLookup(map[string]string{"NUM": "0x1F", "EMPTY": "", "DIR": "/d", "T": "true", "NULL": "null", "IDLE": "5s"}))
	if err != nil {
		t.Fatal(err)
	}
	wantFields(t, []field{
		{cfg.Streams[0].Name, "0x1F"},
		{cfg.Streams[0].Consumer, "x"},
		{cfg.Checkpoint.Dir, "/d"},
		{string(cfg.NATS.Token), ""},
		{cfg.NATS.User, "null"},
		{string(cfg.NATS.Password), ""},
		{cfg.NATS.Name, "${LITERAL}"},
		{cfg.Timers.IdleTimeout.String(), "5s"},
	})
	if !cfg.NATS.JetStream {
		t.Error(`jetstream: "${T}" with T=true: JetStream = false`)
	}

	// An empty value is an empty string, not "unset": the default does not
	// come back.
	_, err = LoadBytes([]byte("streams: [{name: a, subject: \"${EMPTY}\"}]\ncheckpoint: {dir: /d}\n"), mapLookup(map[string]string{"EMPTY": ""}))
	if got, want := fmt.Sprint(err), `streams[0].subject: subject template is empty: set it, e.g. "kinesis.{stream}.{shard}"`; got != want {
		t.Fatalf("error = %q, want %q", got, want)
	}
}

func TestLoad_TrailingEmptyDocument(t *testing.T) {
	t.Parallel()
	if _, err := LoadBytes([]byte("streams: [{name: a}]\ncheckpoint: {dir: /d}\n---\n"), mapLookup(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestLoad_UnreadableFile: a file that exists but this user cannot read is
// named with what to do under systemd.
func TestLoad_UnreadableFile(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	path := filepath.Join(t.TempDir(), "nats.creds")
	if err := os.WriteFile(path, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := LoadBytes([]byte("streams: [{name: a}]\ncheckpoint: {dir: /d}\nnats: {creds_file: "+path+"}\n"), mapLookup(nil))
	want := fmt.Sprintf("nats.creds_file: file %s is not readable by this user (uid %d); under systemd's DynamicUser, pass it with LoadCredential= and name ${CREDENTIALS_DIRECTORY}/...", path, os.Getuid())
	if got := fmt.Sprint(err); got != want {
		t.Fatalf("error = %q, want %q", got, want)
	}
}

// TestLoad_StateDirectoryDefault: under systemd (StateDirectory=),
// checkpoint.dir defaults to $STATE_DIRECTORY, its first path if it holds
// several; a dir in the file wins, and without either it is required.
func TestLoad_StateDirectoryDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"state directory", "streams: [{name: a}]\n", map[string]string{"STATE_DIRECTORY": "/var/lib/fanoutd"}, "/var/lib/fanoutd"},
		{"several", "streams: [{name: a}]\n", map[string]string{"STATE_DIRECTORY": "/var/lib/fanoutd:/var/lib/other"}, "/var/lib/fanoutd"},
		{"file wins", "streams: [{name: a}]\ncheckpoint: {dir: /srv/cp}\n", map[string]string{"STATE_DIRECTORY": "/var/lib/fanoutd"}, "/srv/cp"},
		{"unset", "streams: [{name: a}]\n", nil, "checkpoint.dir: required when store is file"},
		{"empty", "streams: [{name: a}]\n", map[string]string{"STATE_DIRECTORY": ""}, "checkpoint.dir: required when store is file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadBytes([]byte(tc.file), mapLookup(tc.env))
			got := fmt.Sprint(err)
			if err == nil {
				got = cfg.Checkpoint.Dir
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// field is a value a test got from a config and the one it wants.
type field struct{ got, want string }

func wantFields(t *testing.T, fs []field) {
	t.Helper()
	for _, f := range fs {
		if f.got != f.want {
			t.Errorf("got %q, want %q", f.got, f.want)
		}
	}
}

// A polling mapping that sets one key keeps the default of the other.
func TestLoad_PollingKeepsDefaults(t *testing.T) {
	cfg, err := LoadBytes([]byte("streams: [{name: orders, read: polling, polling: {interval: 2s}}]\ncheckpoint: {dir: /tmp/x}\n"), mapLookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Streams[0].Spec()
	if want := (fanout.PollingSpec{Interval: 2 * time.Second, MaxRecords: 10000}); got.Read != fanout.ReadPolling || got.Polling != want {
		t.Fatalf("Spec() read %q polling %+v, want polling %+v", got.Read, got.Polling, want)
	}
}

func TestClosestKey(t *testing.T) {
	t.Parallel()
	known := []string{"servers", "publish_timeout", "jetstream", "tls", "token", "user"}
	for key, want := range map[string]string{
		"publish_timout":   "publish_timeout",
		"publishtimeout":   "publish_timeout",
		"server":           "servers",
		"jetstrem":         "jetstream",
		"tsl":              "",     // two edits on a key of three letters: not close
		"usr":              "user", // one edit on four letters
		"flavour":          "",
		"publish_interval": "",
	} {
		if got := closestKey(key, known); got != want {
			t.Errorf("closestKey(%q) = %q, want %q", key, got, want)
		}
	}
}
