package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/config"
)

// configFlags are the flags every config-reading subcommand shares: -c and
// the key overrides of config.RegisterFlags.
type configFlags struct {
	fs   *pflag.FlagSet
	path *string
}

func newConfigFlags(name, synopsis string, stderr io.Writer) configFlags {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	f := configFlags{fs: fs, path: fs.StringP("config", "c", "", "config `FILE` (YAML)")}
	config.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: monitord %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return f
}

// parse parses args; help is reported as errHelp (exit 0 after usage).
func (f configFlags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return errHelp
		}
		return usagef("%s: %v", f.fs.Name(), err)
	}
	if f.fs.NArg() > 0 {
		return usagef("%s: unexpected arguments %q", f.fs.Name(), f.fs.Args())
	}
	if *f.path == "" {
		return usagef("%s: -c FILE is required", f.fs.Name())
	}
	return nil
}

// errHelp ends a subcommand after its usage was printed on request.
var errHelp = errors.New("help requested")

// load reads and validates the config with config.Load (file, environment,
// flags); its validation parses every schedule with the scheduler's own
// parser. Every problem is a usageError (exit 2), one per line, each naming
// its key.
func (f configFlags) load() (*config.Config, error) {
	cfg, err := config.Load(*f.path, os.Environ(), f.fs)
	if err != nil {
		return nil, usageError{fmt.Errorf("invalid config %s:\n%w", *f.path, err)}
	}
	return cfg, nil
}

// cmdCheck loads and validates a config: "ok" and exit 0, or exit 2 with
// every bad key named.
func cmdCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newConfigFlags("check", "check -c FILE [--alertmanager] [overrides]", stderr)
	bridge := f.fs.Bool("alertmanager", false, "check what `monitord alertmanager` reads (its section, nats, log) instead of what `run` reads")
	if err := f.parse(args); err != nil {
		return helpOK(err)
	}
	var cfg *config.Config
	var err error
	if *bridge {
		// The same load as `monitord alertmanager`'s, which reads no
		// state file: the bridge's unit runs this as its ExecStartPre.
		cfg, err = config.LoadPart(*f.path, os.Environ(), f.fs, config.PartAlertmanager)
		if err != nil {
			return usageError{fmt.Errorf("invalid config %s:\n%w", *f.path, err)}
		}
	} else {
		if cfg, err = f.load(); err != nil {
			return err
		}
		if err := cfg.CheckStatePath(); err != nil {
			return usageError{fmt.Errorf("invalid config %s:\n%w", *f.path, err)}
		}
	}
	// Warnings go to stderr (the journal under ExecStartPre) and do not
	// fail the check: each is an explicit, documented choice.
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// logWarnings logs what the config allows but an operator should know,
// at start and after each reload.
func logWarnings(log *zap.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
}

// helpOK turns a requested help into success.
func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}
