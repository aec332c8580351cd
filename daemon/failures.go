package daemon

import (
	"errors"

	"github.com/aws/smithy-go"

	"github.com/fanoutd/fanoutd/fanout"
	"github.com/fanoutd/fanoutd/record"
)

// operatorCodes are the AWS error codes that say the credentials or their
// permissions are wrong: the same request after a restart gets the same
// answer.
var operatorCodes = map[string]bool{
	"AccessDeniedException":       true,
	"AccessDenied":                true,
	"UnrecognizedClientException": true,
	"InvalidSignatureException":   true,
	"IncompleteSignature":         true,
	"InvalidClientTokenId":        true,
}

// operatorFailure reports whether a stream's fatal error is one a restart
// meets again, so that only an operator can cure it: the stream does not
// exist, a checkpoint expired under on_expired_checkpoint: fail, a record
// the configured large_records policy stops on, or AWS refusing the
// credentials or the permission.
func operatorFailure(err error) bool {
	if errors.Is(err, fanout.ErrStreamNotFound) || errors.Is(err, fanout.ErrExpiredCheckpoint) || errors.Is(err, record.ErrStop) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && operatorCodes[ae.ErrorCode()]
}
