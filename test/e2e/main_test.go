//go:build linux

package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// long selects the full-scale runs: the measurements and the 20-kill crash
// run. Without it the package runs the quick subset that CI guards.
var long = flag.Bool("e2e.long", false, "run the full-scale scenarios (minutes each) and print their figures")

// mode is poll.mode of the daemons TestScenario starts: every scenario runs
// in either. TestActivityScenario runs the quick ones in activity mode
// whatever it says.
var mode = flag.String("e2e.mode", "schedule", "poll.mode of the daemon in TestScenario: schedule or activity")

// scenarioMode is the poll.mode of the scenario running now (scenarios
// run one after another); newRig writes it into the config.
var scenarioMode = "schedule"

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	// goleak checks only the goroutines of this process: the simulator,
	// the nats-server and the subscriber must all stop when a test ends.
	// It calls os.Exit itself.
	goleak.VerifyTestMain(cleanup{m})
}

// cleanup removes the built binary after the tests, whatever their result.
type cleanup struct{ m *testing.M }

func (c cleanup) Run() int {
	code := c.m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// monitordBinary builds cmd/monitord once per test process from this
// working tree, so every scenario runs the real binary as an operator would.
func monitordBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "monitord-e2e-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "monitord")
		// go test puts its own toolchain's bin first on the test's PATH.
		cmd := exec.Command("go", "build", "-o", binPath, "../../cmd/monitord")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/monitord: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// longOnly skips a measurement unless -e2e.long is given: each takes
// minutes and keeps both cores busy, which CI must not pay for on every
// commit. The skip message names the command that runs it.
func longOnly(t *testing.T) {
	t.Helper()
	if !*long {
		t.Skipf("a full-scale measurement: go test ./test/e2e -run 'TestScenario/%s' -e2e.long -v", filepath.Base(t.Name()))
	}
}

// TestScenario runs issue 7's scenarios. Without -e2e.long the crash,
// outage and fault scenarios run at a small scale (CI guards them) and the
// measurements are skipped; with it, each runs at full scale and prints its
// FIGURE lines.
func TestScenario(t *testing.T) {
	if *mode != "schedule" && *mode != "activity" {
		t.Fatalf("-e2e.mode %q is not schedule or activity", *mode)
	}
	scenarios(t, *mode)
}

// TestActivityScenario runs every scenario with poll.mode activity: the
// events contract is the same whichever way targets are polled (issue 13).
// Like TestScenario it runs the quick ones and skips the measurements
// without -e2e.long; it is apart so that CI guards both modes, and so that
// -run 'TestScenario/…' selects one mode only.
func TestActivityScenario(t *testing.T) {
	scenarios(t, "activity")
}

func scenarios(t *testing.T, m string) {
	scenarioMode = m
	t.Cleanup(func() { scenarioMode = "schedule" })
	t.Run("kill", testKill)
	t.Run("nats_outage", testNATSOutage)
	t.Run("api_faults", testAPIFaults)
	t.Run("disk", testDisk)
	t.Run("startup", testStartup)
	t.Run("efficiency", testEfficiency)
	t.Run("latency", testLatency)
	t.Run("activity_realtime", testActivityRealTime)
}
