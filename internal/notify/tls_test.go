package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// testPKI writes a CA and a certificate it signed for each of server and
// client, as PEM files, and returns their paths.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "monitord test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			writeFile(t, name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	}
	p := testPKI{ca: writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))}
	p.serverCert, p.serverKey = issue(2, "nats.test", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue(3, "monitord", x509.ExtKeyUsageClientAuth)
	return p
}

// TestTLS: a server that requires TLS and a client certificate signed by
// its CA. With CA, cert and key (and the server name the certificate
// carries) monitord delivers; without the client certificate the
// connection is refused.
func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, &server.Options{TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 5})

	cfg := testConfig(s)
	cfg.URLs = []string{strings.Replace(s.ClientURL(), "nats://", "tls://", 1)}
	cfg.TLS = TLSConfig{CAFile: pki.ca, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "nats.test"}
	ob := &memOutbox{}
	msgs := makeMsgs(t, 0, 20)
	ob.Add(msgs...)
	p := newPublisher(t, cfg, ob)
	stop := runPublisher(t, p)
	waitFor(t, "delivered over TLS", 10*time.Second, func() bool { return ob.Len() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Without a client certificate the handshake fails: one attempt with
	// the options Run uses, no retry.
	cfg.TLS.CertFile, cfg.TLS.KeyFile = "", ""
	p = newPublisher(t, cfg, &memOutbox{})
	nc, err := nats.Connect(cfg.URLs[0], p.opts...)
	if err == nil {
		nc.Close()
		t.Fatal("connected without the client certificate the server requires")
	}
	t.Logf("without client certificate: %v", err)

	// A CA that did not sign the server's certificate is refused too.
	other := newTestPKI(t)
	cfg.TLS = TLSConfig{CAFile: other.ca, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "nats.test"}
	p = newPublisher(t, cfg, &memOutbox{})
	nc, err = nats.Connect(cfg.URLs[0], p.opts...)
	if err == nil {
		nc.Close()
		t.Fatal("connected to a server whose certificate the configured CA did not sign")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %q does not mention the certificate", err)
	}
}
