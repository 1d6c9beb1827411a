package poller

import (
	"context"
	"errors"
	"time"

	"github.com/monitord/monitord/internal/event"
	"github.com/monitord/monitord/internal/proxy"
	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/twilio"
)

// Error classes of a failing target, as carried in target_error events.
const (
	ClassAuth            = "auth"             // 401/403: credentials wrong or revoked
	ClassNotFound        = "not_found"        // 404: the session or participant is gone
	ClassRateLimited     = "rate_limited"     // 429 after every retry
	ClassUnavailable     = "unavailable"      // 5xx, timeouts, transport errors
	ClassInvalidResponse = "invalid_response" // a body the client could not decode
	ClassOther           = "other"            // any other 4xx: a request Twilio will never accept
)

// failure is what the poller knows about one failed listing.
type failure struct {
	class      string
	httpStatus int
	code       int
	message    string
}

// classify sorts a listing error into a class. immediate reports whether
// one failure is enough to call the target failing: auth, not found and
// other 4xx do not heal by retrying, while 5xx, timeouts and rate limiting
// are given threshold polls to go away on their own.
func classify(err error) (f failure, immediate bool) {
	f = failure{class: ClassUnavailable, message: err.Error()}
	var ae *twilio.APIError
	if errors.As(err, &ae) {
		f.httpStatus, f.code = ae.HTTPStatus, ae.Code
		if ae.Message != "" {
			f.message = ae.Message
		}
	}
	var de *twilio.DecodeError
	switch {
	case twilio.IsAuth(err):
		f.class = ClassAuth
		return f, true
	case twilio.IsNotFound(err):
		f.class = ClassNotFound
		return f, true
	case twilio.IsRateLimited(err):
		f.class = ClassRateLimited
	case errors.Is(err, context.DeadlineExceeded):
		f.class = ClassUnavailable
	case ae != nil && ae.HTTPStatus >= 400 && ae.HTTPStatus < 500:
		f.class = ClassOther
		return f, true
	case ae != nil && ae.HTTPStatus >= 500:
		f.class = ClassUnavailable
	case errors.Is(err, twilio.ErrForeignHost), errors.Is(err, twilio.ErrTooManyPages):
		// The API points elsewhere or the target outgrew MaxPages: only a
		// config change helps.
		f.class = ClassOther
		return f, true
	case errors.As(err, &de), errors.Is(err, twilio.ErrPageLoop):
		f.class = ClassInvalidResponse
	}
	return f, false
}

// failed is the health transition of a failed poll. It returns the new
// health and, when this failure starts an outage, the target_error event:
// exactly one per outage, whose id (TargetID with the outage counter) is
// the same if a crash makes the poller derive it twice.
func failed(t proxy.Target, h state.Health, err error, now time.Time, threshold int) (state.Health, *event.Event) {
	if threshold < 1 {
		threshold = 1
	}
	f, immediate := classify(err)
	h.LastAttempt = now
	h.ConsecutiveFailures++
	if h.ConsecutiveFailures == 1 || h.FailingSince.IsZero() {
		h.FailingSince = now
	}
	h.LastError = f.message
	if h.Failing || (!immediate && h.ConsecutiveFailures < threshold) {
		return h, nil
	}
	h.Failing = true
	h.Outage++
	return h, &event.Event{
		ID:     event.TargetID(t, event.TargetError, h.Outage),
		Kind:   event.TargetError,
		Target: t,
		Time:   now,
		Error: &event.TargetErrorInfo{
			Class:      f.class,
			HTTPStatus: f.httpStatus,
			Code:       f.code,
			Message:    f.message,
			Since:      h.FailingSince,
			Failures:   h.ConsecutiveFailures,
			Outage:     h.Outage,
		},
	}
}

// succeeded is the health transition of a complete listing: a target that
// was failing produces target_recovered for the same outage number.
func succeeded(t proxy.Target, h state.Health, now time.Time) (state.Health, *event.Event) {
	var ev *event.Event
	if h.Failing {
		ev = &event.Event{
			ID:     event.TargetID(t, event.TargetRecovered, h.Outage),
			Kind:   event.TargetRecovered,
			Target: t,
			Time:   now,
			Error: &event.TargetErrorInfo{
				Message:  h.LastError,
				Since:    h.FailingSince,
				Failures: h.ConsecutiveFailures,
				Outage:   h.Outage,
			},
		}
	}
	h.Failing = false
	h.ConsecutiveFailures = 0
	h.FailingSince = time.Time{}
	h.LastError = ""
	h.LastAttempt = now
	h.LastSuccess = now
	return h, ev
}
