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
)

// ErrExpiredCheckpoint means a shard's checkpoint is no longer readable:
// Kinesis rejected it, most likely because it is older than the stream's
// retention period.
var ErrExpiredCheckpoint = errors.New("checkpoint expired")

// ErrStreamNotFound means the stream does not exist (or was deleted).
var ErrStreamNotFound = errors.New("stream not found")
