package natstest

import (
	"testing"
	"time"

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
