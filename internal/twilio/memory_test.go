package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// paddedPage is page n of a listing of pages holding one interaction each
// and pad bytes of an unknown key: what a hostile or broken API can send
// within max_response_bytes.
func paddedPage(a *api, n, pages, pad int) string {
	next := ""
	if n+1 < pages {
		next = a.pageURL(n + 1)
	}
	p := pageJSON(n, n+1, next)
	return `{"padding":"` + strings.Repeat("x", pad) + `",` + p[1:]
}

// Issue 15 item 2: decoded items pointed into their page bodies, so a
// listing held every page it read (max_pages × max_response_bytes). The
// heap after a GC, with the items alive, must not grow with the pages.
func TestListingDoesNotRetainPageBodies(t *testing.T) {
	const pages, pad = 24, 2 << 20
	var a *api
	a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		writeJSON(w, 200, paddedPage(a, page, pages, pad))
	})
	c := newClient(t, testConfig(a))

	heap := func() uint64 {
		// Two cycles: the first moves pooled buffers to the victim cache,
		// the second frees them.
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	items, err := c.ListInteractions(context.Background(), testTarget)
	if err != nil || len(items) != pages {
		t.Fatalf("%d items, %v; want %d", len(items), err, pages)
	}
	after := heap()
	// Each page was read into the buffer of the one before: a string
	// left pointing into it would now hold a later page's bytes.
	for i, it := range items {
		if want := fmt.Sprintf("KI%032x", i); it.SID != want || it.Data != fmt.Sprintf(`{"body":"message number %d"}`, i) ||
			it.AccountSID != testAccount || it.OutboundResourceStatus != "delivered" {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
	runtime.KeepAlive(items)
	// The bodies total 48 MiB; the items need a few KB. Two bodies of
	// slack cover the test server's own buffers.
	if after > before && after-before > 2*pad {
		t.Errorf("heap grew by %d bytes holding %d items: the page bodies (%d bytes each) are retained",
			after-before, len(items), pad)
	}
}

// Every string of a decoded item has memory of its own, so the body's
// buffer can be reused for the next page.
func TestDecodedStringsDoNotPointIntoTheBody(t *testing.T) {
	body := pageJSON(0, 50, "https://proxy.twilio.com/next")
	next, items, err := decodePage(body, "interactions", nil, decodeInteraction)
	if err != nil || len(items) != 50 {
		t.Fatal(len(items), err)
	}
	if within(body, next) {
		t.Error("next_page_url points into the body")
	}
	for i := range items {
		v := reflect.ValueOf(items[i])
		for f := 0; f < v.NumField(); f++ {
			if s, ok := v.Field(f).Interface().(string); ok && within(body, s) {
				t.Fatalf("interactions[%d].%s points into the body", i, v.Type().Field(f).Name)
			}
		}
	}
	// The values every item repeats are kept once per listing.
	if a, b := items[0].AccountSID, items[1].AccountSID; a != testAccount || !sameString(a, b) {
		t.Errorf("account_sid of two items not shared")
	}
	if !sameString(items[0].OutboundResourceStatus, items[1].OutboundResourceStatus) {
		t.Errorf("outbound_resource_status of two items not shared")
	}
}

func sameString(a, b string) bool { return len(a) == len(b) && within(a, b) }

// A listing that would keep more text than MaxListingBytes fails as a
// whole, however the text is spread over pages.
func TestListingOverBudgetFails(t *testing.T) {
	var a *api
	a = newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		next := ""
		if page < 9 {
			next = a.pageURL(page + 1)
		}
		p := pageJSON(page, page+1, next)
		// 100 KB of message data per page: kept, and counted.
		p = strings.Replace(p, `"data":"{\"body\":\"message number`, `"data":"{\"body\":\"`+strings.Repeat("y", 100<<10), 1)
		writeJSON(w, 200, p)
	})
	cfg := testConfig(a)
	cfg.MaxListingBytes = 512 << 10
	items, err := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
	var de *DecodeError
	if !errors.Is(err, ErrListingTooLarge) || !errors.As(err, &de) || items != nil {
		t.Fatalf("%d items, err %v; want ErrListingTooLarge", len(items), err)
	}
	if !strings.Contains(err.Error(), "listing keeps more than 524288 bytes of text") || strings.Contains(err.Error(), "yyyy") {
		t.Errorf("error %q", err)
	}
}

// A page holds at most the PageSize asked for: millions of tiny items in
// one body would cost memory out of proportion to its size.
func TestPageWithMoreItemsThanPageSizeFails(t *testing.T) {
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request, page int) {
		writeJSON(w, 200, pageJSON(0, 11, ""))
	})
	cfg := testConfig(a)
	cfg.PageSize = 10
	items, err := newClient(t, cfg).ListInteractions(context.Background(), testTarget)
	if err == nil || items != nil || !strings.Contains(err.Error(), "interactions: more than 10 items, the page size asked for") {
		t.Fatalf("%d items, err %v; want a page size error", len(items), err)
	}
}
