package work

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// task is a message of the work queue: the target in its parts (never a
// key to parse back) and the tick's due instant; or, with Kind
// KindDiscover, a discovery refresh of ServiceSID due then.
type task struct {
	Kind           string       `json:"kind,omitempty"`
	Source         proxy.Source `json:"source,omitempty"`
	ServiceSID     string       `json:"service_sid"`
	SessionSID     string       `json:"session_sid"`
	ParticipantSID string       `json:"participant_sid,omitempty"`
	DueMillis      int64        `json:"due_ms"`
}

// KindDiscover is the kind of a discovery refresh task: it travels on its
// Service's subject, so the Service's pinned owner runs it, within that
// instance's per-Service budget (docs/ha.md, "Discovery with ha").
const KindDiscover = "discover"

// discoverSubject is the subject of service's discovery refresh tasks:
// under the Service's token, so its consumer delivers them, and apart from
// every target's hash (16 hex digits), so a refresh never waits on a poll.
func discoverSubject(prefix, service string) string {
	return prefix + ".task." + service + "." + KindDiscover
}

// discoverTick is one refresh of service due at due; its ID, the same on
// every instance's scheduler, is the Nats-Msg-Id that makes their copies
// one task.
func discoverTick(service string, due time.Time) poller.Tick {
	return poller.Tick{Key: KindDiscover + "/" + service, Due: due}
}

// decodeTask reads a task message and checks the target it names. A
// discovery task returns the zero target with only ServiceSID set and
// discover true.
func decodeTask(data []byte) (t proxy.Target, tick poller.Tick, discover bool, err error) {
	var tk task
	if err := json.Unmarshal(data, &tk); err != nil {
		return proxy.Target{}, poller.Tick{}, false, fmt.Errorf("decode task: %w", err)
	}
	switch tk.Kind {
	case "":
	case KindDiscover:
		if err := proxy.CheckSID("service_sid", "KS", tk.ServiceSID); err != nil {
			return proxy.Target{}, poller.Tick{}, false, fmt.Errorf("discover task: %w", err)
		}
		if tk.DueMillis <= 0 {
			return proxy.Target{}, poller.Tick{}, false, fmt.Errorf("discover task due_ms %d: want a positive unix time in milliseconds", tk.DueMillis)
		}
		due := time.UnixMilli(tk.DueMillis).UTC()
		return proxy.Target{ServiceSID: tk.ServiceSID}, discoverTick(tk.ServiceSID, due), true, nil
	default:
		return proxy.Target{}, poller.Tick{}, false, fmt.Errorf("task kind %q: want %q or none", tk.Kind, KindDiscover)
	}
	t = proxy.Target{Source: tk.Source, ServiceSID: tk.ServiceSID, SessionSID: tk.SessionSID, ParticipantSID: tk.ParticipantSID}
	if err := t.Validate(); err != nil {
		return proxy.Target{}, poller.Tick{}, false, fmt.Errorf("task target: %w", err)
	}
	if tk.DueMillis <= 0 {
		return proxy.Target{}, poller.Tick{}, false, fmt.Errorf("task due_ms %d: want a positive unix time in milliseconds", tk.DueMillis)
	}
	return t, poller.Tick{Key: t.Key(), Due: time.UnixMilli(tk.DueMillis).UTC()}, false, nil
}

// Ensure creates the work-queue stream and the consumer of each Service,
// or updates them to c where they differ.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config, services []string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, StreamConfig(c)); err != nil {
		return fmt.Errorf("create stream %s: %w", c.Stream, err)
	}
	for _, svc := range services {
		if err := proxy.CheckSID("service_sid", "KS", svc); err != nil {
			return err
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, ConsumerConfig(c, svc)); err != nil {
			return fmt.Errorf("create consumer %s: %w", ConsumerName(svc), err)
		}
	}
	return nil
}

// Outcome is what became of a published task.
type Outcome int

