package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/relay"
)

var regionRe = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// problems collects Problems in the order they are found.
type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Validate reports every problem with c, in the order of the file's
// sections (aws, streams, nats, checkpoint, log, timers), as a
// *ValidationError; nil if there is none. It checks values only: it opens
// no file and connects to nothing (Load also checks the files).
func (c *Config) Validate() error {
	if ps := c.problems(false); len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}

// problems lists the problems of Validate, and with files those of
// checkFiles too, in section order.
func (c *Config) problems(files bool) problems {
	var ps problems
	c.AWS.validate(&ps)
	validateStreams(c.Streams, &ps)
	c.NATS.validate(&ps)
	if files {
		c.checkFiles(&ps)
	}
	c.Checkpoint.validate(&ps)
	c.Log.validate(&ps)
	c.Timers.validate(&ps)
	c.HTTP.validate(&ps)
	c.Coordination.validate(c.Checkpoint.Store, &ps)
	for i, p := range ps {
		for _, k := range c.NATS.fromContext {
			if covers([]string{"nats." + k}, p.Path) {
				ps[i].Message += c.NATS.contextNote(k)
			}
		}
	}
	return ps
}

func (a AWSConfig) validate(ps *problems) {
	if a.Region != "" && !regionRe.MatchString(a.Region) {
		ps.add("aws.region", "must be an AWS region such as us-east-1 (got %q)", a.Region)
	}
	if a.Endpoint != "" {
		if u, err := url.Parse(a.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add("aws.endpoint", "must be an http or https URL (got %q)", a.Endpoint)
		}
	}
	if _, err := fanout.ParseDecoder(a.Decoder); err != nil {
		ps.add("aws.decoder", "must be fanoutd or sdk (got %q)", a.Decoder)
	}
	if a.StartupTimeout < Duration(time.Second) {
		ps.add("aws.startup_timeout", "must be at least 1s (got %v)", a.StartupTimeout)
	}
}

const nameRule = "must be 1 to 128 characters from a-z, A-Z, 0-9, '_', '.', '-'"

func validateStreams(streams []StreamConfig, ps *problems) {
	if len(streams) == 0 {
		ps.add("streams", "at least one stream is required")
		return
	}
	first := make(map[string]int) // stream name -> index
	for i, s := range streams {
		p := joinIndex("streams", i)
		s.validate(p, ps)
		name := s.StreamName()
		if name == "" {
			continue
		}
		if j, dup := first[name]; dup {
			ps.add(p, "duplicate of streams[%d] (stream %q); each stream is listed once", j, name)
			continue
		}
		first[name] = i
	}
}

func (s StreamConfig) validate(p string, ps *problems) {
	switch {
	case s.Name != "" && s.ARN != "":
		ps.add(p, "set either name or arn, not both")
	case s.Name == "" && s.ARN == "":
		ps.add(p, "name or arn is required")
	case s.Name != "" && !fanout.NameRe.MatchString(s.Name):
		ps.add(p+".name", "%s (got %q)", nameRule, s.Name)
	case s.ARN != "":
		if _, err := fanout.ParseStreamARN(s.ARN); err != nil {
			ps.add(p+".arn", "must look like arn:aws:kinesis:REGION:ACCOUNT:stream/NAME (got %q)", s.ARN)
		}
	}
	consumerOK := fanout.NameRe.MatchString(s.Consumer)
	if !consumerOK {
		ps.add(p+".consumer", "%s (got %q)", nameRule, s.Consumer)
	}
	if s.ConsumerARN != "" {
		s.validateConsumerARN(p+".consumer_arn", consumerOK, ps)
	}

	positionOK := slices.Contains(fanout.StartPositions, s.StartPosition)
	if !positionOK {
		ps.add(p+".start_position", "must be one of %s (got %q)", oneOf(fanout.StartPositions), s.StartPosition)
	}
	switch {
	case s.StartPosition == fanout.StartAtTimestamp && s.StartTimestamp == "":
		ps.add(p+".start_timestamp", "required when start_position is AT_TIMESTAMP")
	case s.StartPosition == fanout.StartAtTimestamp:
		if _, err := time.Parse(time.RFC3339, s.StartTimestamp); err != nil {
			ps.add(p+".start_timestamp", "must be an RFC 3339 time such as 2024-01-02T15:04:05Z (got %q)", s.StartTimestamp)
		}
	case positionOK && s.StartTimestamp != "":
		ps.add(p+".start_timestamp", "only allowed when start_position is AT_TIMESTAMP")
	}

	tmpl, err := relay.ParseSubjectTemplate(s.Subject)
	if err != nil {
		ps.add(p+".subject", "%v", err)
	} else if msg := systemSubject(s.Subject); msg != "" {
		ps.add(p+".subject", "%s", msg)
	}
	s.validateContent(p, tmpl, ps)
	if !slices.Contains(fanout.ExpiredPolicies, s.OnExpiredCheckpoint) {
		ps.add(p+".on_expired_checkpoint", "must be one of %s (got %q)", oneOf(fanout.ExpiredPolicies), s.OnExpiredCheckpoint)
	}
	if !slices.Contains(fanout.ReadModes, s.Read) {
		ps.add(p+".read", "must be one of %s (got %q)", oneOf(fanout.ReadModes), s.Read)
	}
	s.Polling.validate(p+".polling", ps)
}

