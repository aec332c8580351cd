package fanout

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/smithy-go"
)

// What the shard loop makes of SubscribeToShard's errors, wrapped or not.
func TestEFOFaults(t *testing.T) {
	api := func(code string) error { return fmt.Errorf("subscribe: %w", &smithy.GenericAPIError{Code: code}) }
	for _, tc := range []struct {
		err  error
		want readFault
	}{
		{api("ResourceInUseException"), faultContended},
		{api("LimitExceededException"), faultThrottled},
		{api("ResourceNotFoundException"), faultNotFound},
		{api("InvalidArgumentException"), faultPosition},
		{api("AccessDeniedException"), faultDenied},
		{api("InternalFailureException"), faultTransient},
		{errors.New("dial tcp: connection refused"), faultTransient},
		{context.DeadlineExceeded, faultTransient},
	} {
		if got := (&efoReader{}).fault(tc.err); got != tc.want {
			t.Errorf("fault(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
