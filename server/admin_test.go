package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/msgbus/msgbus/server/bustest"
	"github.com/msgbus/msgbus/server/engine/redis/redistest"
)

// adminServer is a test server with its admin listener on another port.
type adminServer struct {
	*testServer
	adminAddr string
	client    *http.Client // its own: its idle connections end with the test
}

// startAdmin starts a Server with cfg, serving the bus and the admin
// endpoints on two loopback ports until the end of the test.
func startAdmin(t *testing.T, cfg Config) *adminServer {
	t.Helper()
	ts := startServer(t, cfg)
	ln := bustest.Listen(t, "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- ts.ServeAdmin(ln) }()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ts.stop(t) // stops the admin listener too
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeAdmin: %v", err)
			}
		case <-time.After(bustest.Timeout):
			t.Errorf("ServeAdmin did not return after Shutdown")
		}
	})
	return &adminServer{testServer: ts, adminAddr: ln.Addr().String(), client: &http.Client{Transport: tr}}
}

// get GETs path on the admin listener with the given Authorization header
// ("" for none) and returns the status and body.
func (as *adminServer) get(t *testing.T, path, auth string) (int, string) {
	t.Helper()
	code, body, err := as.tryGet(path, auth)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return code, body
}

func (as *adminServer) tryGet(path, auth string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+as.adminAddr+path, nil)
	if err != nil {
		return 0, "", err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := as.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestAdminLivezAndReadyzAnswerOK(t *testing.T) {
	as := startAdmin(t, Config{})
	for _, path := range []string{"/livez", "/readyz"} {
		if code, body := as.get(t, path, ""); code != 200 || body != "ok\n" {
			t.Errorf("GET %s = %d %q, want 200 \"ok\\n\"", path, code, body)
		}
	}
	if code, _ := as.get(t, "/nothing", ""); code != 404 {
		t.Errorf("GET /nothing = %d, want 404", code)
	}
}

func TestAdminReadyzIs503WhileShuttingDownThenTheListenerCloses(t *testing.T) {
	as := startAdmin(t, Config{})
	// A publisher halfway through its body keeps Shutdown waiting (up to
	// its deadline) for the request to finish: the server drains.
	c, err := net.Dial("tcp", as.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /msgbus/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf"); err != nil {
		t.Fatal(err)
	}
	if code, _ := as.get(t, "/readyz", ""); code != 200 {
		t.Fatalf("GET /readyz before shutdown = %d, want 200", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bustest.Timeout)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- as.Shutdown(ctx) }()
	var code int
	var body string
	bustest.Until(t, func() string { return fmt.Sprintf("GET /readyz = %d %q, want 503", code, body) },
		func() bool { code, body = as.get(t, "/readyz", ""); return code == 503 })
	if body != "not ready: shutting down\n" {
		t.Errorf("503 body = %q", body)
	}
	if code, _ := as.get(t, "/livez", ""); code != 200 {
		t.Errorf("GET /livez while draining = %d, want 200", code)
	}
	io.WriteString(c, "-the rest") // the publish completes; nothing holds Shutdown now
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, _, err := as.tryGet("/livez", ""); err == nil {
		t.Error("the admin listener still answers after Shutdown")
	}
}

func TestAdminRefusesAddressesOutsideAllowWith403(t *testing.T) {
	as := startAdmin(t, Config{AdminAllow: []string{"127.0.0.1/32"}})
	if code, _ := as.get(t, "/livez", ""); code != 200 {
		t.Fatalf("GET /livez from 127.0.0.1 = %d, want 200", code)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+as.adminAddr+"/metrics", nil)
	req.Header.Set("X-Forwarded-For", "127.0.0.1") // never believed
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Skip("this system cannot send from 127.0.0.2:", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.HasPrefix(string(b), "forbidden: 127.0.0.2:") || strings.Count(string(b), "\n") != 1 {
		t.Errorf("GET /metrics from 127.0.0.2 = %d %q, want 403 with a one-line reason", resp.StatusCode, b)
	}
}

func TestAdminTokenIsRequiredWhenSet(t *testing.T) {
	as := startAdmin(t, Config{AdminToken: "s3cret"})
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", 401},
		{"Bearer wrong", 401},
		{"Bearer s3cre", 401},
		{"Basic czNjcmV0", 401},
		{"Bearer s3cret", 200},
		{"bearer s3cret", 200},
	} {
		code, _ := as.get(t, "/readyz", tc.auth)
		if code != tc.want {
			t.Errorf("Authorization %q: %d, want %d", tc.auth, code, tc.want)
		}
	}
}

func TestNewRejectsBadAdminSettingsNamingTheFlag(t *testing.T) {
	for _, cfg := range []Config{
		{AdminAllow: []string{"10.0.0.0/33"}},
		{AdminAllow: []string{"127.0.0.1/32,nonsense"}},
		{AdminListen: "localhost"},
	} {
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), "--admin-") {
			t.Errorf("New(%+v) = %v, want an error naming the flag", cfg, err)
		}
	}
}

