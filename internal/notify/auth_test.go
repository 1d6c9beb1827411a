package notify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/monitord/monitord/internal/natstest"
)

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newUserKey(t *testing.T) (seedFile, public string, seed []byte) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err = kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	public, err = kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "user.nk", seed), public, seed
}

// TestAuth connects with each credential type a server may require: the
// right credentials deliver, wrong ones make Run fail at once with an error
// that names the method and never holds the secret.
func TestAuth(t *testing.T) {
	goodSeedFile, goodPub, _ := newUserKey(t)
	badSeedFile, _, badSeed := newUserKey(t)

	for _, tc := range []struct {
		name   string
		server server.Options
		good   func(*Config)
		bad    func(*Config)
		secret string // must not appear in the error
		want   string // must appear in the error
	}{
		{
			name:   "user/password",
			server: server.Options{Users: []*server.User{{Username: "monitord", Password: "pw-correct-horse"}}},
			good:   func(c *Config) { c.User, c.Password = "monitord", "pw-correct-horse" },
			bad:    func(c *Config) { c.User, c.Password = "monitord", "pw-wrong-battery" },
			secret: "pw-wrong-battery",
			want:   `refused user "monitord" and its password`,
		},
		{
			name:   "token",
			server: server.Options{Authorization: "tok-s3cr3t-right"},
			good:   func(c *Config) { c.Token = "tok-s3cr3t-right" },
			bad:    func(c *Config) { c.Token = "tok-s3cr3t-wrong" },
			secret: "tok-s3cr3t-wrong",
			want:   "refused the token",
		},
		{
			name:   "nkey",
			server: server.Options{Nkeys: []*server.NkeyUser{{Nkey: goodPub}}},
			good:   func(c *Config) { c.NKeySeedFile = goodSeedFile },
			bad:    func(c *Config) { c.NKeySeedFile = badSeedFile },
			secret: string(badSeed),
			want:   "refused the nkey from " + badSeedFile,
		},
		{
			name:   "anonymous where auth is required",
			server: server.Options{Authorization: "tok-s3cr3t-right"},
			good:   func(c *Config) { c.Token = "tok-s3cr3t-right" },
			bad:    func(*Config) {},
			secret: "tok-s3cr3t-right",
			want:   "anonymous connection",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.server
			s := startServer(t, &opts)

			cfg := testConfig(s)
			tc.good(&cfg)
			ob := &memOutbox{}
			msgs := makeMsgs(t, 0, 50)
			ob.Add(msgs...)
			stop := runPublisher(t, newPublisher(t, cfg, ob))
			waitFor(t, "delivered with the right credentials", 10*time.Second, func() bool { return ob.Len() == 0 })
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}

			cfg = testConfig(s)
			tc.bad(&cfg)
			p := newPublisher(t, cfg, &memOutbox{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := p.Run(ctx)
			if err == nil {
				t.Fatal("Run with wrong credentials returned nil")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
				t.Errorf("error %q does not say %q and why", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

// TestAuthSecretInURL: credentials embedded in a URL stay out of errors.
func TestAuthSecretInURL(t *testing.T) {
	s := startServer(t, &server.Options{Users: []*server.User{{Username: "u", Password: "right"}}})
	cfg := testConfig(s)
	cfg.URLs = []string{strings.Replace(s.ClientURL(), "nats://", "nats://u:url-secret-pw@", 1)}
	p := newPublisher(t, cfg, &memOutbox{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Run(ctx)
	if err == nil || strings.Contains(err.Error(), "url-secret-pw") {
		t.Fatalf("Run: %v; want an auth error without the password", err)
	}
}

func TestConfigValidation(t *testing.T) {
	seedFile, _, _ := newUserKey(t)
	for name, tc := range map[string]struct {
		mutate func(*Config)
		want   []string
	}{
		"two auth methods": {func(c *Config) { c.Token = "t0k3n-xyz"; c.NKeySeedFile = seedFile }, []string{"set only one of"}},
		"password alone":   {func(c *Config) { c.Password = "pw-xyz" }, []string{"nats.user: required with a password"}},
		"missing seed":     {func(c *Config) { c.NKeySeedFile = "/nonexistent/user.nk" }, []string{"nats.nkey_seed_file:"}},
		"missing creds":    {func(c *Config) { c.CredsFile = "/nonexistent/user.creds" }, []string{"nats.creds_file:"}},
		"cert without key": {func(c *Config) { c.TLS.CertFile = seedFile }, []string{"cert_file and key_file go together"}},
		"bad mode":         {func(c *Config) { c.Mode = "carrier-pigeon" }, []string{`nats.mode: "carrier-pigeon"`}},
		"bad prefix":       {func(c *Config) { c.Prefix = "a.>" }, []string{"nats.subject_prefix"}},
		"bad stream name":  {func(c *Config) { c.Stream.Name = "MY.STREAM" }, []string{"nats.stream.name"}},
		"bad storage":      {func(c *Config) { c.Stream.Storage = "tape" }, []string{"nats.stream.storage"}},
		"bad url":          {func(c *Config) { c.URLs = []string{"nats://u:url-pw@"} }, []string{"nats.urls"}},
		"all at once": {func(c *Config) { c.Prefix = "a b"; c.Stream.Storage = "tape"; c.MaxPending = -1 },
			[]string{"nats.subject_prefix", "nats.stream.storage", "nats.max_pending"}},
	} {
		cfg := DefaultConfig()
		tc.mutate(&cfg)
		_, err := New(cfg, &memOutbox{}, nil)
		if err == nil {
			t.Errorf("%s: New accepted the config", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", name, err, w)
			}
		}
		for _, secret := range []string{"t0k3n-xyz", "pw-xyz", "url-pw"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error %q holds a secret", name, err)
			}
		}
	}
	if _, err := New(DefaultConfig(), nil, nil); err == nil {
		t.Error("New accepted a nil outbox")
	}
}

// TestCredentialsWithoutTLSStayOnConfiguredServers: a connection with
// credentials and no TLS (allowed to loopback, or with
// nats.allow_insecure_auth) never takes up the servers a cluster
// advertises, which may be on other hosts: it would log in there in
// clear text. One without credentials, or with TLS, keeps them for
// failover.
func TestCredentialsWithoutTLSStayOnConfiguredServers(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	url := c.Nodes[0].URL()

	plain, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(plain.DiscoveredServers()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("a plain connection discovered %v, want the 2 other nodes", plain.DiscoveredServers())
		}
		time.Sleep(20 * time.Millisecond)
	}

	for _, tc := range []struct {
		name string
		set  func(*Config)
	}{
		{"user/password", func(c *Config) { c.User, c.Password = "monitord", "pw-not-for-the-wire" }},
		{"token", func(c *Config) { c.Token = "tok-not-for-the-wire" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URLs: []string{url}}
			tc.set(&cfg)
			opts, err := AuthOptions(cfg)
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(url, opts...)
			if err != nil {
				t.Fatal(err) // the server has no auth: it takes any login
			}
			defer nc.Close()
			if got := nc.DiscoveredServers(); len(got) != 0 {
				t.Errorf("a connection with credentials and no TLS took up advertised servers %v", got)
			}
			if got := nc.Servers(); len(got) != 1 {
				t.Errorf("its server pool %v, want the configured server only", got)
			}
		})
	}
}
