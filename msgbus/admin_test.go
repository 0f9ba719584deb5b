package main

import (
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAdminFlagsServeHealthAndMetricsWithTheToken(t *testing.T) {
	port, aport := freePort(t), freePort(t)
	addr, admin := "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(aport)
	cmd := exec.Command(binary, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "--admin-listen", admin)
	cmd.Env = append(cmd.Environ(), "MSGBUS_ADMIN_TOKEN=t0ken", "MSGBUS_ADMIN_ALLOW=10.0.0.0/8,127.0.0.1/32")
	p := startCmd(t, addr, cmd)
	tr := &http.Transport{DisableKeepAlives: true}
	get := func(path, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+admin+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, p.stderr)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/livez", ""); code != 401 {
		t.Errorf("GET /livez without the token = %d, want 401", code)
	}
	if code, body := get("/readyz", "Bearer t0ken"); code != 200 {
		t.Errorf("GET /readyz = %d %q, want 200", code, body)
	}
	if code, body := get("/metrics", "Bearer t0ken"); code != 200 || !strings.Contains(body, "\nmsgbus_messages_published_total 0\n") {
		t.Errorf("GET /metrics = %d, want 200 with msgbus_messages_published_total 0:\n%s", code, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, p.stderr)
	}
}

func TestHelpMentionsTheAdminFlags(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("msgbus --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"--admin-listen ADDR", "--admin-allow CIDRS", "--admin-token TOKEN",
		"--token-secret SECRET", "--token-key FILE", "--anonymous-publish PATTERNS", "--anonymous-subscribe PATTERNS"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("--help does not mention %s:\n%s", flag, out)
		}
	}
}

func TestBadAdminFlagsExitNonZeroNamingTheFlag(t *testing.T) {
	for _, args := range [][]string{
		{"--admin-allow", "10.0.0.0/40"},
		{"--admin-listen", "nowhere"},
		{"--token-key", "/nonexistent.pem"},
		{"--token-key", "/etc/hostname"},
		{"--anonymous-subscribe", "*"}, // without tokens
		{"--anonymous-publish", "a,!", "--token-secret", "s"},
	} {
		out, err := exec.Command(binary, append([]string{"-p", "0"}, args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), args[0]) {
			t.Errorf("msgbus %v: %v\n%s; want a failure naming %s", args, err, out, args[0])
		}
	}
}
