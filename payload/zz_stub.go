// Package payload is a stub until the real package lands.
package payload

type Kind string

const (
	Raw            Kind = "raw"
	Gzip           Kind = "gzip"
	CloudWatchLogs Kind = "cloudwatch_logs"
)

var Kinds = []Kind{Raw, Gzip, CloudWatchLogs}

const DefaultMaxDecompressed = 64 << 20

type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.Err }

type Decoder struct{}

func NewDecoder(maxDecompressed int64) *Decoder { return &Decoder{} }
func IsGzip(data []byte) bool                    { return len(data) > 1 && data[0] == 0x1f && data[1] == 0x8b }
func (d *Decoder) Gunzip(dst, data []byte) ([]byte, error) { return nil, nil }

type Logs struct {
	MessageType, Owner, LogGroup, LogStream string
	SubscriptionFilters                     []string
	Events                                  []LogEvent
}
type LogEvent struct {
	ID        string
	Timestamp int64
	Message   []byte
}

const DataMessage = "DATA_MESSAGE"
const ControlMessage = "CONTROL_MESSAGE"

func (d *Decoder) CloudWatchLogs(data []byte) (*Logs, error) { return nil, nil }
func (d *Decoder) Release()                                   {}
