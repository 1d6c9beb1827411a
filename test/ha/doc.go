// Package ha holds issue 12's failure scenarios, run on the real parts at
// the component level: a 3-node JetStream cluster in the test process
// (internal/natstest) whose routes a test can cut, three instances each
// made of its own NATS connections, a kvstore.Store, a poller.Poller, a
// work.Worker, a work.Queue fed by a poller.Scheduler and a
// notify.Publisher draining the store, and one simulated Proxy API.
//
// Each scenario checks that every event id is in the events stream
// exactly once, that none expected is missing, and that the stored state
// of every target equals the simulator's listing at the end. There is no
// code here, only tests: `go test -run 'HA|Cluster|Failover' ./...`
// runs them with the other packages' cluster tests. docs/ha.md describes
// what each scenario shows.
package ha
