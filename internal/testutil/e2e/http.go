package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// HTTPAddrFromLog finds the daemon's HTTP endpoint in its JSON log.
func HTTPAddrFromLog(log string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "HTTP endpoint listening") {
			if _, rest, ok := strings.Cut(line, `"addr":"`); ok {
				addr, _, _ := strings.Cut(rest, `"`)
				return addr
			}
		}
	}
	return ""
}

// WaitHTTPAddr waits for the daemon's log to name its HTTP endpoint.
func WaitHTTPAddr(t testing.TB, log interface{ String() string }) string {
	t.Helper()
	var addr string
	testutil.WaitFor(t, 20*time.Second, "the HTTP endpoint", func() bool { addr = HTTPAddrFromLog(log.String()); return addr != "" })
	return addr
}

// Get returns the status and body of a GET of url.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// MetricValue finds a sample by name and exact label text, e.g.
// fanoutd_records_relayed_total{stream="s"}; -1 if absent.
func MetricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
