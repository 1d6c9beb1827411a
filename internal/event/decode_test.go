package event

import (
	"errors"
	"testing"
)

// TestDecodeReadsEveryRenderedKind: what Render writes, Decode reads back,
// for each kind docs/events.md shows: the one decoder and the one encoder
// agree on every field they share.
func TestDecodeReadsEveryRenderedKind(t *testing.T) {
	for _, e := range examples() {
		e.ErrorCode, e.ErrorMessage = 30007, "Carrier violation"
		m, err := Render(e, RenderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(m.Data)
		if err != nil {
			t.Fatalf("%s: %v", e.Kind, err)
		}
		if k, ok := got.Kind(); !ok || k != e.Kind {
			t.Errorf("%s: Kind() = %q, %v", e.Kind, k, ok)
		}
		if got.ID != e.ID || !got.Time.Equal(e.Time) {
			t.Errorf("%s: id %q time %v, want %q %v", e.Kind, got.ID, got.Time, e.ID, e.Time)
		}
		d := got.Data
		switch e.Kind {
		case Heartbeat:
			if d.Instance != e.Beat.Instance || d.Instance == "" {
				t.Errorf("heartbeat instance %q", d.Instance)
			}
		case TargetError, TargetRecovered:
			if d.ServiceSID != e.Target.ServiceSID || d.Class == "" {
				t.Errorf("%s data %+v", e.Kind, d)
			}
		default:
			if d.ServiceSID != e.Target.ServiceSID || d.InteractionSID != e.InteractionSID || d.Status != e.Status {
				t.Errorf("%s data %+v", e.Kind, d)
			}
			if e.Kind == Failed && (d.ErrorCode != 30007 || d.ErrorMessage != "Carrier violation") {
				t.Errorf("failed: code %d message %q", d.ErrorCode, d.ErrorMessage)
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	if _, err := Decode([]byte("not json")); err == nil || errors.Is(err, ErrData) {
		t.Errorf("not JSON: %v, want an error that is not ErrData", err)
	}
	env, err := Decode([]byte(`{"id":"e1","type":"io.monitord.interaction.failed","data":{"error_code":"x"}}`))
	if !errors.Is(err, ErrData) || env.ID != "e1" {
		t.Errorf("bad data: %+v, %v; want the envelope and ErrData", env, err)
	}
	if k, ok := (Envelope{Type: "io.monitord.interaction.nope"}).Kind(); ok {
		t.Errorf("unknown kind read as %q", k)
	}
	if k, ok := (Envelope{Type: "com.example.failed"}).Kind(); ok {
		t.Errorf("foreign type read as %q", k)
	}
}
