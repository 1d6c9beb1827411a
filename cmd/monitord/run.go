package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/monitord/monitord/internal/config"
)

// cmdRun is the daemon, systemd's ExecStart. main's context is cancelled
// by SIGTERM or SIGINT: scheduling stops, in-flight polls finish or are
// cancelled, the outbox drains for a bounded time, the state file is
// closed, and the exit code is 0. SIGHUP reloads the config: an invalid
// one is logged and the running config kept.
func cmdRun(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newConfigFlags("run", "run -c FILE [overrides]", stderr)
	if err := f.parse(args); err != nil {
		return helpOK(err)
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr may not sync; nothing to do about it
	logWarnings(log, cfg)

	// Install the SIGHUP handler before anything else: the default action
	// of SIGHUP is to terminate.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	hctx, stopHUP := context.WithCancel(ctx)
	defer stopHUP()
	go func() {
		for {
			select {
			case <-hctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default: // a reload is already pending: it reads the newest file
				}
			}
		}
	}()

	d, err := startDaemon(ctx, cfg, log, daemonOptions{
		Systemd:    true,
		Reload:     reload,
		LoadConfig: func() (*config.Config, error) { return f.load() },
		Signals:    []os.Signal{os.Interrupt, syscall.SIGTERM},
	})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