func (c PollingConfig) validate(p string, ps *problems) {
	switch {
	case c.Interval < Duration(fanout.MinPollingInterval):
		ps.add(p+".interval", "must be at least %v: Kinesis takes 5 GetRecords calls a second per shard (got %v)", fanout.MinPollingInterval, c.Interval)
	case c.Interval > Duration(fanout.MaxPollingInterval):
		ps.add(p+".interval", "must be at most %v: a shard iterator expires 5 minutes after it was issued (got %v)", fanout.MaxPollingInterval, c.Interval)
	}
	if c.MaxRecords < 1 || c.MaxRecords > fanout.MaxPollingRecords {
		ps.add(p+".max_records", "must be between 1 and %d (got %d)", fanout.MaxPollingRecords, c.MaxRecords)
	}
}

// validateConsumerARN checks that consumer_arn names this stream and this
// consumer: the consumer name keys checkpoints and the {consumer}
// placeholder, so the two must agree.
func (s StreamConfig) validateConsumerARN(p string, consumerOK bool, ps *problems) {
	ca, err := fanout.ParseConsumerARN(s.ConsumerARN)
	if err != nil {
		ps.add(p, "must look like arn:aws:kinesis:REGION:ACCOUNT:stream/NAME/consumer/CONSUMER:TIMESTAMP (got %q)", s.ConsumerARN)
		return
	}
	if sa, err := fanout.ParseStreamARN(s.ARN); err == nil && s.Name == "" && ca.StreamARN != sa {
		ps.add(p, "names stream %s, not %s", ca.StreamARN, sa)
	} else if s.Name != "" && s.ARN == "" && ca.Stream != s.Name {
		ps.add(p, "names stream %q, not %q", ca.Stream, s.Name)
	}
	if consumerOK && ca.Consumer != s.Consumer {
		ps.add(p, "names consumer %q, not %q; set consumer: %s", ca.Consumer, s.Consumer, ca.Consumer)
	}
}

func (n NATSConfig) validate(ps *problems) {
	if len(n.Servers) == 0 {
		ps.add("nats.servers", "at least one server is required")
	}
	for i, s := range n.Servers {
		p := joinIndex("nats.servers", i)
		u, err := url.Parse(s)
		if err != nil {
			if strings.Contains(s, "@") { // may hold a password: do not echo it
				ps.add(p, "must be a URL with scheme nats, tls, ws or wss (cannot parse it)")
			} else {
				ps.add(p, "must be a URL with scheme nats, tls, ws or wss (got %q)", s)
			}
			continue
		}
		switch {
		case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss", u.Host == "":
			ps.add(p, "must be a URL with scheme nats, tls, ws or wss (got %q)", u.Redacted())
		}
	}

	var auth []string
	for _, a := range []struct {
		key string
		set bool
	}{
		{"creds_file", n.CredsFile != ""},
		{"nkey_seed_file", n.NKeySeedFile != ""},
		{"token", n.Token != ""},
		{"user", n.User != ""},
	} {
		if a.set {
			auth = append(auth, a.key+n.contextNote(a.key))
		}
	}
	if len(auth) > 1 {
		ps.add("nats", "set at most one of creds_file, nkey_seed_file, token and user (got %s)", strings.Join(auth, ", "))
	}
	if n.Password != "" && n.User == "" {
		ps.add("nats.password", "requires nats.user")
	}

	switch {
	case n.TLS.CertFile != "" && n.TLS.KeyFile == "":
		ps.add("nats.tls.key_file", "required when nats.tls.cert_file is set")
	case n.TLS.KeyFile != "" && n.TLS.CertFile == "":
		ps.add("nats.tls.cert_file", "required when nats.tls.key_file is set")
	}
	positive("nats.publish_timeout", n.PublishTimeout, ps)
	if !slices.Contains(relay.LargeRecordPolicies, n.LargeRecords) {
		ps.add("nats.large_records", "must be one of %s (got %q)", oneOf(relay.LargeRecordPolicies), n.LargeRecords)
	}
	switch {
	case n.Oversize == "":
	case !slices.Contains(relay.OversizePolicies, n.Oversize):
		ps.add("nats.oversize", "must be one of %s (got %q); nats.oversize is deprecated: set nats.large_records instead", oneOf(relay.OversizePolicies), n.Oversize)
	case n.LargeRecords != relay.OversizeObjectStore && n.LargeRecords != n.Oversize:
		ps.add("nats.oversize", "is the deprecated name of nats.large_records, which says %s: remove nats.oversize", n.LargeRecords)
	}
	n.ObjectStore.validate(ps)
	if t, err := relay.ParseSubjectTemplate(n.DeadLetterSubject); err != nil {
		ps.add("nats.dead_letter_subject", "%v", err)
	} else if t.Fallible() {
		ps.add("nats.dead_letter_subject", "%v", relay.ErrDeadLetterFromData)
	} else if msg := systemSubject(n.DeadLetterSubject); msg != "" {
		ps.add("nats.dead_letter_subject", "%s", msg)
	}
	n.Stream.validate(n.JetStream, ps)
	n.DeadLetterStream.validate(ps)
}

