package emulator

import (
	"crypto/md5"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"
)

// maxHashKey is 2^128-1, the top of the partition key hash space.
var maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// Stream statuses and modes as AWS names them.
const (
	StatusCreating = "CREATING"
	StatusActive   = "ACTIVE"
	StatusDeleting = "DELETING"
	StatusUpdating = "UPDATING"

	ModeProvisioned = "PROVISIONED"
	ModeOnDemand    = "ON_DEMAND"

	onDemandInitialShards        = 4
	defaultRetentionHours        = 24
	defaultMaxConsumersPerStream = 20
	maxConsumersCreating         = 5
)

type record struct {
	seq          *big.Int
	seqStr       string
	data         []byte
	partitionKey string
	hashKey      string // explicit hash key as given, "" when not set
	arrival      time.Time
}

type shard struct {
	id             string
	index          int
	hashStart      *big.Int
	hashEnd        *big.Int
	parent         string
	adjacentParent string
	startSeq       *big.Int
	endSeq         *big.Int // nil while open
	created        time.Time
	closed         time.Time // zero while open
	children       []string

	records []record
	// trimmed counts records removed from the head of records by retention;
	// positions are absolute (trimmed + index into records).
	trimmed int
	// lastTrimmed is the sequence number of the last trimmed record.
	lastTrimmed *big.Int
	limits      *shardLimits
	// polled is set by the first GetRecords call the shard served.
	polled bool
	// notify is closed and replaced whenever the shard changes (a record is
	// put, the shard closes), waking subscribers.
	notify chan struct{}
}

func (sh *shard) isOpen() bool { return sh.endSeq == nil }

// end is the absolute position after the last record.
func (sh *shard) end() int { return sh.trimmed + len(sh.records) }

func (sh *shard) wake() {
	close(sh.notify)
	sh.notify = make(chan struct{})
}

// recordAt returns the record at an absolute position.
func (sh *shard) recordAt(pos int) *record { return &sh.records[pos-sh.trimmed] }

// seqBefore is the sequence number that AFTER_SEQUENCE_NUMBER resumes from to
// reach pos: the last record before pos, or the shard's starting number.
func (sh *shard) seqBefore(pos int) string {
	if pos > sh.trimmed {
		return sh.records[pos-1-sh.trimmed].seqStr
	}
	if sh.lastTrimmed != nil {
		return formatSeq(sh.lastTrimmed)
	}
	return formatSeq(sh.startSeq)
}

// positionAfter returns the absolute position of the first record whose
// sequence number is greater than seq (after=true) or at least seq.
func (sh *shard) position(seq *big.Int, after bool) int {
	i := sort.Search(len(sh.records), func(i int) bool {
		c := sh.records[i].seq.Cmp(seq)
		if after {
			return c > 0
		}
		return c >= 0
	})
	return sh.trimmed + i
}

// positionAtTime is the first record that arrived at or after t.
func (sh *shard) positionAtTime(t time.Time) int {
	i := sort.Search(len(sh.records), func(i int) bool { return !sh.records[i].arrival.Before(t) })
	return sh.trimmed + i
}

func (sh *shard) openAt(t time.Time) bool {
	return !sh.created.After(t) && (sh.isOpen() || sh.closed.After(t))
}

type consumer struct {
	name      string
	arn       string
	created   time.Time
	activeAt  time.Time
	deletedAt time.Time // zero unless deregistered
	tags      map[string]string
}

func (c *consumer) status(now time.Time) string {
	switch {
	case !c.deletedAt.IsZero():
		return StatusDeleting
	case now.Before(c.activeAt):
		return StatusCreating
	default:
		return StatusActive
	}
}

type stream struct {
	name           string
	arn            string
	mode           string
	created        time.Time
	activeAt       time.Time
	deletedAt      time.Time
	retentionHours int
	maxRecordSize  int
	shards         []*shard
	byID           map[string]*shard
	consumers      map[string]*consumer // by name
	maxConsumers   int
	nextShard      int
	updatingUntil  time.Time
	// settings holds what api_settings.go and api_tags.go manage: tags,
	// encryption, enhanced monitoring.
	settings streamSettings
}

func (st *stream) status(now time.Time) string {
	switch {
	case !st.deletedAt.IsZero():
		return StatusDeleting
	case now.Before(st.activeAt):
		return StatusCreating
	case now.Before(st.updatingUntil):
		return StatusUpdating
	default:
		return StatusActive
	}
}

func (st *stream) openShards() []*shard {
	var out []*shard
	for _, sh := range st.shards {
		if sh.isOpen() {
			out = append(out, sh)
		}
	}
	return out
}

// shardForHash finds the open shard whose range holds h.
func (st *stream) shardForHash(h *big.Int) *shard {
	for _, sh := range st.shards {
		if sh.isOpen() && sh.hashStart.Cmp(h) <= 0 && sh.hashEnd.Cmp(h) >= 0 {
			return sh
		}
	}
	return nil
}

// ShardID formats a shard index as AWS does: shardId-000000000000.
func ShardID(index int) string { return fmt.Sprintf("shardId-%012d", index) }

// hashKeyOf maps a partition key to the hash key space as AWS does: the MD5
// digest read as a 128-bit big-endian unsigned integer.
func hashKeyOf(partitionKey string) *big.Int {
	sum := md5.Sum([]byte(partitionKey))
	return new(big.Int).SetBytes(sum[:])
}

// uniformRanges splits the hash key space into n contiguous ranges of equal
// width, the last one ending at 2^128-1, as CreateStream does.
func uniformRanges(n int) [][2]*big.Int {
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(space, big.NewInt(int64(n)))
	out := make([][2]*big.Int, n)
	for i := 0; i < n; i++ {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Mul(step, big.NewInt(int64(i+1))), big.NewInt(1))
		if i == n-1 {
			end = new(big.Int).Set(maxHashKey)
		}
		out[i] = [2]*big.Int{start, end}
	}
	return out
}

// Sequence numbers are 56-digit decimal strings like AWS's: "49", a
// 30-digit stream-wide counter, then the 24-digit shard index. Numbers thus
// increase within a shard, are unique in the stream, and name their shard.
const seqWidth = 56

var seqShardMod = new(big.Int).Exp(big.NewInt(10), big.NewInt(24), nil)
var seqPrefix = new(big.Int).Mul(big.NewInt(49), new(big.Int).Exp(big.NewInt(10), big.NewInt(54), nil))

func makeSeq(counter uint64, shardIndex int) *big.Int {
	n := new(big.Int).SetUint64(counter)
	n.Mul(n, seqShardMod)
	n.Add(n, big.NewInt(int64(shardIndex)))
	return n.Add(n, seqPrefix)
}

func formatSeq(n *big.Int) string {
	s := n.String()
	if len(s) < seqWidth {
		s = strings.Repeat("0", seqWidth-len(s)) + s
	}
	return s
}

// parseSeq parses a sequence number and returns the shard index it names.
func parseSeq(s string) (*big.Int, int, bool) {
	if s == "" || len(s) > 128 {
		return nil, 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return nil, 0, false
		}
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Cmp(seqPrefix) < 0 {
		return nil, 0, false
	}
	idx := new(big.Int).Mod(n, seqShardMod)
	if !idx.IsInt64() {
		return nil, 0, false
	}
	return n, int(idx.Int64()), true
}

func parseHashKey(s string) (*big.Int, bool) {
	if s == "" || len(s) > 39 {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return nil, false
		}
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Sign() < 0 || n.Cmp(maxHashKey) > 0 {
		return nil, false
	}
	return n, true
}

func epochSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}
