// Command scalebench measures the daemon at scale: `monitord run` polling
// 10,000 targets × 200 interactions across 10 Proxy Services on `@every 1m`
// against `monitord simulate`, each in its own process, with a real
// nats-server (JetStream) in this one. It samples the daemon's own
// /metrics (process CPU and RSS from the Prometheus process collector, polls
// by result, skipped activations, schedule lag) and prints a table for
// docs/performance.md ("Daemon at scale").
//
//	go build -o monitord ./cmd/monitord
//	go run ./internal/poller/scalebench -monitord ./monitord -duration 3m
//
// -gzip both runs it twice, the simulator serving plain JSON then gzip (as
// Twilio does when asked, and monitord asks), and prints the two side by
// side.
//
// It is a harness, not a test: the figures depend on the machine.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/monitord/monitord/internal/admin"
)

func main() {
	var (
		bin          = flag.String("monitord", "", "monitord binary (go build -o … ./cmd/monitord)")
		services     = flag.Int("services", 10, "Proxy Services")
		sessions     = flag.Int("sessions", 500, "sessions per Service (2 participants each: targets = services*sessions*2)")
		interactions = flag.Int("interactions", 200, "interactions per participant")
		every        = flag.String("interaction-every", "0", "simulate's --interaction-every: new interactions per participant (0: none)")
		schedule     = flag.String("schedule", "@every 1m", "poll.schedule")
		warmup       = flag.Duration("warmup", 90*time.Second, "longest wait for the first complete cycle (baselines)")
		duration     = flag.Duration("duration", 3*time.Minute, "measured steady state after the first complete cycle")
		gz           = flag.String("gzip", "off", "the simulator gzips its bodies: off, on, or both (two runs side by side)")
	)
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "scalebench: -monitord BINARY is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var runs []bool
	switch *gz {
	case "off":
		runs = []bool{false}
	case "on":
		runs = []bool{true}
	case "both":
		runs = []bool{false, true}
	default:
		fmt.Fprintf(os.Stderr, "scalebench: -gzip %q: want off, on or both\n", *gz)
		os.Exit(2)
	}
	var tables []table
	for _, gzip := range runs {
		tb, err := bench(ctx, *bin, *services, *sessions, *interactions, *every, *schedule, *warmup, *duration, gzip)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scalebench:", err)
			os.Exit(1)
		}
		tables = append(tables, tb)
	}
	printTables(tables)
}

// table is one run's figures, in the order printed.
type table struct {
	title string
	rows  [][2]string
}

func (t *table) add(figure, format string, a ...any) {
	t.rows = append(t.rows, [2]string{figure, fmt.Sprintf(format, a...)})
}

// printTables prints the runs' figures side by side, one column per run.
func printTables(ts []table) {
	fmt.Print("| figure |")
	for _, t := range ts {
		fmt.Printf(" %s |", t.title)
	}
	fmt.Print("\n| --- |")
	for range ts {
		fmt.Print(" --- |")
	}
	fmt.Println()
	for i, r := range ts[0].rows {
		fmt.Printf("| %s |", r[0])
		for _, t := range ts {
			fmt.Printf(" %s |", t.rows[i][1])
		}
		fmt.Println()
	}
}

