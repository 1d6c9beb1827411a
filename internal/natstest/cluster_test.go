package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestClusterRestartNode: the meta leader stopped, the two left elect
// another; restarted on its store and ports, it rejoins.
func TestClusterRestartNode(t *testing.T) {
	c := StartCluster(t, 3)
	leader := c.MetaLeader()
	url := c.Nodes[leader].URL()
	c.Stop(leader)
	if got := len(c.Running()); got != 2 {
		t.Fatalf("running nodes after a stop = %d, want 2", got)
	}
	c.WaitReady(30 * time.Second)
	if l := c.MetaLeader(); l == leader || l < 0 {
		t.Fatalf("meta leader after stopping node %d = %d", leader, l)
	}
	c.Restart(leader)
	c.WaitReady(30 * time.Second)
	if got := c.Nodes[leader].URL(); got != url {
		t.Errorf("restarted node's URL = %s, want %s", got, url)
	}
	if got := c.Nodes[leader].Server().JetStreamIsClustered(); !got {
		t.Error("restarted node is not in the JetStream cluster")
	}
}

// stream creates an R3 stream "S" on subject "s" through a connection to
// every node and returns the connection's JetStream context.
func stream(t *testing.T, c *Cluster) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// publish publishes n messages, each retried until the stream takes it
// (a leader election under way refuses a few), within 30s.
func publish(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	for range n {
		WaitFor(t, "a publish accepted", 30*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := js.Publish(ctx, "s", []byte("x"))
			return err == nil
		})
	}
}

// storedOn is how many messages node i's replica of stream S holds.
func storedOn(c *Cluster, i int) uint64 {
	n, _ := c.StreamMsgs(i, "S")
	return n
}

// TestClusterPartitionAndHeal: a partitioned node loses every route and
// gets none back while cut (the gossiped addresses lead nowhere); the two
// others elect a leader and take writes; healed, the node rejoins and
// catches up.
func TestClusterPartitionAndHeal(t *testing.T) {
	c := StartCluster(t, 3)
	_, js := stream(t, c)
	publish(t, js, 5)
	leader := c.StreamLeader("S")
	c.Partition(leader)
	WaitFor(t, "the partitioned node without routes", 10*time.Second, func() bool {
		return c.Nodes[leader].Server().NumRoutes() == 0
	})
	var others []int
	for i := range c.Nodes {
		if i != leader {
			others = append(others, i)
		}
	}
	WaitFor(t, "a leader on the majority side", 30*time.Second, func() bool {
		for _, i := range others {
			if c.Nodes[i].Server().JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "S") {
				return true
			}
		}
		return false
	})
	// A client stays connected to a partitioned node, which takes no
	// writes: publish through a connection to the majority side.
	nc2, err := nats.Connect(c.Nodes[others[0]].URL()+","+c.Nodes[others[1]].URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js2, 5)
	// A quorum is the leader and one follower: the other may lag a moment.
	WaitFor(t, "both majority nodes hold the 10 messages", 10*time.Second, func() bool {
		return storedOn(c, others[0]) == 10 && storedOn(c, others[1]) == 10
	})
	if n := c.Nodes[leader].Server().NumRoutes(); n != 0 {
		t.Fatalf("partitioned node has %d routes: a route went around the links", n)
	}
	if got := storedOn(c, leader); got != 5 {
		t.Errorf("partitioned node holds %d messages, want the 5 from before the cut", got)
	}
	c.Heal(leader)
	c.WaitReady(30 * time.Second)
	WaitFor(t, "the healed node caught up", 30*time.Second, func() bool { return storedOn(c, leader) == 10 })
}

// TestClusterStepDownAndKill: a graceful step-down moves a stream's
// leadership at once; killing the new leader's node moves it again after
// an election; restarted, the node catches up.
func TestClusterStepDownAndKill(t *testing.T) {
	c := StartCluster(t, 3)
	_, js := stream(t, c)
	publish(t, js, 3)
	old := c.StreamLeader("S")
	leader := c.StepDownStream("S")
	if leader == old {
		t.Fatalf("stream leader after a step-down is still node %d", old)
	}
	publish(t, js, 3)
	c.Kill(leader)
	WaitFor(t, "a leader after the kill", 30*time.Second, func() bool {
		l := c.StreamLeader("S")
		return l >= 0 && l != leader
	})
	publish(t, js, 3)
	c.Restart(leader)
	c.WaitReady(30 * time.Second)
	WaitFor(t, "the killed node caught up", 30*time.Second, func() bool { return storedOn(c, leader) == 9 })
}

// TestClusterRestartAll: every node stopped and started again on its
// store keeps the stream's messages, and a client reconnects by itself.
func TestClusterRestartAll(t *testing.T) {
	c := StartCluster(t, 3)
	nc, js := stream(t, c)
	publish(t, js, 4)
	down := false
	c.RestartAll(func() { down = len(c.Running()) == 0 })
	if !down {
		t.Error("a node was running while RestartAll said all were down")
	}
	publish(t, js, 1)
	WaitFor(t, "every node holds the 5 messages", 30*time.Second, func() bool {
		for i := range c.Nodes {
			if storedOn(c, i) != 5 {
				return false
			}
		}
		return true
	})
	if !nc.IsConnected() {
		t.Error("client not reconnected after the restart")
	}
}
