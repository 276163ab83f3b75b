package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoaldb/shoal/node"
)

func TestHTTPBackup(t *testing.T) {
	n := newHTTPTestNode(t, nil)
	for _, k := range []string{"a", "b", "c"} {
		if err := n.Put(k, k); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	h := NewHandler(n, &Options{Token: "s3cret", Registerer: reg})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/backup", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("backup without the token: %d", rec.Code)
	}
	req := httptest.NewRequest("GET", "/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/octet-stream" ||
		!strings.Contains(rec.Header().Get("Content-Disposition"), n.ReplicaID()) {
		t.Fatalf("backup: %d %v", rec.Code, rec.Header())
	}
	info, err := node.CheckBackup(bytes.NewReader(rec.Body.Bytes()))
	if err != nil || info.Keys != 3 || info.Replica != n.ReplicaID() {
		t.Fatalf("CheckBackup: %+v %v", info, err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/backup", nil))
	// The request metrics count by route and code, never by key.
	if got := testutil.CollectAndCount(reg, "shoal_http_request_duration_seconds"); got < len(routes) {
		t.Fatalf("%d duration series, want every route from the start", got)
	}
	for _, c := range []struct{ route, code string }{{"backup", "401"}, {"backup", "200"}} {
		if n := durationCount(t, reg, c.route, c.code); n == 0 {
			t.Fatalf("no observation for route %s code %s", c.route, c.code)
		}
	}
}

// durationCount returns the observations of the duration histogram for a
// route and code.
func durationCount(t *testing.T, reg *prometheus.Registry, route, code string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "shoal_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var r, c string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					r = l.GetValue()
				case "code":
					c = l.GetValue()
				}
			}
			if r == route && c == code {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}