func bench(ctx context.Context, bin string, services, sessions, interactions int, every, schedule string,
	warmup, duration time.Duration, gzip bool) (table, error) {
	tb := table{title: "plain JSON"}
	if gzip {
		tb.title = "gzip"
	}
	dir, err := os.MkdirTemp("", "scalebench")
	if err != nil {
		return tb, err
	}
	defer os.RemoveAll(dir)

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true,
		NoSigs: true, JetStream: true, StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		return tb, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return tb, errors.New("nats-server not ready")
	}
	defer ns.Shutdown()

	cfgPath := filepath.Join(dir, "monitord.yaml")
	sim := exec.CommandContext(ctx, bin, "simulate", "--listen", "127.0.0.1:0", "--write-config", cfgPath,
		"--services", strconv.Itoa(services), "--sessions", strconv.Itoa(sessions), "--participants", "2",
		"--interactions", strconv.Itoa(interactions), "--interaction-every", every, "--seed", "1",
		"--gzip="+strconv.FormatBool(gzip))
	sim.Stderr = os.Stderr
	simOut, err := sim.StdoutPipe()
	if err != nil {
		return tb, err
	}
	if err := sim.Start(); err != nil {
		return tb, err
	}
	defer stopProcess(sim)
	if err := waitLine(simOut, "written to", 60*time.Second); err != nil {
		return tb, fmt.Errorf("simulate: %w", err)
	}
	go io.Copy(io.Discard, simOut) //nolint:errcheck // drain

	admin, err := freeAddr()
	if err != nil {
		return tb, err
	}
	extra := fmt.Sprintf("instance: scalebench\npoll: {schedule: %q}\nstate: {path: %s}\nnats: {urls: [%s]}\n"+
		"admin: {listen: %q}\nlog: {level: warn}\n", schedule, filepath.Join(dir, "state.db"), ns.ClientURL(), admin)
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return tb, err
	}
	_, err = f.WriteString(extra)
	f.Close()
	if err != nil {
		return tb, err
	}

	daemon := exec.CommandContext(ctx, bin, "run", "-c", cfgPath)
	daemon.Stderr = os.Stderr
	start := time.Now()
	if err := daemon.Start(); err != nil {
		return tb, err
	}
	defer stopProcess(daemon)
	base := "http://" + admin
	targets := services * sessions * 2
	fmt.Fprintf(os.Stderr, "scalebench: %d targets × %d interactions, %d Services, %s; waiting for the first complete cycle\n",
		targets, interactions, services, schedule)
	var first metrics
	for {
		if ctx.Err() != nil {
			return tb, ctx.Err()
		}
		if time.Since(start) > warmup {
			return tb, fmt.Errorf("no complete cycle within %s", warmup)
		}
		if m, err := scrape(base); err == nil && m["monitord_last_complete_cycle_timestamp_seconds"] > 0 {
			first = m
			break
		}
		time.Sleep(time.Second)
	}
	firstCycle := time.Since(start).Round(time.Second)
	fmt.Fprintf(os.Stderr, "scalebench: first cycle after %s; measuring %s\n", firstCycle, duration)

	t0 := time.Now()
	var rssMax, rssSum, anonMax, anonSum float64
	var samples int
	var last metrics
	for time.Since(t0) < duration {
		select {
		case <-ctx.Done():
			return tb, ctx.Err()
		case <-time.After(5 * time.Second):
		}
		m, err := scrape(base)
		if err != nil {
			return tb, err
		}
		rss := m["process_resident_memory_bytes"]
		rssMax = max(rssMax, rss)
		rssSum += rss
		anon := anonRSS(daemon.Process.Pid)
		anonMax = max(anonMax, anon)
		anonSum += anon
		samples++
		last = m
	}
	wall := time.Since(t0).Seconds()
	d := func(k string) float64 { return last[k] - first[k] }
	cpu := d("process_cpu_seconds_total")
	polls := d(`monitord_polls_total{result="ok"}`)
	tb.add("machine", "%d CPUs (%s/%s)", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	tb.add("targets × interactions, Services", "%d × %d, %d", targets, interactions, services)
	tb.add("schedule", "%s", schedule)
	tb.add("first complete cycle (every target baselined)", "%s after start", firstCycle)
	tb.add("measured", "%.0f s after the first complete cycle", wall)
	tb.add("polls ok per minute", "%.0f (%.2f per target)", polls/wall*60, polls/wall*60/float64(targets))
	tb.add("polls failed / skipped", "%.0f / %.0f", d(`monitord_polls_total{result="error"}`), d("monitord_polls_skipped_total"))
	tb.add("API requests per second", "%.1f (429s: %.0f)", sumPrefix(last, first, "monitord_api_requests_total")/wall, d("monitord_api_rate_limited_total"))
	tb.add("daemon CPU", "%.2f cores on average (%.1f CPU-s per minute)", cpu/wall, cpu/wall*60)
	perPoll := cpu / max(1, polls)
	interval := float64(60) // the default @every 1m; the projection below assumes it
	tb.add("daemon CPU per poll", "%.2f ms: every target once per minute needs %.2f cores", perPoll*1e3, perPoll*float64(targets)/interval)
	tb.add("daemon RSS", "%.0f MB average, %.0f MB max", rssSum/float64(samples)/1e6, rssMax/1e6)
	tb.add("of which anonymous (heap, stacks)", "%.0f MB average, %.0f MB max", anonSum/float64(samples)/1e6, anonMax/1e6)
	tb.add("schedule lag (mean)", "%.3f s", d("monitord_poll_schedule_lag_seconds_sum")/max(1, d("monitord_poll_schedule_lag_seconds_count")))
	tb.add("poll duration (mean)", "%.3f s", d("monitord_poll_duration_seconds_sum")/max(1, d("monitord_poll_duration_seconds_count")))
	tb.add("reasons fetched / without a code", "%.0f / %.0f", d(`monitord_reason_fetches_total{result="ok"}`)+d(`monitord_reason_fetches_total{result="no_code"}`),
		d(`monitord_reason_fetches_total{result="timeout"}`)+d(`monitord_reason_fetches_total{result="error"}`)+d(`monitord_reason_fetches_total{result="skipped"}`))
	tb.add("events committed", "%.0f", sumPrefix(last, first, "monitord_events_total"))
	return tb, nil
}

// anonRSS reads RssAnon of pid from /proc: RSS counts bbolt's mmap of the
// state file too, which is page cache the kernel can reclaim; the
// anonymous part is the process's own memory. 0 where /proc is missing.
func anonRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	return 0
}

// metrics is one scrape: "name{labels}" → value.
type metrics map[string]float64

func scrape(base string) (metrics, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return admin.ParseMetrics(resp.Body)
}

func sumPrefix(last, first metrics, prefix string) float64 {
	var s float64
	for k, v := range last {
		if strings.HasPrefix(k, prefix+"{") {
			s += v - first[k]
		}
	}
	return s
}

func waitLine(r io.Reader, sub string, d time.Duration) error {
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.Contains(sc.Text(), sub) {
				found <- nil
				return
			}
		}
		found <- fmt.Errorf("output ended before %q", sub)
	}()
	select {
	case err := <-found:
		return err
	case <-time.After(d):
		return fmt.Errorf("no %q within %s", sub, d)
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// stopProcess sends SIGTERM and waits (the daemon exits 0 on it).
func stopProcess(c *exec.Cmd) {
	if c.Process == nil {
		return
	}
	_ = c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.Process.Kill()
		<-done
	}
}
