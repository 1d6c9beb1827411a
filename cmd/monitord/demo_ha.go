package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/monitord/monitord/internal/config"
)

// demoInstances are the names of `demo --ha`'s three monitord instances.
var demoInstances = []string{"demo-a", "demo-b", "demo-c"}

// runDemoHA is `monitord demo --ha`: three monitord instances on a 3-node
// JetStream cluster, all in this process, sharing one simulated world.
// Partway through it stops the instance that owns a Service and prints who
// takes over and how long it took; the summary counts the events that
// reached the stream twice (none should).
func runDemoHA(ctx context.Context, o demoOptions, stdout, stderr io.Writer) (*demoStats, error) {
	dir, err := os.MkdirTemp(o.tempParent, "monitord-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	sim := newDemoSim(o)
	srv, err := sim.Start()
	if err != nil {
		return nil, fmt.Errorf("demo: simulator: %w", err)
	}
	defer srv.Close()

	nodes, err := startDemoCluster(filepath.Join(dir, "nats"), 3)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer shutdownNATS(nodes)
	var urls []string
	for _, s := range nodes {
		urls = append(urls, s.ClientURL())
	}

	// The instances share one config but for their name. A short pinned
	// TTL makes the takeover quick enough to watch.
	cfgs := make([]*config.Config, len(demoInstances))
	for i, name := range demoInstances {
		cfg := demoConfig(o, sim, srv.URL, urls[0], filepath.Join(dir, name))
		cfg.Instance = name
		cfg.NATS.URLs = urls
		cfg.NATS.Name = "monitord " + name
		cfg.NATS.Stream.Replicas = 3
		cfg.HA.Enabled = true
		cfg.HA.Tasks.PinnedTTL = 3 * time.Second
		cfg.HA.Tasks.PullExpiry = time.Second
		cfg.HA.Tasks.AckWait = 5 * time.Second
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("demo: config: %w", err)
		}
		cfgs[i] = cfg
	}
	log, err := demoLogger(o, stderr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = log.Sync() }()

	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("monitord demo"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("demo: connect nats: %w", err)
	}
	defer nc.Close()
	if err := retryUntil(30*time.Second, func() error { return createDemoStream(nc, cfgs[0]) }); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}

	daemons := make([]*daemon, len(cfgs))
	for i, cfg := range cfgs {
		d, err := startDaemon(ctx, cfg, log.Named(cfg.Instance), daemonOptions{})
		if err != nil {
			for _, started := range daemons[:i] {
				started.close()
			}
			return nil, fmt.Errorf("demo: %s: %w", cfg.Instance, err)
		}
		daemons[i] = d
	}

	ctx, stopOnWriteError := context.WithCancel(ctx)
	defer stopOnWriteError()
	stats := newDemoStats()
	p := newEventPrinter(stdout, false)
	defer p.close()
	p.seen = stats.event
	p.onWriteError = func(error) { stopOnWriteError() }
	printDemoHABanner(p, o, cfgs[0], srv.URL, urls)

	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "demo: "+format+"\n", a...) }
	topts := tailOptions{subject: cfgs[0].NATS.SubjectPrefix + ".>", stream: cfgs[0].NATS.Stream.Name, all: true}
	unsubscribe, _, err := subscribe(context.WithoutCancel(ctx), nc, topts, p, logf)
	if err != nil {
		for _, d := range daemons {
			d.close()
		}
		return stats, fmt.Errorf("demo: %w", err)
	}
	defer unsubscribe()

	// Each instance runs on its own context, so that one can be stopped
	// alone; Run closes what startDaemon opened.
	stops := make([]context.CancelFunc, len(daemons))
	dones := make([]chan error, len(daemons))
	for i, d := range daemons {
		dctx, stop := context.WithCancel(context.Background())
		stops[i], dones[i] = stop, make(chan error, 1)
		go func() { dones[i] <- d.Run(dctx) }()
	}
	stopAll := func() (err error) {
		for i := range daemons {
			if stops[i] == nil {
				continue
			}
			stops[i]()
			err = errors.Join(err, <-dones[i])
			stops[i] = nil
		}
		return err
	}
	defer stopAll() //nolint:errcheck // on an early return only; the normal path checks it

	// Partway: halfway through the time --duration leaves once everything
	// has started (a slow start must not leave no time for the takeover),
	// or 20 s in.
	failAfter := 20 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		failAfter = time.Until(dl) / 2
	}
	select {
	case <-ctx.Done():
	case <-time.After(failAfter):
		if err := demoTakeover(ctx, p, daemons, cfgs, stops, dones); err != nil {
			p.line("demo: " + err.Error())
		}
	}
	<-ctx.Done()
	if err := stopAll(); err != nil {
		return stats, fmt.Errorf("demo: daemon: %w", err)
	}
	held := waitCaughtUp(nc, cfgs[0].NATS.Stream.Name, stats, 5*time.Second)
	p.close()
	distinct, twice := stats.twice()
	p.line(stats.summary(held))
	p.line(fmt.Sprintf("ha: %d distinct event ids, %d of them received more than once.", distinct, twice))
	if err := p.writeErr(); err != nil && !errors.Is(err, syscall.EPIPE) {
		return stats, fmt.Errorf("demo: write output: %w", err)
	}
	return stats, nil
}

