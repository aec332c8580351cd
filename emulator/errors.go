package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error type names as AWS sends them in `__type` and in exception frames.
const (
	ErrResourceNotFound         = "ResourceNotFoundException"
	ErrResourceInUse            = "ResourceInUseException"
	ErrInvalidArgument          = "InvalidArgumentException"
	ErrLimitExceeded            = "LimitExceededException"
	ErrProvisionedThroughput    = "ProvisionedThroughputExceededException"
	ErrExpiredIterator          = "ExpiredIteratorException"
	ErrExpiredNextToken         = "ExpiredNextTokenException"
	ErrInternalFailure          = "InternalFailureException"
	ErrAccessDenied             = "AccessDeniedException"
	ErrValidation               = "ValidationException"
	ErrSerialization            = "SerializationException"
	ErrUnknownOperation         = "UnknownOperationException"
	ErrMissingAuthToken         = "MissingAuthenticationTokenException"
	ErrKMSDisabled              = "KMSDisabledException"
	ErrKMSInvalidState          = "KMSInvalidStateException"
	ErrKMSAccessDenied          = "KMSAccessDeniedException"
	ErrKMSNotFound              = "KMSNotFoundException"
	ErrKMSOptInRequired         = "KMSOptInRequired"
	ErrKMSThrottling            = "KMSThrottlingException"
	ErrServiceUnavailable       = "ServiceUnavailableException"
	errInternalFailureShortName = "InternalFailure"
)

// apiError is an error the emulator answers with: an HTTP status, the AWS
// error type and a message.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func errorf(typ, format string, args ...any) *apiError {
	status := http.StatusBadRequest
	switch typ {
	case ErrInternalFailure, errInternalFailureShortName:
		status = http.StatusInternalServerError
	case ErrServiceUnavailable:
		status = http.StatusServiceUnavailable
	}
	return &apiError{status: status, typ: typ, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return errorf(ErrResourceNotFound, format, args...)
}

func invalidArg(format string, args ...any) *apiError {
	return errorf(ErrInvalidArgument, format, args...)
}

func inUse(format string, args ...any) *apiError {
	return errorf(ErrResourceInUse, format, args...)
}

func writeError(w http.ResponseWriter, e *apiError) {
	body, _ := json.Marshal(map[string]string{"__type": e.typ, "message": e.msg})
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("X-Amzn-ErrorType", e.typ)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}
