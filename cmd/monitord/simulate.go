package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/monitord/monitord/internal/proxysim"
)

// simulateOptions are monitord simulate's flags.
type simulateOptions struct {
	listen      string
	writeConfig string
	targets     int
	sim         proxysim.Options
}

func parseSimulateFlags(args []string, stderr io.Writer) (simulateOptions, error) {
	o := simulateOptions{}
	s := &o.sim
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "`address` to serve on; port 0 picks a free one")
	fs.StringVar(&o.writeConfig, "write-config", "", "write a monitord config for the simulator to `FILE` (mode 0600)")
	fs.IntVar(&o.targets, "targets", 0, "at most `N` targets in the written config (0: every participant)")
	fs.Uint64Var(&s.Seed, "seed", 1, "world `seed`: the same seed gives the same SIDs, messages and credentials")
	fs.IntVar(&s.Services, "services", 1, "Proxy Services (`N`)")
	fs.IntVar(&s.Sessions, "sessions", 10, "sessions per Service open at start (`N`)")
	fs.IntVar(&s.Participants, "participants", 2, "participants per session (`N`, 1-255)")
	fs.IntVar(&s.Interactions, "interactions", 20, "interactions per participant before start (`N`)")
	fs.DurationVar(&s.BacklogGap, "backlog-gap", time.Minute, "spacing of those interactions")
	fs.DurationVar(&s.InteractionEvery, "interaction-every", time.Minute, "a new interaction per participant this often (0: none)")
	fs.Float64Var(&s.FailureRate, "failure-rate", 0.05, "fraction of messages that end failed or undelivered (0-1)")
	fs.Float64Var(&s.StuckRate, "stuck-rate", 0.02, "fraction of messages stuck in queued or sending (0-1)")
	fs.Float64Var(&s.DeleteRate, "delete-rate", 0, "fraction of interactions deleted 10-20 min after creation (0-1)")
	fs.DurationVar(&s.SessionOpenEvery, "session-open-every", 0, "open a new session per Service this often (0: none)")
	fs.DurationVar(&s.SessionLifetime, "session-lifetime", 0, "close those sessions after this long (0: never)")
	fs.IntVar(&s.RateLimit, "rate-limit", 150, "requests per endpoint per Service per 5 s window (-1: unlimited)")
	fs.DurationVar(&s.RetryAfter, "retry-after", 0, "send this Retry-After with rate-limit 429s (0: none)")
	fs.IntVar(&s.MaxConcurrent, "max-concurrent", 0, "requests in flight before 429 code 20429 (0: unlimited)")
	fs.BoolVar(&s.Uncapped, "uncapped", false, "serve PageSize items on Sessions and session Interactions pages too (default: at most 100, as documented)")
	fs.BoolVar(&s.Gzip, "gzip", false, "gzip bodies for clients that accept it, as Twilio does")
	f := &s.Faults
	fs.DurationVar(&f.Latency, "latency", 0, "fault: delay every response")
	fs.DurationVar(&f.Jitter, "jitter", 0, "fault: up to this much more delay")
	fs.Float64Var(&f.ErrorRate, "error-rate", 0, "fault: fraction of 500/503 answers")
	fs.Float64Var(&f.StormRate, "storm-rate", 0, "fault: fraction of 429 answers regardless of the limit")
	fs.DurationVar(&f.StormRetryAfter, "storm-retry-after", 0, "fault: Retry-After of those 429s (0: none)")
	fs.Float64Var(&f.HTMLRate, "html-rate", 0, "fault: fraction of 502 HTML error pages")
	fs.Float64Var(&f.WrongContentTypeRate, "wrong-content-type-rate", 0, "fault: fraction of 200 text/html answers")
	fs.Float64Var(&f.TruncateRate, "truncate-rate", 0, "fault: fraction of bodies cut in half")
	fs.Float64Var(&f.SlowBodyRate, "slow-body-rate", 0, "fault: fraction of bodies sent in two halves")
	fs.DurationVar(&f.SlowBody, "slow-body", 5*time.Second, "fault: pause between the two halves")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: monitord simulate [--listen ADDR] [--seed N] [--write-config FILE] [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Serves a simulated Twilio Proxy v1 API (the list and fetch endpoints monitord reads)")
		fmt.Fprintln(stderr, "over a deterministic world whose message statuses move with time, and optionally")
		fmt.Fprintln(stderr, "writes a monitord config pointing at it. Ctrl-C stops it.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usagef("simulate: %v", err)
	}
	if fs.NArg() > 0 {
		return o, usagef("simulate: takes no arguments, got %q", fs.Args())
	}
	for _, c := range []struct {
		name   string
		bad    bool
		format string
		value  any
	}{
		{"--services", s.Services < 1 || s.Services > 65535, "between 1 and 65535, got %d", s.Services},
		{"--sessions", s.Sessions < 1, "at least 1, got %d", s.Sessions},
		{"--participants", s.Participants < 1 || s.Participants > 255, "between 1 and 255, got %d", s.Participants},
		{"--interactions", s.Interactions < 1, "at least 1, got %d", s.Interactions},
		{"--targets", o.targets < 0, "not negative, got %d", o.targets},
		{"--failure-rate", !isRate(s.FailureRate), "between 0 and 1, got %g", s.FailureRate},
		{"--stuck-rate", !isRate(s.StuckRate), "between 0 and 1, got %g", s.StuckRate},
		{"--delete-rate", !isRate(s.DeleteRate), "between 0 and 1, got %g", s.DeleteRate},
		{"--error-rate", !isRate(f.ErrorRate), "between 0 and 1, got %g", f.ErrorRate},
		{"--storm-rate", !isRate(f.StormRate), "between 0 and 1, got %g", f.StormRate},
		{"--html-rate", !isRate(f.HTMLRate), "between 0 and 1, got %g", f.HTMLRate},
		{"--wrong-content-type-rate", !isRate(f.WrongContentTypeRate), "between 0 and 1, got %g", f.WrongContentTypeRate},
		{"--truncate-rate", !isRate(f.TruncateRate), "between 0 and 1, got %g", f.TruncateRate},
		{"--slow-body-rate", !isRate(f.SlowBodyRate), "between 0 and 1, got %g", f.SlowBodyRate},
		{"--rate-limit", s.RateLimit == 0 || s.RateLimit < -1, "positive or -1, got %d", s.RateLimit},
	} {
		if c.bad {
			return o, usagef("simulate: %s must be "+c.format, c.name, c.value)
		}
	}
	if s.FailureRate+s.StuckRate > 1 {
		return o, usagef("simulate: --failure-rate plus --stuck-rate must not exceed 1, got %g", s.FailureRate+s.StuckRate)
	}
	for name, d := range map[string]time.Duration{
		"--backlog-gap": s.BacklogGap, "--interaction-every": s.InteractionEvery, "--session-open-every": s.SessionOpenEvery,
		"--session-lifetime": s.SessionLifetime, "--retry-after": s.RetryAfter, "--latency": f.Latency,
		"--jitter": f.Jitter, "--storm-retry-after": f.StormRetryAfter, "--slow-body": f.SlowBody,
	} {
		if d < 0 {
			return o, usagef("simulate: %s must not be negative, got %s", name, d)
		}
	}
	if s.MaxConcurrent < 0 {
		return o, usagef("simulate: --max-concurrent must not be negative, got %d", s.MaxConcurrent)
	}
	return o, nil
}

