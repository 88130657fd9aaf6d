package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
)

// walk is the one page walker of the API's lists: it fetches page n of path (with
// query, perPage set), decodes it, hands it to visit, and goes on with the page
// visit returns, until that is 0. A page that fails to come or to decode fails the
// walk, and what it read is not used: its callers decide nothing from a partial
// list. what names the list in errors ("" for a session's active list). A decode
// that returns errSame (the page is one its caller already has) ends the walk with
// it as it is, not as a failed page.
func walk[P any](ctx context.Context, c *Client, log *slog.Logger, endpoint, path string, query url.Values, prio priority, what string,
	n int, decode func([]byte) (P, error), visit func(n int, page P) (next int, err error)) error {
	q := url.Values{"perPage": {strconv.Itoa(c.cfg.PerPage)}}
	for k, v := range query {
		q[k] = v
	}
	for n > 0 {
		q.Set("page", strconv.Itoa(n))
		body, err := c.get(ctx, log, endpoint, path, q, prio)
		if err != nil {
			return err
		}
		page, err := decode(body)
		if errors.Is(err, errSame) {
			recycle(body)
			return err
		}
		if err != nil {
			return fmt.Errorf("%spage %d: %w; the body begins %q", what, n, err, snippet(body))
		}
		recycle(body) // the page holds copies of what it keeps
		if n, err = visit(n, page); err != nil {
			return fmt.Errorf("%spage %d: %w", what, n, err)
		}
	}
	return nil
}
