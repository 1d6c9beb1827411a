package alertmgr

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"
)

// maxErrorBody bounds how much of an Alertmanager error response is read
// and quoted: enough for its one-line reason, never a large body.
const maxErrorBody = 4 << 10

// poster posts alerts to every configured Alertmanager.
type poster struct {
	urls   []string // .../api/v2/alerts
	client *http.Client
	auth   string // Authorization header value; a secret, never logged
	ua     string
}

func newPoster(c Config) (*poster, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.TLS.CAFile != "" || c.TLS.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLS.CAFile != "" {
			pem, err := os.ReadFile(c.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("alertmanager.tls.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("alertmanager.tls.ca_file: %s holds no PEM certificate", c.TLS.CAFile)
			}
		}
		if c.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
			if err != nil {
				// The error names the files' problem, never the key.
				return nil, fmt.Errorf("alertmanager.tls.cert_file: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	p := &poster{
		client: &http.Client{
			Transport: tr,
			Timeout:   c.Timeout,
			// A redirect could carry the Authorization header elsewhere;
			// Alertmanager's API never redirects a POST.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		ua: "monitord-alertmanager",
	}
	for _, u := range c.URLs {
		p.urls = append(p.urls, strings.TrimRight(u, "/")+"/api/v2/alerts")
	}
	switch {
	case c.User != "":
		req, _ := http.NewRequest(http.MethodPost, "http://x", nil)
		req.SetBasicAuth(c.User, c.Password)
		p.auth = req.Header.Get("Authorization")
	case c.BearerToken != "":
		p.auth = "Bearer " + c.BearerToken
	}
	return p, nil
}

// post sends alerts to every Alertmanager at once and returns nil when at
// least one accepted them (2xx): an Alertmanager cluster shares alerts by
// gossip, and Prometheus does the same. Otherwise the error names each
// URL's failure.
func (p *poster) post(ctx context.Context, alerts []Alert) error {
	body, err := json.Marshal(alerts)
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	errs := make([]error, len(p.urls))
	done := make(chan int, len(p.urls))
	for i, u := range p.urls {
		go func() {
			errs[i] = p.postOne(ctx, u, body)
			done <- i
		}()
	}
	ok := false
	for range p.urls {
		if errs[<-done] == nil {
			ok = true
		}
	}
	if ok {
		return nil
	}
	return errors.Join(errs...)
}

func (p *poster) postOne(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", p.ua)
	if p.auth != "" {
		req.Header.Set("Authorization", p.auth)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which holds no credentials (config
		// refuses them there).
		return fmt.Errorf("post alerts: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return fmt.Errorf("post %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
}

// backoff returns the delay before attempt n (1-based) of a batch:
// exponential from min, capped at max, the upper half jittered so that
// several bridges do not retry in step.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}