func (d DeadLetterStreamConfig) validate(ps *problems) {
	if !streamNameRe.MatchString(d.Name) {
		ps.add("nats.dead_letter_stream.name", "must be 1 to 255 characters without whitespace, '.', '*', '>', '/' or '\\' (got %q)", d.Name)
	}
	validateStorage("nats.dead_letter_stream", d.Storage, d.Replicas, ps)
	if d.MaxAge < 0 {
		ps.add("nats.dead_letter_stream.max_age", "must not be negative (got %s)", time.Duration(d.MaxAge))
	}
}

var (
	bucketNameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)
	instanceRe   = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
)

func (b BucketConfig) validate(path string, ps *problems) {
	if !bucketNameRe.MatchString(b.Name) {
		ps.add(path+".name", "must be 1 to 255 of a-z, A-Z, 0-9, '_' and '-' (got %q)", b.Name)
	}
	validateStorage(path, b.Storage, b.Replicas, ps)
}

// validateStorage checks the storage and replicas of something fanoutd
// creates in JetStream (a stream or a bucket) under path.
func validateStorage(path, storage string, replicas int, ps *problems) {
	if _, err := jsassets.ParseStorage(storage); err != nil {
		ps.add(path+".storage", "%v", err)
	}
	if replicas < 0 || replicas > 5 {
		ps.add(path+".replicas", "must be between 1 and 5, or 0 for 3 on a cluster of at least 3 servers and 1 otherwise (got %d)", replicas)
	}
}

func (c CoordinationConfig) validate(store string, ps *problems) {
	switch c.Mode {
	case CoordinationNone:
		return
	case CoordinationJetStream:
	default:
		ps.add("coordination.mode", "must be one of %s, %s (got %q)", CoordinationNone, CoordinationJetStream, c.Mode)
		return
	}
	if store != StoreJetStream {
		ps.add("coordination.mode", "%s requires checkpoint.store: %s: shards move between instances, so their checkpoints must be shared (got checkpoint.store %q)", CoordinationJetStream, StoreJetStream, store)
	}
	if c.Instance != "" && !instanceRe.MatchString(c.Instance) {
		ps.add("coordination.instance", "must be 1 to 128 of a-z, A-Z, 0-9, '_', '.' and '-', unique in the group (got %q)", c.Instance)
	}
	if time.Duration(c.LeaseTTL) < time.Second {
		ps.add("coordination.lease_ttl", "must be at least 1s (got %s)", c.LeaseTTL)
	}
	c.Bucket.validate("coordination.bucket", ps)
}

func (o ObjectStoreConfig) validate(ps *problems) {
	if !bucketNameRe.MatchString(o.Bucket) {
		ps.add("nats.object_store.bucket", "must be 1 to 255 characters from a-z, A-Z, 0-9, '_', '-' (got %q)", o.Bucket)
	}
	validateStorage("nats.object_store", o.Storage, o.Replicas, ps)
	if o.MaxAge < 0 {
		ps.add("nats.object_store.max_age", "must not be negative (got %s)", time.Duration(o.MaxAge))
	}
}

var streamNameRe = regexp.MustCompile(`^[^\s.*>/\\]{1,255}$`)

