package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Backup streams a consistent backup of the server's node into w (GET
// /v1/backup; see node.Backup for the format) and returns the bytes
// written. It is bounded by ctx only, not Options.Timeout: a large state
// takes as long as it takes. What w received is a whole backup only when
// the error is nil, and even then check it (node.CheckBackup) before
// relying on it: an answer cut off by the server lacks the trailer that
// the check requires.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/backup", nil, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/octet-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return 0, readAPIError(resp)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("client: backup: %w", err)
	}
	return n, nil
}
