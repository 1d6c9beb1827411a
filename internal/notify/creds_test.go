package notify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// operatorSetup is a decentralised-auth server setup, as NGS or a
// self-hosted operator gives: an operator, an account with JetStream
// limits, a memory resolver holding the account.
type operatorSetup struct {
	operator   *jwt.OperatorClaims
	resolver   *server.MemAccResolver
	accountKey nkeys.KeyPair
	systemAcct string
}

func newOperatorSetup(t *testing.T) operatorSetup {
	t.Helper()
	okp, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "test-operator"

	sysKey, _ := nkeys.CreateAccount()
	sysPub, _ := sysKey.PublicKey()
	oc.SystemAccount = sysPub
	if _, err := oc.Encode(okp); err != nil {
		t.Fatal(err)
	}

	res := &server.MemAccResolver{}
	addAccount := func(kp nkeys.KeyPair, js bool) {
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		enc, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Store(pub, enc); err != nil {
			t.Fatal(err)
		}
	}
	akp, _ := nkeys.CreateAccount()
	addAccount(sysKey, false)
	addAccount(akp, true)
	return operatorSetup{operator: oc, resolver: res, accountKey: akp, systemAcct: sysPub}
}

// credsFile issues a user signed by accountKey and writes its .creds file.
func credsFile(t *testing.T, accountKey nkeys.KeyPair) (path string, seed []byte) {
	t.Helper()
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	ujwt, err := uc.Encode(accountKey)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ = ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "user.creds", creds), seed
}

// TestCredsFile: a server in operator mode accepts a .creds file of a user
// of a known account, and refuses one signed by an unknown account.
func TestCredsFile(t *testing.T) {
	op := newOperatorSetup(t)
	s := startServer(t, &server.Options{
		TrustedOperators: []*jwt.OperatorClaims{op.operator},
		AccountResolver:  op.resolver,
		SystemAccount:    op.systemAcct,
	})

	good, _ := credsFile(t, op.accountKey)
	cfg := testConfig(s)
	cfg.CredsFile = good
	ob := &memOutbox{}
	ob.Add(makeMsgs(t, 0, 30)...)
	stop := runPublisher(t, newPublisher(t, cfg, ob))
	waitFor(t, "delivered with a .creds file", 20*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	stranger, _ := nkeys.CreateAccount()
	bad, seed := credsFile(t, stranger)
	cfg.CredsFile = bad
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := newPublisher(t, cfg, &memOutbox{}).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "refused the credentials in "+bad) {
		t.Fatalf("Run with an unknown account's creds: %v", err)
	}
	if strings.Contains(err.Error(), string(seed)) {
		t.Errorf("error %q holds the seed", err)
	}
}
