package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// minItemBytes is about the smallest JSON an item takes with every key
// present (the key names alone are over 300 bytes for an interaction).
const minItemBytes = 256

// list fetches every page of a listing, following meta.next_page_url until
// it is null. It returns all items or an error, never part of a listing:
// monitord diffs complete sets of SIDs, and a half listing would look like
// deleted interactions.
func list[T any](ctx context.Context, c *Client, serviceSID, listURL, key string, item func(*scanner, *T) error) ([]T, error) {
	u := c.firstPage(listURL)
	seen := make(map[string]struct{}, 1)
	var out []T
	for pages := 0; ; {
		if pages >= c.cfg.MaxPages {
			return nil, fmt.Errorf("%w: more than %d", ErrTooManyPages, c.cfg.MaxPages)
		}
		if _, dup := seen[u]; dup {
			return nil, fmt.Errorf("%w: %s", ErrPageLoop, redactURL(u))
		}
		seen[u] = struct{}{}
		body, err := c.get(ctx, serviceSID, u)
		if err != nil {
			return nil, err
		}
		pages++
		// Room for the items the page can hold: no regrowth while decoding,
		// yet a target with three interactions does not get a slice for a
		// thousand on every poll.
		out = slices.Grow(out, min(c.cfg.PageSize, len(body)/minItemBytes+1))
		var next string
		next, out, err = decodePage(body, key, out, item)
		if err != nil {
			setDecodeURL(err, u)
			return nil, err
		}
		if next == "" {
			c.obs.Listing(pages)
			return out, nil
		}
		if u, err = c.nextPage(u, next); err != nil {
			return nil, err
		}
	}
}

// nextPage resolves and checks a next_page_url. It must stay on the base
// URL's scheme and host (the request carries credentials) and carry no
// userinfo of its own.
func (c *Client) nextPage(current, next string) (string, error) {
	cur, err := url.Parse(current)
	if err != nil {
		return "", fmt.Errorf("next page url: %w", err)
	}
	ref, err := url.Parse(next)
	if err != nil {
		return "", &DecodeError{URL: redactURL(current), Path: "meta.next_page_url", Offset: -1,
			Reason: "not a URL"}
	}
	n := cur.ResolveReference(ref)
	if !strings.EqualFold(n.Scheme, c.base.Scheme) || !strings.EqualFold(n.Host, c.base.Host) || n.User != nil {
		return "", fmt.Errorf("%w: %s://%s is not %s://%s", ErrForeignHost,
			n.Scheme, n.Host, c.base.Scheme, c.base.Host)
	}
	n.Fragment = ""
	return n.String(), nil
}

// setDecodeURL fills in the URL of a *DecodeError raised by the decoder.
func setDecodeURL(err error, u string) {
	var de *DecodeError
	if errors.As(err, &de) && de.URL == "" {
		de.URL = redactURL(u)
	}
}
