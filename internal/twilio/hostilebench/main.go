// Command hostilebench measures the peak memory of `monitord once --dry-run`
// against an API that sends many maximum-size pages (issue 15, item 2): each
// page holds one interaction and megabytes of an unknown key, which the
// client must skip without keeping. It serves such pages on loopback, writes
// a config for them, runs the given monitord binary once per page count and
// prints the child's peak RSS (getrusage's ru_maxrss).
//
//	go build -o monitord ./cmd/monitord
//	go run ./internal/twilio/hostilebench -monitord ./monitord -pages 40,150 -page-mib 15
//
// The figures are in docs/reliability.md, "Hostile API". It is a harness,
// not a test: RSS depends on the machine and is only compared side by side.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const (
	account = "AC0123456789abcdef0123456789abcdef"
	token   = "hostile-bench-token-0123456789ab"
	service = "KS0123456789abcdef0123456789abcdef"
	session = "KC0123456789abcdef0123456789abcdef"
	part    = "KP0123456789abcdef0123456789abcdef"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hostilebench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("hostilebench", flag.ContinueOnError)
	bin := fs.String("monitord", "", "monitord binary to measure (required)")
	pagesFlag := fs.String("pages", "40,150", "comma-separated page counts, one run each")
	mib := fs.Int("page-mib", 15, "size of each page in MiB (max_response_bytes is raised to fit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return errors.New("-monitord: required")
	}
	// The child runs in a temp directory: a relative path must not move.
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return fmt.Errorf("-monitord: %w", err)
	}
	*bin = abs
	var counts []int
	for _, s := range strings.Split(*pagesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-pages: %q is not a positive count", s)
		}
		counts = append(counts, n)
	}
	if *mib < 1 {
		return fmt.Errorf("-page-mib: %d is not positive", *mib)
	}
	pad := strings.Repeat("x", *mib<<20)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	var pages int // set before each run; the server is idle between runs
	list := base + "/v1/Services/" + service + "/Sessions/" + session + "/Participants/" + part + "/MessageInteractions"
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Query().Get("PageToken"), "PT"))
		next := "null"
		if n+1 < pages {
			next = strconv.Quote(list + "?PageSize=1000&PageToken=PT" + strconv.Itoa(n+1))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"padding":"%s","interactions":[{"sid":"KI%032x","account_sid":%q,"service_sid":%q,`+
			`"session_sid":%q,"participant_sid":%q,"outbound_resource_status":"delivered",`+
			`"date_created":"2026-11-26T20:00:00Z","date_updated":"2026-11-26T20:00:00Z"}],"meta":{"next_page_url":%s}}`,
			pad, n, account, service, session, part, next)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	dir, err := os.MkdirTemp("", "hostilebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "config.yaml")
	conf := fmt.Sprintf("twilio:\n  base_url: %q\n  account_sid: %q\n  auth_token: %q\n"+
		"  limits:\n    max_pages: 1000\n    max_response_bytes: %d\n"+
		"targets:\n  - {source: participant, service_sid: %q, session_sid: %q, participant_sid: %q}\n",
		base, account, token, (*mib+1)<<20, service, session, part)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return err
	}

	fmt.Printf("%-6s %-9s %s\n", "pages", "page", "peak RSS")
	for _, n := range counts {
		pages = n
		cmd := exec.Command(*bin, "once", "-c", cfg, "--dry-run")
		cmd.Dir = dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%d pages: %w\n%s", n, err, stderr.String())
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			return errors.New("no rusage on this platform")
		}
		// once's last log line summarises the results: show it, so a
		// listing that failed is not taken for a cheap one.
		last := strings.TrimSpace(stderr.String())
		last = last[strings.LastIndexByte(last, '\n')+1:]
		fmt.Printf("%-6d %-9s %4d MB   %s\n", n, strconv.Itoa(*mib)+" MiB", ru.Maxrss*1024/1e6, last)
	}
	return nil
}
