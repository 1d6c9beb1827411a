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

// provision makes sure the stream exists and captures the event subjects.
// With Stream.Create it creates a missing stream, and widens an existing
// one where it falls short of the config: it adds the event subjects to the
// stream's own (never removing one: another publisher may use them), and
// lengthens max_age and the duplicate window. It shortens those only with
// Stream.AllowShrink, because a shorter max_age deletes stored events; a
// shortening not allowed is logged as a warning and the longer value kept.
// Limits monitord has no config for (max_bytes, max_msgs, …) are left as
// the stream has them. When an update is refused (no permission, or a
// change the server will not make), or Create is off, it settles for a
// stream that exists and captures the event subjects, and otherwise says
// exactly what to create or change.
func (p *Publisher) provision(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	cfg := p.streamConfig()
	s, err := js.Stream(ctx, cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) && p.cfg.Stream.Create:
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			if jetStreamOff(err) {
				return &fatalError{p.jetStreamOffError(err)}
			}
			if errors.Is(err, context.Canceled) {
				return err // shutting down
			}
			return &fatalError{fmt.Errorf("jetstream stream %s does not exist and creating it failed (%w); create it with:\n  %s",
				cfg.Name, denied(js, err), p.streamAddCommand())}
		}
		p.log.Info("jetstream stream created", zap.String("stream", cfg.Name), zap.Strings("subjects", cfg.Subjects))
		return nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return &fatalError{fmt.Errorf("jetstream stream %s does not exist and nats.stream.create is false; create it with:\n  %s",
			cfg.Name, p.streamAddCommand())}
	case jetStreamOff(err):
		return &fatalError{p.jetStreamOffError(err)}
	case err != nil:
		return fmt.Errorf("look up stream %s: %w", cfg.Name, denied(js, err))
	}
	have := s.CachedInfo().Config
	var updateErr error
	if p.cfg.Stream.Create {
		next, kept := widen(have, cfg, p.cfg.Stream.AllowShrink)
		for _, k := range kept {
			p.log.Warn("jetstream stream keeps a longer limit than configured", zap.String("stream", cfg.Name), zap.String("kept", k))
		}
		if changes := streamChanges(have, next); len(changes) > 0 {
			if _, updateErr = js.UpdateStream(ctx, next); updateErr == nil {
				p.log.Warn("jetstream stream updated", zap.String("stream", cfg.Name), zap.Strings("changes", changes))
				have = next
			} else {
				updateErr = denied(js, updateErr)
			}
		}
	}
	for _, subj := range cfg.Subjects {
		if !covers(have.Subjects, subj) {
			why := ""
			if updateErr != nil {
				why = fmt.Sprintf(" (updating it failed: %v)", updateErr)
			}
			return &fatalError{fmt.Errorf("jetstream stream %s captures %v, not %q where events are published%s; add the subject: nats stream edit %s --subjects '%s'",
				cfg.Name, have.Subjects, subj, why, cfg.Name, strings.Join(append(slices.Clone(have.Subjects), subj), ","))}
		}
	}
	fields := []zap.Field{zap.String("stream", cfg.Name), zap.Duration("duplicate_window", have.Duplicates)}
	if updateErr != nil {
		fields = append(fields, zap.NamedError("update_error", updateErr))
	}
	if have.Duplicates < cfg.Duplicates {
		p.log.Warn("jetstream stream has a shorter duplicate window than configured: replays after a longer gap are stored twice", fields...)
	} else {
		p.log.Info("jetstream stream exists", fields...)
	}
	return nil
}

// widen returns the config to update the existing stream have to for want:
// have's own settings, plus want's subjects that have's do not capture, and
// max_age and the duplicate window lengthened to want's (shortened only with
// allowShrink). kept lists each shortening refused, for the log.
func widen(have, want jetstream.StreamConfig, allowShrink bool) (next jetstream.StreamConfig, kept []string) {
	next = have
	next.Subjects = slices.Clone(have.Subjects)
	for _, subj := range want.Subjects {
		if !covers(next.Subjects, subj) {
			next.Subjects = append(next.Subjects, subj)
		}
	}
	limit := func(key string, have, want time.Duration) time.Duration {
		// 0 is no limit: the longest of all.
		shorter := want != 0 && (have == 0 || want < have)
		if !shorter || allowShrink {
			return want
		}
		kept = append(kept, fmt.Sprintf("nats.stream.%s %v is shorter than the stream's %v, which is kept (set nats.stream.allow_shrink: true to shorten it)",
			key, want, limitString(have)))
		return have
	}
	next.MaxAge = limit("max_age", have.MaxAge, want.MaxAge)
	next.Duplicates = limit("duplicates", have.Duplicates, want.Duplicates)
	next.Replicas = max(have.Replicas, want.Replicas)
	return next, kept
}

// streamChanges describes what next changes in have, for the log.
func streamChanges(have, next jetstream.StreamConfig) []string {
	var out []string
	if !slices.Equal(have.Subjects, next.Subjects) {
		out = append(out, fmt.Sprintf("subjects %v -> %v", have.Subjects, next.Subjects))
	}
	if have.MaxAge != next.MaxAge {
		out = append(out, fmt.Sprintf("max_age %s -> %s", limitString(have.MaxAge), limitString(next.MaxAge)))
	}
	if have.Duplicates != next.Duplicates {
		out = append(out, fmt.Sprintf("duplicates %v -> %v", have.Duplicates, next.Duplicates))
	}
	if have.Replicas != next.Replicas {
		out = append(out, fmt.Sprintf("replicas %d -> %d", have.Replicas, next.Replicas))
	}
	return out
}

func limitString(d time.Duration) string {
	if d == 0 {
		return "unlimited"
	}
	return d.String()
}

// denied explains a JetStream API request that timed out because the server
// refused it: a request the account may not publish gets no reply, only an
// asynchronous permissions violation, which the connection keeps as its
// last error. Any other err is returned as it is.
func denied(js jetstream.JetStream, err error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	last := js.Conn().LastError()
	if last == nil || !errors.Is(last, nats.ErrPermissionViolation) || !strings.Contains(last.Error(), "$JS.API.STREAM.") {
		return err
	}
	return fmt.Errorf("permission denied: %w: the NATS user may not manage streams; create or change the stream as a user who may, or grant it", last)
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
