package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/ha"
)

// cmdNATSAssets is `monitord nats-assets -c FILE`: the natscli commands
// that create the ha bucket, the tasks stream and one consumer per Service
// of the config, for an operator whose monitord NATS user may not create
// them (ha.create_assets: false). They are printed from the same configs
// monitord creates the assets from.
func cmdNATSAssets(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newConfigFlags("nats-assets", "nats-assets -c FILE [overrides]", stderr)
	if err := f.parse(args); err != nil {
		return helpOK(err)
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	if !cfg.HA.Enabled {
		return usagef("nats-assets: ha.enabled is false; the events stream alone is created by nats.stream.create")
	}
	fmt.Fprintf(stdout, "# monitord ha assets (bucket %s, stream %s); run with a NATS user that may create them\n",
		cfg.HA.Bucket, cfg.HA.Tasks.Stream)
	for _, line := range ha.AssetsOf(haConfig(cfg, nil), configServices(cfg)).Commands() {
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// configServices lists the Services of the configured targets and of the
// discover entries, sorted: each has a consumer, a discovered one from the
// start, because its refresh tasks are delivered through it.
func configServices(cfg *config.Config) []string {
	var out []string
	for _, a := range cfg.EffectiveAccounts() {
		for _, t := range a.Targets {
			out = append(out, t.ServiceSID)
		}
		for _, d := range a.Discover {
			out = append(out, d.ServiceSID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
