// Package ha holds issue 12's failure scenarios, run on the daemon's own
// composition: a 3-node JetStream cluster in the test process
// (internal/natstest) whose routes a test can cut, three instances each
// built as cmd/monitord builds one with ha.enabled (an internal/ha Node
// on its own NATS connection, a poller.Poller dispatching its ticks to
// the Node and polling the tasks the Node's workers receive, and a
// notify.Publisher draining the Node's store), and one simulated Proxy
// API.
//
// Each scenario checks that every event id is in the events stream
// exactly once, that none expected is missing, and that the stored state
// of every target equals the simulator's listing at the end. There is no
// code here, only tests: `go test -run 'HA|Cluster|Failover' ./...`
// runs them with the other packages' cluster tests. docs/ha.md describes
// what each scenario shows.
package ha
