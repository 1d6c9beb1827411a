// Command monitord watches Twilio Proxy message delivery by polling, and
// publishes one event per change to NATS. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/monitord/monitord/internal/state"
)

// Exit codes (DESIGN.md): 0 ok, 1 runtime failure, 2 bad usage or invalid
// config, 3 a corrupt state file. A corrupt file has its own code because,
// like a bad config, restarting cannot fix it (systemd's
// RestartPreventExitStatus), and unlike one, `check` cannot find it.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitCorrupt = 3
)

// usageError marks an error as bad usage or invalid config: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError.
func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run the daemon (systemd's ExecStart)", cmdRun},
		{"check", "load and validate a config; exit 2 naming each bad key", cmdCheck},
		{"once", "poll every target once; events as JSON lines on stdout", cmdOnce},
		{"simulate", "serve the simulated Twilio Proxy API", cmdSimulate},
		{"demo", "simulator + embedded NATS + daemon in one process", cmdDemo},
		{"tail", "subscribe to monitord events and print them", cmdTail},
		{"alertmanager", "post failed events to Prometheus Alertmanager", cmdAlertmanager},
		{"status", "status --cluster: which instance owns which Service (ha)", cmdStatus},
		{"nats-assets", "print the nats CLI commands that create the ha bucket, stream and consumers", cmdNATSAssets},
		{"version", "print version, commit and Go version", cmdVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// run dispatches to a subcommand. It is main without os.Exit, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return usageError{errors.New("no command given")}
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return usagef("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: monitord <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'monitord <command> -h' for a command's flags.")
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "monitord:", err)
	var u usageError
	switch {
	case errors.As(err, &u):
		return exitUsage
	case errors.Is(err, state.ErrCorrupt):
		return exitCorrupt
	}
	return exitFailure
}
