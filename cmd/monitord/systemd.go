package main

import (
	"os"
	"sync"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// systemd speaks the sd_notify protocol for Type=notify units: READY=1
// once started, STATUS= a one-line summary, WATCHDOG=1 from the scheduler's
// own tick (so a wedged scheduler stops feeding the watchdog and systemd
// restarts monitord), RELOADING=1 around a reload, STOPPING=1 at shutdown.
// Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
type systemd struct {
	enabled  bool
	log      *zap.Logger
	watchdog time.Duration // WatchdogSec; 0: no watchdog

	mu         sync.Mutex
	lastPing   time.Time
	lastStatus time.Time
	failed     bool // a notify error was logged
	building   bool // a STATUS= line is being built
}

// statusEvery is how often STATUS= is refreshed from the tick.
const statusEvery = 10 * time.Second

func newSystemd(enabled bool, log *zap.Logger) *systemd {
	// Without NOTIFY_SOCKET there is no one to tell: skip building the
	// STATUS= line every 10 s.
	enabled = enabled && os.Getenv("NOTIFY_SOCKET") != ""
	s := &systemd{enabled: enabled, log: log}
	if enabled {
		wd, err := sdnotify.SdWatchdogEnabled(false)
		if err != nil {
			log.Warn("systemd watchdog settings unreadable; not feeding it", zap.Error(err))
		}
		s.watchdog = wd
	}
	return s
}

func (s *systemd) send(state string) {
	if !s.enabled {
		return
	}
	if _, err := sdnotify.SdNotify(false, state); err != nil {
		s.mu.Lock()
		first := !s.failed
		s.failed = true
		s.mu.Unlock()
		if first {
			s.log.Warn("sd_notify failed", zap.Error(err))
		}
	}
}

func (s *systemd) ready(status string) {
	s.send(sdnotify.SdNotifyReady + "\nSTATUS=" + status)
}

func (s *systemd) reloading() {
	// MONOTONIC_USEC lets Type=notify-reload units match the reload; plain
	// Type=notify units ignore it.
	s.send(sdnotify.SdNotifyMonotonicUsec() + sdnotify.SdNotifyReloading)
}

func (s *systemd) stopping() { s.send(sdnotify.SdNotifyStopping) }

// tick is called from the scheduler's loop every second: it pings the
// watchdog at half its period and refreshes STATUS=.
func (s *systemd) tick(now time.Time, status func() string) {
	if !s.enabled {
		return
	}
	s.mu.Lock()
	ping := s.watchdog > 0 && now.Sub(s.lastPing) >= s.watchdog/2
	if ping {
		s.lastPing = now
	}
	st := now.Sub(s.lastStatus) >= statusEvery && !s.building
	if st {
		s.lastStatus, s.building = now, true
	}
	s.mu.Unlock()
	if ping {
		s.send(sdnotify.SdNotifyWatchdog)
	}
	if st {
		// Built apart from the scheduler's loop: with ha.enabled the line
		// reads the outbox and the bucket over NATS, which may take
		// seconds, and the loop must keep dispatching (and feeding the
		// watchdog) meanwhile. One build at a time.
		go func() {
			line := status()
			s.mu.Lock()
			s.building = false
			s.mu.Unlock()
			s.send("STATUS=" + line)
		}()
	}
}
