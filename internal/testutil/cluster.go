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
// takes connections and the JetStream meta leader sees every one of them as
// a peer (so that a stream or bucket with n replicas can be placed). They are
// shut down when the test ends.
//
// The route ports are picked before the servers listen on them (each server
// must know the others'), so another process on the machine may take one in
// between: then the attempt is given up and the cluster started again on
// other ports.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	var c *Cluster
	for attempt := 1; ; attempt++ {
		var err error
		if c, err = tryStartCluster(t, n); err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("start a %d-node cluster: %v", n, err)
		}
		t.Logf("start a %d-node cluster: %v; trying other ports", n, err)
	}
	for _, nd := range c.Nodes {
		WaitFor(t, ClusterBound, "JetStream meta leader", func() bool { return nd.NS.JetStreamIsClustered() && nd.NS.JetStreamIsCurrent() })
	}
	WaitFor(t, ClusterBound, fmt.Sprintf("the meta leader to see %d JetStream peers", n), func() bool {
		for _, nd := range c.Nodes {
			if nd.NS.JetStreamIsLeader() && len(nd.NS.JetStreamClusterPeers()) == n {
				return true
			}
		}
		return false
	})
	return c
}

// listenBound bounds the wait for a server's listeners: they open at once
// unless their port is taken.
const listenBound = 10 * time.Second

func tryStartCluster(t testing.TB, n int) (*Cluster, error) {
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
		if err := c.launch(nd); err != nil {
			return nil, err
		}
	}
	for _, nd := range c.Nodes {
		if !nd.NS.ReadyForConnections(listenBound) {
			for _, nd := range c.Nodes {
				nd.NS.Shutdown()
			}
			return nil, fmt.Errorf("server %s does not listen on 127.0.0.1:%d within %v", nd.Name, nd.Opts.Cluster.Port, listenBound)
		}
		nd.Opts.Port = nd.NS.Addr().(*net.TCPAddr).Port // a restart keeps the client port
	}
	return c, nil
}

// Start starts (or restarts) one node.
func (c *Cluster) Start(nd *Node) {
	c.t.Helper()
	if err := c.launch(nd); err != nil {
		c.t.Fatal(err)
	}
	if !nd.NS.ReadyForConnections(ClusterBound) {
		c.t.Fatalf("NATS server %s not ready", nd.Name)
	}
}

func (c *Cluster) launch(nd *Node) error {
	ns, err := server.NewServer(nd.Opts.Clone())
	if err != nil {
		return err
	}
	ns.Start()
	c.t.Cleanup(ns.Shutdown)
	nd.NS = ns
	return nil
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

// ClientOf returns the name of the server the client connection named name
// is connected to ("" if none).
func (c *Cluster) ClientOf(name string) string {
	for _, nd := range c.Nodes {
		if nd.NS == nil || !nd.NS.Running() {
			continue
		}
		cz, err := nd.NS.Connz(&server.ConnzOptions{})
		if err != nil {
			continue
		}
		for _, ci := range cz.Conns {
			if ci.Name == name {
				return nd.Name
			}
		}
	}
	return ""
}
