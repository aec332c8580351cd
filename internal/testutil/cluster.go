package testutil

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ClusterBound bounds every wait on a cluster (forming, electing a leader, a
// restarted node catching up): generous for a loaded 2-core machine running
// with -race.
const ClusterBound = 30 * time.Second

// Node is one server of a Cluster; its options are kept so that it restarts
// with the same name, ports and store.
type Node struct {
	Name string
	Opts *server.Options
	NS   *server.Server
}

// Cluster is an in-process NATS cluster with JetStream on file storage.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
}

// FreePort returns a TCP port free on 127.0.0.1 now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartCluster starts n servers routed to each other and waits until each
// takes connections. They are shut down when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	routePorts := make([]int, n)
	for i := range routePorts {
		routePorts[i] = FreePort(t)
	}
	for i := 0; i < n; i++ {
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		name := fmt.Sprintf("n%d", i+1)
		c.Nodes = append(c.Nodes, &Node{Name: name, Opts: &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}})
	}
	for _, nd := range c.Nodes {
		c.Start(nd)
		nd.Opts.Port = nd.NS.Addr().(*net.TCPAddr).Port // a restart keeps the client port
	}
	c.WaitPeers(n)
	return c
}

// WaitPeers waits until the JetStream meta leader sees n peers online with
// their stats: before that, creating a replicated stream can fail with "no
// suitable peers for placement".
func (c *Cluster) WaitPeers(n int) {
	c.t.Helper()
	WaitFor(c.t, ClusterBound, fmt.Sprintf("a JetStream meta leader with %d peers online", n), func() bool {
		for _, nd := range c.Nodes {
			if nd.NS != nil && nd.NS.Running() && nd.NS.JetStreamIsLeader() && len(nd.NS.JetStreamClusterPeers()) >= n {
				return true
			}
		}
		return false
	})
}

// Start starts (or restarts) one node.
func (c *Cluster) Start(nd *Node) {
	c.t.Helper()
	ns, err := server.NewServer(nd.Opts.Clone())
	if err != nil {
		c.t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(ClusterBound) {
		c.t.Fatalf("NATS server %s not ready", nd.Name)
	}
	c.t.Cleanup(ns.Shutdown)
	nd.NS = ns
}

// Stop shuts one node down and waits until it is down.
func (c *Cluster) Stop(nd *Node) {
	nd.NS.Shutdown()
	nd.NS.WaitForShutdown()
}

// URLs are the client URLs of every node.
func (c *Cluster) URLs() []string {
	var out []string
	for _, nd := range c.Nodes {
		out = append(out, fmt.Sprintf("nats://127.0.0.1:%d", nd.Opts.Port))
	}
	return out
}

// URL is every client URL, comma-separated, as nats.Connect takes them.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, nd := range c.Nodes {
		if nd.Name == name {
			return nd
		}
	}
	return nil
}