// demoTakeover stops the instance that owns the most Services and waits
// until another owns each of them, printing what happened.
func demoTakeover(ctx context.Context, p *eventPrinter, daemons []*daemon, cfgs []*config.Config,
	stops []context.CancelFunc, dones []chan error) error {
	owned := func(i int) []string { return daemons[i].ownedServices()() } // the heartbeat's list
	victim, services := -1, []string(nil)
	for i := range daemons {
		if s := owned(i); len(s) > len(services) {
			victim, services = i, s
		}
	}
	if victim < 0 {
		return errors.New("no instance owns a Service yet: no takeover to show")
	}
	name := cfgs[victim].Instance
	p.line(fmt.Sprintf("\n>>> stopping %s, the owner of %s; the others take over within the pinned TTL (%s)\n",
		name, strings.Join(services, ", "), cfgs[victim].HA.Tasks.PinnedTTL))
	start := time.Now()
	stops[victim]()
	err := <-dones[victim]
	stops[victim] = nil
	if err != nil {
		return fmt.Errorf("%s stopped with %w", name, err)
	}
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	left := map[string]bool{}
	for _, s := range services {
		left[s] = true
	}
	for len(left) > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return fmt.Errorf("no instance took over %d Services within a minute", len(left))
		case <-tick.C:
		}
		for i := range daemons {
			if i == victim {
				continue
			}
			for _, s := range owned(i) {
				if left[s] {
					delete(left, s)
					p.line(fmt.Sprintf("\n>>> %s took over %s %s after %s stopped\n", cfgs[i].Instance, s,
						time.Since(start).Round(100*time.Millisecond), name))
				}
			}
		}
	}
	return nil
}

// printDemoHABanner says what runs where.
func printDemoHABanner(p *eventPrinter, o demoOptions, cfg *config.Config, simURL string, urls []string) {
	until := "Ctrl-C to stop"
	if o.duration > 0 {
		until = "stops after " + shortDuration(o.duration)
	}
	p.line(fmt.Sprintf(`monitord demo --ha: three monitord instances (%s) on a 3-node NATS JetStream cluster,
one simulated Twilio Proxy world, all in this process (%s).
  simulator  %s
  NATS       %s
  state      the KeyValue bucket %s (3 replicas); poll tasks in the stream %s
Each Service is polled by one instance at a time; partway through, the demo stops
the instance that owns a Service, and another takes it over. Follow the events with:
  monitord tail --nats %s --all
`, strings.Join(demoInstances, ", "), until, simURL, strings.Join(urls, ","), cfg.HA.Bucket, cfg.HA.Tasks.Stream, urls[0]))
}

// startDemoCluster starts n nats-servers with JetStream in this process,
// clustered over loopback routes, each storing under its own dir below
// storeDir, and waits until JetStream has a meta leader.
func startDemoCluster(storeDir string, n int) ([]*server.Server, error) {
	routePorts := make([]int, n)
	for i := range routePorts {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("embedded nats cluster: reserve a port: %w", err)
		}
		routePorts[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var nodes []*server.Server
	for i := range n {
		opts := embeddedOptions(fmt.Sprintf("demo-n%d", i+1), filepath.Join(storeDir, fmt.Sprintf("n%d", i+1)))
		opts.Cluster = server.ClusterOpts{Name: "monitord-demo", Host: "127.0.0.1", Port: routePorts[i]}
		for j, port := range routePorts {
			if j != i {
				opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", port)})
			}
		}
		s, err := server.NewServer(opts)
		if err != nil {
			shutdownNATS(nodes)
			return nil, fmt.Errorf("embedded nats cluster: %w", err)
		}
		go s.Start()
		nodes = append(nodes, s)
	}
	for _, s := range nodes {
		if !s.ReadyForConnections(20 * time.Second) {
			shutdownNATS(nodes)
			return nil, errors.New("embedded nats cluster: a node was not ready within 20s")
		}
	}
	err := retryUntil(30*time.Second, func() error {
		for _, s := range nodes {
			if s.JetStreamIsLeader() {
				return nil
			}
		}
		return errors.New("embedded nats cluster: no JetStream meta leader yet")
	})
	if err != nil {
		shutdownNATS(nodes)
		return nil, err
	}
	return nodes, nil
}

func shutdownNATS(nodes []*server.Server) {
	for _, s := range nodes {
		s.Shutdown()
	}
	for _, s := range nodes {
		s.WaitForShutdown()
	}
}

// retryUntil calls f every 200 ms until it succeeds or max has passed, and
// returns its last error then.
func retryUntil(max time.Duration, f func() error) error {
	deadline := time.Now().Add(max)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
