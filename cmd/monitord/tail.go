package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/redact"
)

// Defaults of monitord tail: a nats-server on this host, every monitord event.
const (
	defaultTailURL     = nats.DefaultURL
	defaultTailSubject = event.DefaultPrefix + ".>"
)

type tailOptions struct {
	url     string
	subject string
	stream  string
	creds   string
	json    bool
	since   time.Duration
	// all delivers every event the stream holds before following; not a
	// flag: the demo uses it so it misses nothing published before its
	// consumer existed.
	all bool
}

func parseTailFlags(args []string, stderr io.Writer) (tailOptions, error) {
	var o tailOptions
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "nats", defaultTailURL, "NATS server `URL`s, comma-separated")
	fs.StringVar(&o.subject, "subject", defaultTailSubject, "`subject` to follow; wildcards allowed, e.g. monitord.failed.>")
	fs.StringVar(&o.stream, "stream", "", "JetStream stream `name` (default: the stream that holds the subject)")
	fs.StringVar(&o.creds, "creds", "", "NATS credentials (.creds) `file`")
	fs.BoolVar(&o.json, "json", false, "print each event as one raw CloudEvents JSON line")
	fs.DurationVar(&o.since, "since", 0, "replay events stored in the last `DURATION` (e.g. 1h) before following")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: monitord tail [--nats URL] [--subject S | S] [--json] [--since DURATION] [--stream NAME]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Follows monitord's events on NATS: through an ephemeral JetStream ordered consumer when")
		fmt.Fprintln(stderr, "a stream holds the subject, else a plain (live only) NATS subscription.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usagef("tail: %v", err)
	}
	switch fs.NArg() {
	case 0:
	case 1:
		if subjectSet(fs) {
			return o, usagef("tail: give the subject either as --subject or as an argument, not both")
		}
		o.subject = fs.Arg(0)
	default:
		return o, usagef("tail: at most one subject argument, got %q", fs.Args())
	}
	if o.since < 0 {
		return o, usagef("tail: --since must be positive, got %s", o.since)
	}
	if err := checkSubject(o.subject); err != nil {
		return o, usagef("tail: --subject: %v", err)
	}
	return o, nil
}

func subjectSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "subject" {
			set = true
		}
	})
	return set
}

// checkSubject rejects subjects NATS would refuse, before connecting, so the
// error names the flag rather than a protocol error.
func checkSubject(s string) error {
	if s == "" {
		return errors.New("empty subject")
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return fmt.Errorf("%q has an empty token", s)
		case strings.ContainsAny(tok, " \t\r\n"):
			return fmt.Errorf("%q contains white space", s)
		case tok == ">" && i != len(toks)-1:
			return fmt.Errorf("%q: '>' must be the last token", s)
		}
	}
	return nil
}

func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseTailFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := newEventPrinter(stdout, o.json)
	p.onWriteError = func(error) { cancel() }
	err = tail(ctx, o, p, stderr)
	p.close() // the held lines, if any, before the last word
	if err != nil {
		return err
	}
	if err := p.writeErr(); err != nil {
		return fmt.Errorf("tail: write: %w", err)
	}
	return nil
}

// tail connects, subscribes and prints until ctx is done. Ctrl-C is how a
// tail ends, so a cancelled ctx is a clean exit, not an error.
func tail(ctx context.Context, o tailOptions, p *eventPrinter, stderr io.Writer) error {
	var logMu sync.Mutex
	logf := func(format string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(stderr, "tail: "+format+"\n", a...)
	}
	opts := []nats.Option{
		nats.Name("monitord tail"),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logf("disconnected: %v", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { logf("reconnected to %s", redact.URLs(nc.ConnectedUrl())) }),
	}
	if o.creds != "" {
		opts = append(opts, nats.UserCredentials(o.creds))
		if !allTLS(o.url) {
			// A login without TLS goes only to the servers given, never to
			// those the cluster advertises (as the daemon's, notify.AuthOptions).
			opts = append(opts, nats.IgnoreDiscoveredServers())
		}
	}
	nc, err := nats.Connect(o.url, opts...)
	if err != nil {
		return fmt.Errorf("tail: connect %s: %w", redact.URLs(o.url), err)
	}
	defer nc.Close()

	stop, how, err := subscribe(ctx, nc, o, p, logf)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("tail: %w", err)
	}
	defer stop()
	logf("following %s on %s (%s); Ctrl-C to stop", o.subject, redact.URLs(nc.ConnectedUrl()), how)
	<-ctx.Done()
	return nil
}

// subscribe follows o.subject through JetStream when a stream holds it, else
// through a core NATS subscription. It returns how it subscribed, for the
// start-up line, and a function that unsubscribes.
func subscribe(ctx context.Context, nc *nats.Conn, o tailOptions, p *eventPrinter, logf func(string, ...any)) (stop func(), how string, err error) {
	stream, lookupErr := findStream(ctx, nc, o)
	if lookupErr != nil {
		if o.stream != "" {
			return nil, "", fmt.Errorf("stream %s: %w", o.stream, lookupErr)
		}
		if o.since > 0 {
			return nil, "", fmt.Errorf("--since replays from a JetStream stream, and none holds %s: %w", o.subject, lookupErr)
		}
		sub, err := nc.Subscribe(o.subject, func(m *nats.Msg) { p.print(m.Subject, m.Data) })
		if err != nil {
			return nil, "", fmt.Errorf("subscribe %s: %w", o.subject, err)
		}
		// The subscription is in place at the server once Flush returns, so
		// the start-up line is only printed when events will really arrive.
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = nc.FlushWithContext(fctx)
		cancel()
		if err != nil {
			_ = sub.Unsubscribe()
			return nil, "", fmt.Errorf("subscribe %s: %w", o.subject, err)
		}
		how := "core NATS, live events only: no JetStream stream found (" + lookupErr.Error() + ")"
		return func() { _ = sub.Unsubscribe() }, how, nil
	}

	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{o.subject},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	how = "new events"
	switch {
	case o.all:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		how = "all stored events"
	case o.since > 0:
		start := time.Now().Add(-o.since)
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &start
		how = "events since " + start.Format(time.RFC3339)
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("consumer on stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	var lastErr string
	cc, err := cons.Consume(
		func(m jetstream.Msg) { p.print(m.Subject(), m.Data()) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// The ordered consumer recreates itself after gaps and
			// reconnects; say so once, not once per heartbeat.
			if s := err.Error(); s != lastErr {
				lastErr = s
				logf("consumer: %v", err)
			}
		}),
	)
	if err != nil {
		return nil, "", fmt.Errorf("consume stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	how = "JetStream stream " + stream.CachedInfo().Config.Name + ", ordered consumer, " + how
	return cc.Stop, how, nil
}

// findStream returns the stream named by --stream, or the one whose subjects
// overlap the followed subject.
func findStream(ctx context.Context, nc *nats.Conn, o tailOptions) (jetstream.Stream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	name := o.stream
	if name == "" {
		if name, err = js.StreamNameBySubject(ctx, o.subject); err != nil {
			return nil, err
		}
	}
	return js.Stream(ctx, name)
}

// allTLS reports whether every server of a comma-separated URL list is
// dialled with TLS (tls:// or wss://).
func allTLS(urls string) bool {
	for u := range strings.SplitSeq(urls, ",") {
		u = strings.TrimSpace(u)
		if !strings.HasPrefix(u, "tls://") && !strings.HasPrefix(u, "wss://") {
			return false
		}
	}
	return true
}
