package main

import (
	"reflect"

	"go.uber.org/zap"

	"github.com/monitord/monitord/internal/config"
)

// reloadFromSource reads the config again and applies it. An invalid
// config changes nothing: the daemon keeps running on the old one and the
// error is logged with every bad key.
func (d *daemon) reloadFromSource() {
	d.sd.reloading()
	defer func() { d.sd.ready(d.statusLine()) }()
	cfg, err := d.opts.LoadConfig()
	if err != nil {
		d.log.Error("reload: config invalid, keeping the running one", zap.Error(err))
		return
	}
	logWarnings(d.log, cfg)
	if err := d.Reload(cfg); err != nil {
		d.log.Error("reload: not applied, keeping the running config", zap.Error(err))
		return
	}
}

// Reload applies a loaded, validated config to the running daemon: Twilio
// clients whose account settings changed are rebuilt, the rules are
// replaced, and the targets are added, removed and rescheduled without a
// restart (state of kept targets is untouched; the target set forgets
// removed targets' state). Settings that only a restart can change are named in a
// warning. On error nothing is changed.
func (d *daemon) Reload(cfg *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.activity != nil {
		d.activity.configure(cfg) // before the targets: new Services' limits
	}
	old := d.accountClients()
	clients, err := buildClients(cfg, old, d.metrics, d.activity)
	if err != nil {
		d.restoreActivity()
		return err
	}
	if err := d.targets.configure(cfg, clients); err != nil { // merged with discovered targets
		for name, c := range clients {
			if old[name] != c {
				c.client.Close()
			}
		}
		d.restoreActivity()
		return err
	}
	d.poller.SetRules(diffRules(cfg), cfg.Rules.PublishKinds)
	d.metrics.SetErrorCodes(cfg.Reasons.MetricCodes)
	for name, c := range old {
		if clients[name] != c {
			// No target uses it any more: SetTargets swapped the listers
			// and waited out removed targets' polls. A kept target's poll
			// in flight may still hold it; Close only drops idle
			// connections, so that poll completes.
			c.client.Close()
		}
	}
	d.clients.Store(&clients)
	if changed := restartOnly(d.cfg, cfg); len(changed) > 0 {
		d.log.Warn("reload: these settings take effect only after a restart", zap.Strings("keys", changed))
	}
	d.cfg = cfg
	d.log.Info("reloaded", zap.Int("targets", len(targetSpecs(cfg, clients))))
	return nil
}

// restoreActivity puts the activity wiring's limits and budgets back as
// the running config has them, after a reload that failed past its
// configure: on error nothing is changed.
func (d *daemon) restoreActivity() {
	if d.activity != nil {
		d.activity.configure(d.cfg)
	}
}

// restartOnly names the sections that changed but that a reload does not
// apply: the state file, the NATS connection, the admin listener, logging,
// and scheduling settings the cron runner was built with. Targets, rules
// and Twilio accounts apply at once.
func restartOnly(old, cur *config.Config) []string {
	var out []string
	check := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, key)
		}
	}
	check("instance", old.Instance, cur.Instance)
	check("state", old.State, cur.State)
	check("ha", old.HA, cur.HA)
	check("nats", old.NATS, cur.NATS)
	check("admin", old.Admin, cur.Admin)
	check("log", old.Log, cur.Log)
	check("poll.timezone", old.Poll.Timezone, cur.Poll.Timezone)
	check("poll.spread", old.Poll.Spread, cur.Poll.Spread)
	check("poll.timeout", old.Poll.Timeout, cur.Poll.Timeout)
	check("poll.heartbeat_interval", old.Poll.HeartbeatInterval, cur.Poll.HeartbeatInterval)
	check("poll.shutdown_timeout", old.Poll.ShutdownTimeout, cur.Poll.ShutdownTimeout)
	check("poll.mode", old.Poll.Mode, cur.Poll.Mode)
	check("poll.activity", old.Poll.Activity, cur.Poll.Activity)
	check("rules.target_error_after", old.Rules.TargetErrorAfter, cur.Rules.TargetErrorAfter)
	check("reasons.timeout", old.Reasons.Timeout, cur.Reasons.Timeout)
	if old.NATS.SubjectPrefix != cur.NATS.SubjectPrefix || old.Rules.IncludeBody != cur.Rules.IncludeBody {
		out = append(out, "event rendering (nats.subject_prefix, rules.include_body)")
	}
	return out
}
