// Package natstest starts real nats-server clusters with JetStream inside
// a test process: no Docker, nothing installed. The HA tests of every
// package (work queue, KV state, the daemon) share it, so a cluster is
// started, waited for and broken the same way everywhere.
//
// A Cluster's nodes keep their store directory and their ports across
// Stop and Restart, as a real node restarted by systemd would: the other
// nodes' routes and the clients' URL lists find it again.
//
// The route connections between the nodes go through TCP proxies the
// Cluster holds (link.go), one per ordered pair of nodes, so a test can
// partition a node from its peers (Partition, Heal) or make it vanish
// without handing its leaderships over (Kill), besides the graceful
// Stop, the leader step-downs and a restart of every node (RestartAll).
package natstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

	links [][]*link // links[from][to]: the routes node from dials to node to; nil on the diagonal
	bh    *blackhole
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
	// a cluster without them), so the ports are picked and the links
	// between the nodes started first.
	clientPorts, routePorts := freePorts(t, size), freePorts(t, size)
	name := fmt.Sprintf("C%d", time.Now().UnixNano()%1e6)
	c := &Cluster{t: t}
	if size > 1 {
		c.startLinks(routePorts)
	}
	for i := range size {
		o := &server.Options{
			ServerName: fmt.Sprintf("%s-n%d", name, i),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			NoLog:      true,
			NoSigs:     true,
			JetStream:  true,
			StoreDir:   t.TempDir(),
		}
		if size > 1 {
			o.Cluster = server.ClusterOpts{
				Name: name,
				Host: "127.0.0.1",
				Port: routePorts[i],
				// Gossip would make a node dial a peer's advertised
				// address, around the links: the blackhole refuses it.
				Advertise: c.bh.ln.Addr().String(),
			}
			for j, l := range c.links[i] {
				if j != i {
					o.Routes = append(o.Routes, &url.URL{Scheme: "nats", Host: l.addr()})
				}
			}
		}
		// A single node runs standalone, for tests that need a server but
		// no failover: JetStream has no cluster of one.
		c.Nodes = append(c.Nodes, &Node{Name: o.ServerName, StoreDir: o.StoreDir, opts: o})
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.stop(i)
		}
	})
	for i := range c.Nodes {
		c.startFresh(i)
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
	if err := c.tryStart(i); err != nil {
		c.t.Fatal(err)
	}
}

// startFresh starts node i for the first time. A port taken since
// freePorts picked it (another test process on a shared machine) makes
// the server fail to listen: then the node gets new ports, which nothing
// has seen yet (its peers dial it through the links), and tries again.
func (c *Cluster) startFresh(i int) {
	c.t.Helper()
	var err error
	for range 3 {
		if err = c.tryStart(i); err == nil {
			return
		}
		ports := freePorts(c.t, 2)
		o := c.Nodes[i].opts
		o.Port = ports[0]
		if o.Cluster.Port != 0 {
			o.Cluster.Port = ports[1]
			for j := range c.links {
				if j != i {
					c.links[j][i].retarget(fmt.Sprintf("127.0.0.1:%d", ports[1]))
				}
			}
		}
	}
	c.t.Fatal(err)
}

func (c *Cluster) tryStart(i int) error {
	n := c.Nodes[i]
	o := n.opts.Clone()
	s, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("natstest: new server %s: %w", n.Name, err)
	}
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return fmt.Errorf("natstest: server %s not ready for connections on ports %d and %d", n.Name, o.Port, o.Cluster.Port)
	}
	n.mu.Lock()
	n.srv = s
	n.mu.Unlock()
	return nil
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

// Stop shuts node i down as `nats-server` does on SIGTERM: it steps down
// from every Raft group it leads first, so its peers elect new leaders at
// once, and its client connections close. Its store stays for Restart.
// Kill is the abrupt loss.
func (c *Cluster) Stop(i int) { c.stop(i) }

// Kill makes node i vanish for its peers, as a dead host or a pulled cable
// would: its routes are cut before it shuts down, so the step-downs it
// sends on the way out reach no one and the others elect new leaders only
// after Raft's election timeout. Its store stays for Restart.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.Partition(i)
	c.stop(i)
}

// Restart starts node i again on its store and ports, with its routes
// healed if it was killed or partitioned. It does not wait for the node to
// catch up: call WaitReady for that.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Nodes[i].Server() != nil {
		c.t.Fatalf("natstest: restart %s: still running", c.Nodes[i].Name)
	}
	c.Heal(i)
	c.start(i)
}

// RestartAll stops every node (gracefully, one after another, as an
// operator restarting the whole cluster would), calls whileDown (if not
// nil) while none runs, starts them all again on their stores and ports,
// and waits until the cluster is ready. The clients' connections drop
// meanwhile; those with reconnects on find the nodes again at the same
// URLs.
func (c *Cluster) RestartAll(whileDown func()) {
	c.t.Helper()
	for i := range c.Nodes {
		c.stop(i)
	}
	if whileDown != nil {
		whileDown()
	}
	for i := range c.Nodes {
		c.Heal(i)
		c.start(i)
	}
	c.WaitReady(30 * time.Second)
}