func (j JetStreamConfig) validate(jetstream bool, ps *problems) {
	if j.Name == "" {
		if len(j.Subjects) > 0 {
			ps.add("nats.stream.name", "required when nats.stream.subjects is set")
		}
		return
	}
	if !jetstream {
		ps.add("nats.stream", "requires nats.jetstream: true")
	}
	if !streamNameRe.MatchString(j.Name) {
		ps.add("nats.stream.name", "must be 1 to 255 characters without whitespace, '.', '*', '>', '/' or '\\' (got %q)", j.Name)
	}
	if len(j.Subjects) == 0 {
		ps.add("nats.stream.subjects", "at least one subject is required")
	}
	for i, sub := range j.Subjects {
		if !validFilterSubject(sub) {
			ps.add(joinIndex("nats.stream.subjects", i), "must be a NATS subject, wildcards allowed (got %q)", sub)
		}
	}
	if j.Replicas < 1 || j.Replicas > 5 {
		ps.add("nats.stream.replicas", "must be between 1 and 5 (got %d)", j.Replicas)
	}
	if _, err := jsassets.ParseStorage(j.Storage); err != nil {
		ps.add("nats.stream.storage", "%v", err)
	}
	positive("nats.stream.duplicate_window", j.DuplicateWindow, ps)
	if j.MaxBytes < 0 {
		ps.add("nats.stream.max_bytes", "must not be negative (got %d)", j.MaxBytes)
	}
	if j.MaxMsgs < 0 {
		ps.add("nats.stream.max_msgs", "must not be negative (got %d)", j.MaxMsgs)
	}
}

// validFilterSubject accepts subjects with wildcards: tokens are non-empty,
// hold no whitespace, and '*' or '>' stand alone ('>' last).
func validFilterSubject(s string) bool {
	if s == "" {
		return false
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return false
		case strings.ContainsAny(t, " \t\r\n"):
			return false
		case t == ">" && i != len(toks)-1:
			return false
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return false
		}
	}
	return true
}

func (c CheckpointConfig) validate(ps *problems) {
	switch c.Store {
	case StoreFile:
		if c.Dir == "" {
			ps.add("checkpoint.dir", "required when store is %s", StoreFile)
		}
	case StoreJetStream:
		c.Bucket.validate("checkpoint.bucket", ps)
	default:
		ps.add("checkpoint.store", "must be one of %s, %s (got %q)", StoreFile, StoreJetStream, c.Store)
	}
	if c.Interval < 0 {
		ps.add("checkpoint.interval", "must not be negative (got %s)", c.Interval)
	}
}

func (l LogConfig) validate(ps *problems) {
	switch l.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		ps.add("log.level", "must be one of trace, debug, info, warn, error (got %q)", l.Level)
	}
	switch l.Format {
	case "auto", "json", "console":
	default:
		ps.add("log.format", "must be one of auto, json, console (got %q)", l.Format)
	}
}

func positive(path string, d Duration, ps *problems) {
	if d <= 0 {
		ps.add(path, "must be greater than 0 (got %s)", d)
	}
}

func notAbove(path string, d Duration, maxPath string, max Duration, ps *problems) {
	if d > 0 && max > 0 && d > max {
		ps.add(path, "must not exceed %s (got %s > %s)", maxPath, d, max)
	}
}

func (h HTTPConfig) validate(ps *problems) {
	if h.Listen == "" {
		return
	}
	if _, port, err := net.SplitHostPort(h.Listen); err != nil || port == "" {
		ps.add("http.listen", "must be host:port, e.g. 127.0.0.1:9780, or empty to turn it off (got %q)", h.Listen)
	}
}

// oneOf lists the values of an enum for an error message: "a, b, c".
func oneOf[T ~string](values []T) string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return strings.Join(out, ", ")
}

// systemSubjectPrefixes start the subjects NATS itself uses: "$JS.API.",
// "$KV.", "$O.", "$SYS." and every other "$" subject, and the replies of
// requests ("_INBOX."). Records published there would drive the JetStream
// API, overwrite KV keys or Object Store chunks, or answer requests.
var systemSubjectPrefixes = []string{"$", "_INBOX."}

// systemSubject says why a subject template is refused when its rendered
// subjects would start in NATS's system subjects, and "" otherwise.
func systemSubject(template string) string {
	for _, p := range systemSubjectPrefixes {
		if strings.HasPrefix(template, p) {
			return fmt.Sprintf("must not start with %q: NATS uses those subjects (JetStream API, KV, Object Store, replies); use a prefix of your own such as \"kinesis.\" (got %q)", p, template)
		}
	}
	return ""
}
