package fanout

import (
	"errors"
	"regexp"
)

// Kinesis's own rules for stream and consumer names: NameRe matches a
// valid stream or consumer name.
var (
	NameRe        = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	streamARNRe   = regexp.MustCompile(`^arn:(aws[a-z-]*):kinesis:([a-z0-9-]+):([0-9]{12}):stream/([a-zA-Z0-9_.-]{1,128})$`)
	consumerARNRe = regexp.MustCompile(`^arn:(aws[a-z-]*):kinesis:([a-z0-9-]+):([0-9]{12}):stream/([a-zA-Z0-9_.-]{1,128})/consumer/([a-zA-Z0-9_.-]{1,128}):([0-9]+)$`)
)

// StreamARN is a parsed arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME.
type StreamARN struct {
	Partition string
	Region    string
	Account   string
	Stream    string
}

// String formats a back into an ARN.
func (a StreamARN) String() string {
	return "arn:" + a.Partition + ":kinesis:" + a.Region + ":" + a.Account + ":stream/" + a.Stream
}

// ParseStreamARN parses a Kinesis stream ARN.
func ParseStreamARN(s string) (StreamARN, error) {
	m := streamARNRe.FindStringSubmatch(s)
	if m == nil {
		return StreamARN{}, errors.New("not a Kinesis stream ARN")
	}
	return StreamARN{Partition: m[1], Region: m[2], Account: m[3], Stream: m[4]}, nil
}

// ConsumerARN is a parsed
// arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME/consumer/CONSUMER:CREATION.
type ConsumerARN struct {
	StreamARN
	Consumer string
	// Creation is the consumer's creation time in epoch seconds, as text.
	Creation string
}

// String formats a back into an ARN (without it, the embedded StreamARN's
// String would drop the consumer part).
func (a ConsumerARN) String() string {
	return a.StreamARN.String() + "/consumer/" + a.Consumer + ":" + a.Creation
}

// ParseConsumerARN parses a Kinesis enhanced fan-out consumer ARN.
func ParseConsumerARN(s string) (ConsumerARN, error) {
	m := consumerARNRe.FindStringSubmatch(s)
	if m == nil {
		return ConsumerARN{}, errors.New("not a Kinesis consumer ARN")
	}
	return ConsumerARN{
		StreamARN: StreamARN{Partition: m[1], Region: m[2], Account: m[3], Stream: m[4]},
		Consumer:  m[5],
		Creation:  m[6],
	}, nil
}
