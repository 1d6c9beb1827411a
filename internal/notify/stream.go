package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// fatalError marks a problem waiting cannot fix (a missing stream, JetStream
// off): Run returns it instead of retrying forever in silence.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func (p *Publisher) streamConfig() jetstream.StreamConfig {
	s := p.cfg.Stream
	storage := jetstream.FileStorage
	if s.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:        s.Name,
		Description: "monitord events (CloudEvents 1.0 JSON)",
		Subjects:    s.Subjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     storage,
		MaxAge:      s.MaxAge,
		Duplicates:  s.Duplicates,
		Replicas:    s.Replicas,
	}
}

// provision makes sure the stream exists. With Stream.Create it creates
// the stream or updates it to the config; if that is refused (no
// permission, or a change the server will not make), or Create is off, it
// settles for checking that a stream by that name exists and captures the
// event subjects, and otherwise says exactly what to create.
func (p *Publisher) provision(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	cfg := p.streamConfig()
	var createErr error
	if p.cfg.Stream.Create {
		_, createErr = js.CreateOrUpdateStream(ctx, cfg)
		if createErr == nil {
			p.log.Info("jetstream stream ready", zap.String("stream", cfg.Name), zap.Strings("subjects", cfg.Subjects))
			return nil
		}
		if jetStreamOff(createErr) {
			return &fatalError{p.jetStreamOffError(createErr)}
		}
		if ctx.Err() != nil && !errors.Is(createErr, context.DeadlineExceeded) {
			return createErr
		}
		// A denied API request gets no reply, only a timeout: give the
		// existence check a fresh deadline.
		var cancel2 context.CancelFunc
		ctx, cancel2 = context.WithTimeout(context.WithoutCancel(ctx), p.cfg.AckTimeout)
		defer cancel2()
	}
	s, err := js.Stream(ctx, cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		why := "nats.stream.create is false"
		if createErr != nil {
			why = fmt.Sprintf("creating it failed (%v)", createErr)
		}
		return &fatalError{fmt.Errorf("jetstream stream %s does not exist and %s; create it with:\n  %s",
			cfg.Name, why, p.streamAddCommand())}
	case jetStreamOff(err):
		return &fatalError{p.jetStreamOffError(err)}
	case err != nil:
		if createErr != nil {
			return fmt.Errorf("create stream %s: %w; look it up: %w", cfg.Name, createErr, err)
		}
		return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
	}
	have := s.CachedInfo().Config
	for _, subj := range cfg.Subjects {
		if !covers(have.Subjects, subj) {
			return &fatalError{fmt.Errorf("jetstream stream %s captures %v, not %q where events are published; add the subject: nats stream edit %s --subjects '%s'",
				cfg.Name, have.Subjects, subj, cfg.Name, strings.Join(append(slices.Clone(have.Subjects), subj), ","))}
		}
	}
	fields := []zap.Field{zap.String("stream", cfg.Name), zap.Duration("duplicate_window", have.Duplicates)}
	if createErr != nil {
		fields = append(fields, zap.NamedError("update_error", createErr))
	}
	if have.Duplicates < cfg.Duplicates {
		p.log.Warn("jetstream stream has a shorter duplicate window than configured: replays after a longer gap are stored twice", fields...)
	} else {
		p.log.Info("jetstream stream exists", fields...)
	}
	return nil
}

// jetStreamOff: on a single server nothing answers the JetStream API when
// JetStream is off (the client library reads "no responders" the same way).
func jetStreamOff(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders)
}

func (p *Publisher) jetStreamOffError(err error) error {
	return fmt.Errorf("jetstream is not available on %s: %w; enable JetStream for the account, or set nats.mode: core (at-most-once delivery)",
		p.redactedURLs(), err)
}

// streamAddCommand is the natscli command that creates the configured
// stream, for operators who keep stream management to themselves.
func (p *Publisher) streamAddCommand() string {
	c := p.streamConfig()
	maxAge := "-1" // natscli: unlimited
	if c.MaxAge > 0 {
		maxAge = durationFlag(c.MaxAge)
	}
	return fmt.Sprintf("nats stream add %s --subjects '%s' --storage %s --retention limits --discard old --max-age %s --dupe-window %s --replicas %d --defaults",
		c.Name, strings.Join(c.Subjects, ","), p.cfg.Stream.Storage, maxAge, durationFlag(c.Duplicates), c.Replicas)
}

// durationFlag formats d the way natscli reads it ("2h", "168h", "90s").
func durationFlag(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return d.String()
	}
}

// covers reports whether one of the stream's subject filters matches every
// subject that subj matches (NATS wildcard semantics, token by token).
func covers(filters []string, subj string) bool {
	for _, f := range filters {
		if subsetOf(strings.Split(subj, "."), strings.Split(f, ".")) {
			return true
		}
	}
	return false
}

func subsetOf(s, f []string) bool {
	for i, ft := range f {
		if ft == ">" {
			return i < len(s)
		}
		if i >= len(s) {
			return false
		}
		switch {
		case ft == "*":
			if s[i] == ">" {
				return false
			}
		case ft != s[i]:
			return false
		}
	}
	return len(s) == len(f)
}
