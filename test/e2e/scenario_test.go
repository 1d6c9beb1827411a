//go:build linux

package e2e

import "testing"

// TestScenario runs issue 7's scenarios. Without -e2e.long the crash,
// outage and fault scenarios run at a small scale (CI guards them) and the
// measurements are skipped; with it, each runs at full scale and prints its
// FIGURE lines.
func TestScenario(t *testing.T) {
	t.Run("kill", testKill)
	t.Run("nats_outage", testNATSOutage)
	t.Run("api_faults", testAPIFaults)
	t.Run("disk", testDisk)
	t.Run("startup", testStartup)
	t.Run("efficiency", testEfficiency)
	t.Run("latency", testLatency)
}
