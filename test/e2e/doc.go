// Package e2e proves monitord's promises under load and faults: it builds
// the real binary, runs `monitord run` as a child process against the
// Twilio Proxy simulator (internal/proxysim, served in this process so the
// harness can change the world, inject faults and read the simulator's own
// record of changes) and a real nats-server with JetStream (also in this
// process, so it can be stopped and started again on the same port and
// store), and checks what a JetStream subscriber receives against what the
// simulator changed.
//
// The package has no code outside its tests. The quick, deterministic
// scenarios (kill -9 restarts, a NATS outage, API faults, a small start-up)
// run with the package's tests:
//
//	go test ./test/e2e
//
// TestScenario runs them with poll.mode schedule (-e2e.mode=activity runs
// them, and any measurement, in activity mode); TestActivityScenario runs
// the quick ones in activity mode too, so the events contract is guarded
// in both.
//
// The measurements run only with -e2e.long, one command each (see
// docs/performance.md and docs/reliability.md for the figures):
//
//	go test ./test/e2e -run 'TestScenario/efficiency' -e2e.long -v -timeout 20m
//	go test ./test/e2e -run 'TestScenario/latency' -e2e.long -v -timeout 20m
//	go test ./test/e2e -run 'TestScenario/kill' -e2e.long -v -timeout 20m
//	go test ./test/e2e -run 'TestScenario/nats_outage' -e2e.long -v -timeout 20m
//	go test ./test/e2e -run 'TestScenario/api_faults' -e2e.long -v -timeout 20m
//	go test ./test/e2e -run 'TestScenario/disk' -e2e.long -v -timeout 20m
//	go test ./test/e2e -run 'TestScenario/startup' -e2e.long -v -timeout 20m
//
// Every scenario prints its figures as lines starting with "FIGURE". The
// harness is Linux-only (Pdeathsig for the child, mount(2) for the disk
// scenario), as monitord's deployment target is.
package e2e
