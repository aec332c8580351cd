package fanout

import (
	"errors"

	"github.com/aws/smithy-go"
)

// errorCode is the AWS error code of err ("" when it is not an API error).
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// AWS error codes the consumer branches on.
const (
	codeResourceInUse    = "ResourceInUseException"
	codeResourceNotFound = "ResourceNotFoundException"
	codeLimitExceeded    = "LimitExceededException"
	codeInvalidArgument  = "InvalidArgumentException"
	codeAccessDenied     = "AccessDeniedException"

	codeProvisionedThroughput = "ProvisionedThroughputExceededException"
	codeExpiredIterator       = "ExpiredIteratorException"
	// codeUnknownOperation is what a server answers for an operation it
	// does not serve.
	codeUnknownOperation = "UnknownOperationException"
)

// ErrExpiredCheckpoint means a shard's checkpoint is no longer readable:
// Kinesis rejected it, most likely because it is older than the stream's
// retention period.
var ErrExpiredCheckpoint = errors.New("checkpoint expired")

// ErrCheckpointTaken means another process wrote a shard's checkpoint while
// this one read the shard without a lease: two instances share a checkpoint
// bucket without coordination. Reading on would publish every record twice
// and move the checkpoints back and forth.
var ErrCheckpointTaken = errors.New("another process writes this shard's checkpoints: several instances share the checkpoint bucket without coordination; set coordination.mode: jetstream on every instance, or give each its own checkpoint bucket")

// ErrStreamNotFound means the stream does not exist (or was deleted).
var ErrStreamNotFound = errors.New("stream not found")

// ErrConsumerNotFound: no consumer of that name is registered on the stream.
var ErrConsumerNotFound = errors.New("consumer not registered")

// errShardGone: Kinesis no longer knows the shard (not found when read,
// and absent from ListShards): its records aged out of retention, so it
// counts as ended and its children may start.
var errShardGone = errors.New("shard is gone from the stream")

// errorLabels are the error codes ShardStatus.Errors (and so the
// fanoutd_subscribe_errors_total metric's error label) may hold: the codes
// Kinesis documents for SubscribeToShard, its event stream and every call,
// plus labelTransport and labelOther. The code comes from the network, so
// anything else a server sends is folded into labelOther: the label's
// cardinality is bounded and its value always valid UTF-8.
var errorLabels = map[string]bool{
	codeResourceInUse:                        true,
	codeResourceNotFound:                     true,
	codeLimitExceeded:                        true,
	codeInvalidArgument:                      true,
	codeAccessDenied:                         true,
	"ExpiredIteratorException":               true,
	"ExpiredNextTokenException":              true,
	"ProvisionedThroughputExceededException": true,
	"InternalFailure":                        true,
	"InternalFailureException":               true,
	"ServiceUnavailable":                     true,
	"ServiceUnavailableException":            true,
	"ThrottlingException":                    true,
	"ValidationError":                        true,
	"ValidationException":                    true,
	"KMSAccessDeniedException":               true,
	"KMSDisabledException":                   true,
	"KMSInvalidStateException":               true,
	"KMSNotFoundException":                   true,
	"KMSOptInRequired":                       true,
	"KMSThrottlingException":                 true,
	"UnrecognizedClientException":            true,
	"InvalidSignatureException":              true,
	"IncompleteSignature":                    true,
	"MissingAuthenticationToken":             true,
	"InvalidClientTokenId":                   true,
	"ExpiredTokenException":                  true,
	"RequestExpired":                         true,
	codeUnknownOperation:                     true,
}

const (
	// labelTransport is the label of an error without an AWS code (DNS,
	// TCP, TLS, HTTP/2).
	labelTransport = "transport"
	// labelOther is the label of an AWS error code outside errorLabels.
	labelOther = "other"
)

// errorLabel is the bounded label of err for ShardStatus.Errors.
func errorLabel(err error) string {
	code := errorCode(err)
	switch {
	case code == "":
		return labelTransport
	case errorLabels[code]:
		return code
	}
	return labelOther
}