// startLinks starts the links between the nodes, whose route ports are
// routePorts, and the blackhole the nodes advertise; they close at the end
// of the test, after the servers (cleanups run last first).
func (c *Cluster) startLinks(routePorts []int) {
	c.t.Helper()
	var err error
	if c.bh, err = newBlackhole(); err != nil {
		c.t.Fatalf("natstest: blackhole: %v", err)
	}
	c.links = make([][]*link, len(routePorts))
	c.t.Cleanup(c.closeLinks)
	for from := range routePorts {
		c.links[from] = make([]*link, len(routePorts))
		for to, port := range routePorts {
			if from == to {
				continue
			}
			if c.links[from][to], err = newLink(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
				c.t.Fatalf("natstest: link %d→%d: %v", from, to, err)
			}
		}
	}
}

func (c *Cluster) closeLinks() {
	for _, row := range c.links {
		for _, l := range row {
			if l != nil {
				l.close()
			}
		}
	}
	if c.bh != nil {
		c.bh.close()
	}
}

// setCut cuts or heals every link to and from node i.
func (c *Cluster) setCut(i int, cut bool) {
	c.t.Helper()
	if len(c.links) == 0 {
		c.t.Fatal("natstest: a single node has no routes to cut")
	}
	for j := range c.links {
		if j != i {
			c.links[i][j].setCut(cut)
			c.links[j][i].setCut(cut)
		}
	}
}

// Partition cuts node i off from its peers both ways: its route
// connections close and it cannot open new ones, while it keeps running
// and keeps its clients, as a node on the wrong side of a network split.
// The clients connected to it stay connected to a node without quorum.
func (c *Cluster) Partition(i int) { c.setCut(i, true) }

// Heal undoes Partition: the nodes' route reconnect loops (about a second
// apart) find each other again. Call WaitReady to wait for that.
func (c *Cluster) Heal(i int) {
	if len(c.links) > 0 {
		c.setCut(i, false)
	}
}

// StepDownStream asks the leader of stream (global account) to step down,
// as `nats stream cluster step-down` does, and waits until another node
// leads it; it returns that node's index. The old leader hands over
// gracefully: nothing waits for an election timeout.
func (c *Cluster) StepDownStream(stream string) int {
	c.t.Helper()
	old := c.StreamLeader(stream)
	c.stepDown(fmt.Sprintf("$JS.API.STREAM.LEADER.STEPDOWN.%s", stream))
	var leader int
	WaitFor(c.t, "a new leader of stream "+stream, 30*time.Second, func() bool {
		leader = c.StreamLeader(stream)
		return leader >= 0 && leader != old
	})
	return leader
}

// StepDownConsumer is StepDownStream for a consumer of stream.
func (c *Cluster) StepDownConsumer(stream, consumer string) int {
	c.t.Helper()
	old := c.ConsumerLeader(stream, consumer)
	c.stepDown(fmt.Sprintf("$JS.API.CONSUMER.LEADER.STEPDOWN.%s.%s", stream, consumer))
	var leader int
	WaitFor(c.t, "a new leader of consumer "+consumer, 30*time.Second, func() bool {
		leader = c.ConsumerLeader(stream, consumer)
		return leader >= 0 && leader != old
	})
	return leader
}

// Connect opens a client connection to the cluster (any node) and its
// JetStream context, failing the test when it cannot; the connection is
// closed in t.Cleanup.
func (c *Cluster) Connect() (*nats.Conn, jetstream.JetStream) {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		c.t.Fatalf("natstest: connect: %v", err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// stepDown sends a step-down request of the JetStream API and fails the
// test unless the server accepts it.
func (c *Cluster) stepDown(subject string) {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		c.t.Fatalf("natstest: connect for %s: %v", subject, err)
	}
	defer nc.Close()
	// A node of a loaded in-process cluster may answer with no responders
	// for a moment (nothing received the request): it is sent again. A
	// timeout is not: the step-down may have been applied.
	var msg *nats.Msg
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg, err = nc.Request(subject, nil, 10*time.Second)
		if err == nil {
			break
		}
		if !errors.Is(err, nats.ErrNoResponders) || time.Now().After(deadline) {
			c.t.Fatalf("natstest: %s: %v", subject, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		c.t.Fatalf("natstest: %s: decode %q: %v", subject, msg.Data, err)
	}
	if !resp.Success {
		desc := "no success"
		if resp.Error != nil {
			desc = resp.Error.Description
		}
		c.t.Fatalf("natstest: %s: %s", subject, desc)
	}
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

// StreamMsgs is how many messages node i's replica of stream (global
// account) holds; ok is false when the node is stopped or has no replica
// of it. A test reads a lagging replica this way, without a client (a
// client's request would be answered by the leader).
func (c *Cluster) StreamMsgs(i int, stream string) (n uint64, ok bool) {
	s := c.Nodes[i].Server()
	if s == nil {
		return 0, false
	}
	acc, err := s.JszAccount(&server.JSzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Streams: true})
	if err != nil {
		return 0, false
	}
	for _, sd := range acc.Streams {
		if sd.Name == stream {
			return sd.State.Msgs, true
		}
	}
	return 0, false
}
