package main

import (
	"fmt"
	"reflect"

	"github.com/monitord/monitord/internal/config"
	"github.com/monitord/monitord/internal/poller"
	"github.com/monitord/monitord/internal/twilio"
)

// accountClient is one account's client and the settings it was built
// from, so a reload rebuilds only the clients whose settings changed.
type accountClient struct {
	settings config.Twilio
	reasons  config.Reasons // the FetchMessage budget is the client's too
	client   *twilio.Client
}

// buildClients returns a client per account, reusing from old the clients
// whose settings did not change (their rate limiters keep their state).
// act, in poll.mode activity, supplies the Services' buckets (nil: none).
func buildClients(cfg *config.Config, old map[string]*accountClient, ob twilio.Observer, act *activityWiring) (map[string]*accountClient, error) {
	out := make(map[string]*accountClient)
	for _, a := range cfg.EffectiveAccounts() {
		if o, ok := old[a.Name]; ok && reflect.DeepEqual(o.settings, a.Twilio) &&
			o.reasons.Rate == cfg.Reasons.Rate && o.reasons.Concurrency == cfg.Reasons.Concurrency {
			out[a.Name] = o
			continue
		}
		tc := twilioConfig(a.Twilio, cfg.Reasons, ob)
		if act != nil {
			tc.Buckets = act.buckets(a.Twilio.Limits)
		}
		c, err := twilio.New(tc)
		if err != nil {
			for name, ac := range out {
				if old[name] != ac {
					ac.client.Close()
				}
			}
			return nil, fmt.Errorf("account %s: twilio client: %w", a.Name, err)
		}
		out[a.Name] = &accountClient{settings: a.Twilio, reasons: cfg.Reasons, client: c}
	}
	return out, nil
}

// messageFetcher is what fetches the reasons of an account's failed
// events: its client, or nil when reasons.enabled is off.
func messageFetcher(cfg *config.Config, ac *accountClient) poller.MessageFetcher {
	if !cfg.Reasons.Enabled {
		return nil
	}
	return ac.client
}