const (
	// Queued: the task is in the queue; an owner will poll it.
	Queued Outcome = iota
	// Duplicate: another scheduler queued this tick of the target first.
	Duplicate
	// Busy: the target's previous task is still queued or running, so this
	// tick is skipped, as the single-instance poller skips a tick that
	// finds the previous poll still running.
	Busy
)

// String names the outcome, for logs and metrics.
func (o Outcome) String() string {
	switch o {
	case Queued:
		return "queued"
	case Duplicate:
		return "duplicate"
	case Busy:
		return "busy"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Queue publishes poll tasks. Every instance runs one, fed by its own
// scheduler.
type Queue struct {
	js  jetstream.JetStream
	cfg Config
}

// NewQueue returns a Queue publishing into c's stream through js (see
// Ensure for creating it).
func NewQueue(js jetstream.JetStream, c Config) (*Queue, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Queue{js: js, cfg: c}, nil
}

// Publish queues the poll of target t at tick, with the tick's ID as
// Nats-Msg-Id so that every scheduler's copy of it is one task. It waits
// for the stream's acknowledgement (bound it with ctx, well under
// Config.Duplicates: a copy published after the window is a new task); an
// error means the task may or may not be queued, and publishing it again
// is safe.
func (q *Queue) Publish(ctx context.Context, t proxy.Target, tick poller.Tick) (Outcome, error) {
	data, err := json.Marshal(task{Source: t.Source, ServiceSID: t.ServiceSID, SessionSID: t.SessionSID,
		ParticipantSID: t.ParticipantSID, DueMillis: tick.Due.UnixMilli()})
	if err != nil {
		return 0, fmt.Errorf("encode task: %w", err)
	}
	return q.publish(ctx, Subject(q.cfg.Prefix, t), tick.ID(), data)
}

// PublishDiscover queues the discovery refresh of service due at due (an
// instant of the entry's schedule, the same on every instance), with
// discoverTick's ID as Nats-Msg-Id so that every scheduler's copy is one
// task. As Publish, an error means it may or may not be queued.
func (q *Queue) PublishDiscover(ctx context.Context, service string, due time.Time) (Outcome, error) {
	if err := proxy.CheckSID("service_sid", "KS", service); err != nil {
		return 0, fmt.Errorf("discover task: %w", err)
	}
	data, err := json.Marshal(task{Kind: KindDiscover, ServiceSID: service, DueMillis: due.UnixMilli()})
	if err != nil {
		return 0, fmt.Errorf("encode task: %w", err)
	}
	return q.publish(ctx, discoverSubject(q.cfg.Prefix, service), discoverTick(service, due).ID(), data)
}

// publish sends one task with id as Nats-Msg-Id and waits for the final
// answer.
func (q *Queue) publish(ctx context.Context, subject, id string, data []byte) (Outcome, error) {
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, id)
	wait := 10 * time.Millisecond
	for {
		ack, err := q.js.PublishMsg(ctx, m)
		switch {
		case err == nil && ack.Duplicate:
			return Duplicate, nil
		case err == nil:
			return Queued, nil
		case perSubjectFull(err):
			return Busy, nil
		case !inProcess(err):
			return 0, fmt.Errorf("publish task %s: %w", id, err)
		}
		// Another scheduler's copy is being replicated right now. Ask
		// again once it is settled rather than count it as queued: if
		// its proposal fails (a leader change), this copy must be the
		// one that queues the tick.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("publish task %s: %w", id, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// inProcess reports a clustered stream's refusal of a message whose
// Nats-Msg-Id another publish is proposing at that moment (409, error
// code 10158): the three schedulers' copies of a tick arrive within
// milliseconds of each other, so this is the common case of a duplicate,
// not an exception.
func inProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == 10158
}

// perSubjectFull reports the stream's refusal of a second task for a
// subject (DiscardNewPerSubject). The server sends it as the generic
// "store failed" code 10077 with the store's error as the description, so
// the description is what tells it apart.
func perSubjectFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == 10077 &&
		strings.Contains(apiErr.Description, "maximum messages per subject exceeded")
}
