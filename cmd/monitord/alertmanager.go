package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/alertmgr"
	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/notify"
)

// cmdAlertmanager is the bridge from the events stream to Prometheus
// Alertmanager (docs/alerts.md). It reads the daemon's config file but only
// its instance, nats, log and alertmanager sections, so it needs no Twilio
// credential. SIGTERM stops it cleanly: a batch not yet accepted stays
// unacknowledged and is posted by the next run.
func cmdAlertmanager(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newConfigFlags("alertmanager", "alertmanager -c FILE [overrides]", stderr)
	if err := f.parse(args); err != nil {
		return helpOK(err)
	}
	cfg, err := config.LoadPart(*f.path, os.Environ(), f.fs, config.PartAlertmanager)
	if err != nil {
		return usageError{fmt.Errorf("invalid config %s:\n%w", *f.path, err)}
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr may not sync; nothing to do about it
	b, err := startAlertmanager(cfg, log.Named("alertmanager"))
	if err != nil {
		return err
	}
	return b.run(ctx)
}

// alertBridge is the running bridge with what it owns: the NATS connection
// and the optional metrics listener.
type alertBridge struct {
	nc      *nats.Conn
	bridge  *alertmgr.Bridge
	metrics *alertmgr.Metrics
	ln      net.Listener // nil when alertmanager.listen is ""
	log     *zap.Logger
}

// startAlertmanager connects to NATS (retrying in the background when the
// server is not up yet) and binds the metrics listener, so that a bad
// address fails at start.
func startAlertmanager(cfg *config.Config, log *zap.Logger) (_ *alertBridge, err error) {
	a := &alertBridge{metrics: alertmgr.NewMetrics(), log: log}
	ncfg := notifyConfig(cfg)
	auth, err := notify.AuthOptions(ncfg)
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{
		nats.Name(cfg.NATS.Name + "/alertmanager"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }),
	}, auth...)
	if a.nc, err = nats.Connect(strings.Join(cfg.NATS.URLs, ","), opts...); err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	defer func() {
		if err != nil {
			a.nc.Close()
		}
	}()
	js, err := jetstream.New(a.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	am := cfg.Alertmanager
	a.bridge, err = alertmgr.New(alertmgr.Config{
		URLs: am.URLs, Timeout: am.Timeout,
		User: am.User, Password: am.Password.Reveal(), BearerToken: am.BearerToken.Reveal(),
		TLS:    alertmgr.TLS{CAFile: am.TLS.CAFile, CertFile: am.TLS.CertFile, KeyFile: am.TLS.KeyFile},
		Stream: cfg.NATS.Stream.Name, Prefix: cfg.NATS.SubjectPrefix, Consumer: am.Consumer, Kinds: am.Kinds,
		ResolveAfter: am.ResolveAfter, ResendInterval: am.ResendInterval, BatchSize: am.BatchSize,
		MinBackoff: am.MinBackoff, MaxBackoff: am.MaxBackoff, AckWait: am.AckWait,
		Metrics: a.metrics,
	}, js, log)
	if err != nil {
		return nil, err
	}
	if am.Listen != "" {
		if a.ln, err = net.Listen("tcp", am.Listen); err != nil {
			return nil, fmt.Errorf("alertmanager.listen: %w", err)
		}
	}
	return a, nil
}

// run runs the bridge and the metrics server until ctx is done.
func (a *alertBridge) run(ctx context.Context) error {
	defer a.nc.Close()
	var srv *http.Server
	serveErr := make(chan error, 1)
	if a.ln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.Registry(), promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			if !a.nc.IsConnected() {
				http.Error(w, "nats: not connected", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
		go func() { serveErr <- srv.Serve(a.ln) }()
		a.log.Info("serving metrics", zap.Stringer("addr", a.ln.Addr()))
	}
	err := a.bridge.Run(ctx)
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := srv.Shutdown(sctx); serr != nil && err == nil {
			err = fmt.Errorf("metrics shutdown: %w", serr)
		}
		if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = fmt.Errorf("metrics serve: %w", serr)
		}
	}
	a.log.Info("stopped")
	return err
}
