// Package natstest starts real nats-server clusters with JetStream inside
// a test process: no Docker, nothing installed. The HA tests of every
// package (work queue, KV state, the daemon) share it, so a cluster is
// started, waited for and broken the same way everywhere.
//
// A Cluster's nodes keep their store directory and their ports across
// Stop and Restart, as a real node restarted by systemd would: the other
// nodes' routes and the clients' URL lists find it again.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Node is one server of a Cluster.
type Node struct {
	// Name is the server name, stable across restarts (JetStream's Raft
	// groups know a peer by it).
	Name string
	// StoreDir is the JetStream store, kept across restarts.
	StoreDir string

	opts *server.Options
	mu   sync.Mutex
	srv  *server.Server // nil while stopped
}

// Server returns the running server, or nil while the node is stopped.
func (n *Node) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// URL is the node's client URL (the same after a restart).
func (n *Node) URL() string {
	return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port)
}

// Cluster is a JetStream cluster of in-process servers on 127.0.0.1.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
}

// StartCluster starts a cluster of size nodes with JetStream on, each on a
// store under t.TempDir() and random ports, routed to each other, and
// waits until it has a meta leader and every node is current. A size of 1
// starts one standalone JetStream server (JetStream has no cluster of
// one). The nodes are shut down in t.Cleanup.
func StartCluster(t testing.TB, size int) *Cluster {
	t.Helper()
	if size < 1 {
		t.Fatalf("natstest: cluster size %d, want at least 1", size)
	}
	// Routes must be configured before a server starts (JetStream refuses
	// a cluster without them), so the ports are picked first. Each node
	// also routes to itself; the server recognises and drops that route.
	clientPorts, routePorts := freePorts(t, size), freePorts(t, size)
	routes := make([]*url.URL, size)
	for i := range routes {
		routes[i] = &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", routePorts[i])}
	}
	name := fmt.Sprintf("C%d", time.Now().UnixNano()%1e6)
	c := &Cluster{t: t}
	for i := range size {
		o := &server.Options{
			ServerName: fmt.Sprintf("%s-n%d", name, i),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster: server.ClusterOpts{
				Name: name,
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes: routes,
		}
		if size == 1 {
			// JetStream refuses a cluster of one: a single node runs
			// standalone, for tests that need a server but no failover.
			o.Cluster, o.Routes = server.ClusterOpts{}, nil
		}
		c.Nodes = append(c.Nodes, &Node{Name: o.ServerName, StoreDir: o.StoreDir, opts: o})
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.stop(i)
		}
	})
	for i := range c.Nodes {
		c.start(i)
	}
	c.WaitReady(30 * time.Second)
	return c
}

// freePorts returns n TCP ports that were free a moment ago. Another
// process may take one before the server binds it; the server then fails
// to start and the test says so, which on a shared machine is rare enough.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ls := make([]net.Listener, n)
	ports := make([]int, n)
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: reserve port: %v", err)
		}
		ls[i], ports[i] = l, l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	o := n.opts.Clone()
	s, err := server.NewServer(o)
	if err != nil {
		c.t.Fatalf("natstest: new server %s: %v", n.Name, err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		c.t.Fatalf("natstest: server %s not ready for connections", n.Name)
	}
	n.mu.Lock()
	n.srv = s
	n.mu.Unlock()
}

func (c *Cluster) stop(i int) {
	n := c.Nodes[i]
	n.mu.Lock()
	s := n.srv
	n.srv = nil
	n.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// URLs is every node's client URL, comma-separated, as nats.Connect takes
// them: a client fails over between the nodes.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// Stop shuts node i down abruptly for its peers (its connections close; no
// leadership is handed over first). Its store stays for Restart.
func (c *Cluster) Stop(i int) { c.stop(i) }

// Restart starts node i again on its store and ports. It does not wait
// for the node to catch up: call WaitReady for that.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Nodes[i].Server() != nil {
		c.t.Fatalf("natstest: restart %s: still running", c.Nodes[i].Name)
	}
	c.start(i)
}

// Running returns the indexes of the running nodes.
func (c *Cluster) Running() []int {
	var r []int
	for i, n := range c.Nodes {
		if n.Server() != nil {
			r = append(r, i)
		}
	}
	return r
}

// MetaLeader returns the index of the node that leads the JetStream meta
// group, or -1 when none does.
func (c *Cluster) MetaLeader() int {
	for i, n := range c.Nodes {
		if s := n.Server(); s != nil && s.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// StreamLeader returns the index of the node that leads stream in the
// global account, or -1.
func (c *Cluster) StreamLeader(stream string) int {
	for i, n := range c.Nodes {
		if s := n.Server(); s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// ConsumerLeader returns the index of the node that leads the consumer of
// stream in the global account, or -1.
func (c *Cluster) ConsumerLeader(stream, consumer string) int {
	for i, n := range c.Nodes {
		if s := n.Server(); s != nil && s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer) {
			return i
		}
	}
	return -1
}

// WaitReady waits until the running nodes have a meta leader that sees
// each of them online, each is routed to every other running node, and
// each is current with the meta group; it fails the test after d.
func (c *Cluster) WaitReady(d time.Duration) {
	c.t.Helper()
	WaitFor(c.t, "JetStream cluster ready", d, func() bool {
		running := c.Running()
		if len(c.Nodes) == 1 {
			s := c.Nodes[0].Server()
			return s != nil && s.JetStreamEnabled()
		}
		leader := c.MetaLeader()
		if leader < 0 {
			return false
		}
		// The leader places streams only on peers it has seen online
		// with JetStream stats: until then, creating an R3 stream fails
		// with "no suitable peers for placement".
		if s := c.Nodes[leader].Server(); s == nil || len(s.JetStreamClusterPeers()) < len(running) {
			return false
		}
		for _, i := range running {
			s := c.Nodes[i].Server()
			if s == nil || s.NumRoutes() < len(running)-1 || !s.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	})
}

// WaitFor polls cond every 10ms until it holds, and fails the test naming
// what was awaited once d has passed. It is for conditions no part of the
// code can signal (a server's view of its peers); where the code under
// test can say when something happened, wait on that instead.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
