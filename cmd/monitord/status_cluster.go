package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/monitord/monitord/internal/ha"
)

// cmdStatus is `monitord status --cluster -c FILE`: which instance owns
// (polls) which Service, read from the ownership records every owner keeps
// in the ha bucket, then the instances that run, from their instance
// records. One instance's own view is its /status.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newConfigFlags("status", "status --cluster -c FILE [overrides]", stderr)
	cluster := f.fs.Bool("cluster", false, "list which instance owns which Service (ha.enabled)")
	if err := f.parse(args); err != nil {
		return helpOK(err)
	}
	if !*cluster {
		return usagef("status: only --cluster is implemented; an instance's own status is its admin /status")
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	if !cfg.HA.Enabled {
		return usageError{fmt.Errorf("status --cluster: %w", errNoHA)}
	}
	nc, js, err := connectHA(cfg, cfg.NATS.Name+"/status")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	owners, err := ha.Owners(ctx, js, cfg.HA.Bucket)
	if err != nil {
		return err
	}
	now := time.Now()
	// An owner confirms its record every pinned TTL; one not confirmed for
	// twice that is an instance that died without handing over.
	stale := 2 * cfg.HA.Tasks.PinnedTTL
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCE\tSINCE\tSEEN")
	for _, o := range owners {
		seen := now.Sub(o.Seen).Round(time.Second).String() + " ago"
		if now.Sub(o.Seen) > stale {
			seen += " (stale: owner gone?)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.Service, o.Instance, o.Since.UTC().Format(time.RFC3339), seen)
	}
	if len(owners) == 0 {
		fmt.Fprintln(tw, "(no Service owned yet)")
	}
	insts, err := ha.Instances(ctx, js, cfg.HA.Bucket)
	if err != nil {
		return err
	}
	// An instance writes its record every pinned TTL and counts as live
	// for three (docs/ha.md, "Balance").
	live := 3 * cfg.HA.Tasks.PinnedTTL
	fmt.Fprintln(tw, "\nINSTANCE\tOWNS\tSERVES\tSEEN")
	for _, in := range insts {
		seen := now.Sub(in.Seen).Round(time.Second).String() + " ago"
		if now.Sub(in.Seen) > live {
			seen += " (not live: stopped without removing it?)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", in.Instance, in.Owned, in.Services, seen)
	}
	if len(insts) == 0 {
		fmt.Fprintln(tw, "(no instance running)")
	}
	return tw.Flush()
}