func isRate(f float64) bool { return f >= 0 && f <= 1 }

// cmdSimulate serves the simulator until ctx is done (SIGINT/SIGTERM).
func cmdSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseSimulateFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	sim := proxysim.New(o.sim)
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	baseURL := "http://" + ln.Addr().String()
	targets := sim.Targets()
	if o.targets > 0 && o.targets < len(targets) {
		targets = targets[:o.targets]
	}
	if o.writeConfig != "" {
		var b strings.Builder
		writeSimulatorConfig(&b, baseURL, sim.Credentials(), targets)
		if err := writePrivateFile(o.writeConfig, []byte(b.String())); err != nil {
			ln.Close()
			return fmt.Errorf("simulate: write config: %w", err)
		}
	}
	fmt.Fprintf(stdout, "simulating the Twilio Proxy API on %s (seed %d: %d services, %d targets)\n",
		baseURL, o.sim.Seed, o.sim.Services, len(sim.Targets()))
	if o.writeConfig != "" {
		fmt.Fprintf(stdout, "config for it written to %s (%d targets)\n", o.writeConfig, len(targets))
	}
	if err := sim.Serve(ctx, ln); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	return nil
}

// writePrivateFile writes data to path as a new file of mode 0600, synced,
// then renames it over path. os.WriteFile's mode applies only to a file it
// creates: over an existing 0644 file the token would stay readable by
// all. The rename means a reader, or the next start after a crash, finds
// the old file or the new one, never half of one (a config, the activity
// planners' state).
func writePrivateFile(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// writeSimulatorConfig writes a monitord config (internal/config's schema)
// that polls targets on the simulator at baseURL. The auth token is the
// simulator's own: a test secret, fine to write down.
func writeSimulatorConfig(w io.Writer, baseURL string, c proxysim.Credentials, targets []proxysim.Target) {
	q := strconv.Quote
	fmt.Fprintln(w, "# monitord config for the Twilio Proxy simulator (monitord simulate).")
	fmt.Fprintln(w, "twilio:")
	fmt.Fprintf(w, "  base_url: %s\n", q(baseURL))
	fmt.Fprintf(w, "  messages_base_url: %s\n", q(baseURL)) // FetchMessage, for failure reasons
	fmt.Fprintf(w, "  account_sid: %s\n", q(c.AccountSID))
	fmt.Fprintf(w, "  auth_token: %s\n", q(c.AuthToken))
	fmt.Fprintln(w, "targets:")
	for _, t := range targets {
		fmt.Fprintln(w, "  - source: participant")
		fmt.Fprintf(w, "    service_sid: %s\n", q(t.ServiceSID))
		fmt.Fprintf(w, "    session_sid: %s\n", q(t.SessionSID))
		fmt.Fprintf(w, "    participant_sid: %s\n", q(t.ParticipantSID))
	}
}