// scrape GETs /metrics and parses it with the Prometheus text parser.
func (as *adminServer) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := as.get(t, "/metrics", "")
	if code != 200 {
		t.Fatalf("GET /metrics = %d %q", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// value is the sum of a family's samples (0 when absent).
func value(fams map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	for _, m := range fams[name].GetMetric() {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		}
	}
	return v
}

func TestMetricsParseAndMoveAsMessagesFlow(t *testing.T) {
	as := startAdmin(t, Config{})
	before := as.scrape(t)
	for _, name := range []string{"msgbus_messages_published_total", "msgbus_deliveries_total",
		"msgbus_slow_disconnects_total", "msgbus_subscribers", "msgbus_history_messages",
		"msgbus_history_bytes", "msgbus_publish_duration_seconds", "msgbus_ready",
		"go_goroutines"} {
		if before[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	sub := as.subscribe(t, "/msgbus/news", true)
	bustest.Subscribers(t, func() int64 { return as.Stats().Subscribers }, 1)
	for range 3 {
		if resp := as.publish(t, "/msgbus/news/today", "text/plain", "hello"); resp.StatusCode != 204 {
			t.Fatalf("publish: %d", resp.StatusCode)
		}
	}
	sub.readN(1) // the stream is live
	after := as.scrape(t)
	for _, tc := range []struct {
		name string
		diff float64
	}{
		{"msgbus_messages_published_total", 3},
		{"msgbus_deliveries_total", 3},
		{"msgbus_publish_duration_seconds", 3},
		{"msgbus_subscribers", 1},
		{"msgbus_history_messages", 3},
		{"msgbus_slow_disconnects_total", 0},
	} {
		if got := value(after, tc.name) - value(before, tc.name); got != tc.diff {
			t.Errorf("%s moved by %v, want %v", tc.name, got, tc.diff)
		}
	}
	for _, m := range after["msgbus_subscribers"].GetMetric() {
		if l := m.GetLabel(); len(l) != 1 || l[0].GetName() != "kind" ||
			m.Gauge.GetValue() != map[string]float64{"multipart": 1}[l[0].GetValue()] {
			t.Errorf("msgbus_subscribers %v = %v, want kind=multipart 1, the other kinds 0", l, m.Gauge.GetValue())
		}
	}
	for name := range after {
		for _, m := range after[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "channel" {
					t.Errorf("%s has a per-channel label", name)
				}
			}
		}
	}
}

func TestMetricsCountResumes(t *testing.T) {
	as := startAdmin(t, Config{})
	as.publish(t, "/msgbus/a", "text/plain", "one")
	c := as.dial(t, "GET /msgbus/a?last=1 HTTP/1.1\r\nHost: x\r\n\r\n")
	c.readN(1)
	bustest.Subscribers(t, func() int64 { return as.Stats().Subscribers }, 1)
	fams := as.scrape(t)
	if got := value(fams, "msgbus_resumes_total"); got != 1 {
		t.Errorf("msgbus_resumes_total = %v, want 1", got)
	}
}

func TestReadyzIs503WhileRedisIsDown(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	as := startAdmin(t, Config{Redis: rs.URL()})
	if code, body := as.get(t, "/readyz", ""); code != 200 {
		t.Fatalf("GET /readyz with Redis up = %d %q, want 200", code, body)
	}
	rs.Stop()
	var code int
	var body string
	bustest.Until(t, func() string { return fmt.Sprintf("GET /readyz with Redis down = %d %q, want 503", code, body) },
		func() bool { code, body = as.get(t, "/readyz", ""); return code == 503 })
	if !strings.HasPrefix(body, "not ready: ") || strings.Count(body, "\n") != 1 {
		t.Errorf("503 body = %q, want a one-line reason", body)
	}
	if got := value(as.scrape(t), "msgbus_ready"); got != 0 {
		t.Errorf("msgbus_ready with Redis down = %v, want 0", got)
	}
	rs.Restart()
	bustest.Until(t, func() string { return fmt.Sprintf("GET /readyz with Redis back = %d %q, want 200", code, body) },
		func() bool { code, body = as.get(t, "/readyz", ""); return code == 200 })
}

// TestReadyzIs503WhenTheStoreIsUnusable removes the durable store's
// folder under the running server: the publish that needs a new segment
// fails with 503, and /readyz says not ready.
func TestReadyzIs503WhenTheStoreIsUnusable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	as := startAdmin(t, Config{Store: dir, HistoryMaxBytes: 4 << 20}) // 1 MiB segments
	if code, body := as.get(t, "/readyz", ""); code != 200 {
		t.Fatalf("GET /readyz = %d %q, want 200", code, body)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 600<<10)
	failed := false
	for range 4 { // the second or third fills the first segment
		if resp := as.publish(t, "/msgbus/a", "text/plain", big); resp.StatusCode == 503 {
			failed = true
			break
		}
	}
	if !failed {
		t.Fatal("publishing 2.4 MB into a removed store never answered 503")
	}
	if code, body := as.get(t, "/readyz", ""); code != 503 || !strings.HasPrefix(body, "not ready: ") {
		t.Fatalf("GET /readyz with the store gone = %d %q, want 503 and why", code, body)
	}
}
