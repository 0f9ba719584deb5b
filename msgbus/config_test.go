package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// get fetches url with an optional Origin and returns status and body.
func get(t *testing.T, method, url, origin, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestExampleAppOnlyInDevelopmentMode(t *testing.T) {
	webRoot := t.TempDir()
	if err := os.WriteFile(filepath.Join(webRoot, "index.html"), []byte("my own site"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		env    string
		status int
		body   string // a substring of /
	}{
		{"default is development", nil, "", 200, "Push/Pull"},
		{"-m development", []string{"-m", "development"}, "", 200, "Push/Pull"},
		{"-m production", []string{"-m", "production"}, "", 404, "not found"},
		{"MSGBUS_MODE=production", nil, "MSGBUS_MODE=production", 404, "not found"},
		{"production with -d", []string{"-m", "production", "-d", webRoot}, "", 200, "my own site"},
		{"development with -d: the web root wins", []string{"-d", webRoot}, "", 200, "my own site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
			cmd := exec.Command(binary, append([]string{"-l", addr}, tc.args...)...)
			cmd.Env = append(os.Environ(), tc.env)
			p := startCmd(t, addr, cmd)
			status, body := get(t, "GET", "http://"+addr+"/", "", "")
			if status != tc.status || !strings.Contains(body, tc.body) {
				t.Fatalf("GET / = %d %.80q, want %d with %q\n%s", status, body, tc.status, tc.body, p.stderr)
			}
			if tc.body == "Push/Pull" {
				if status, _ := get(t, "GET", "http://"+addr+"/app.js", "", ""); status != 200 {
					t.Fatalf("GET /app.js = %d, want 200: the app's script is embedded too", status)
				}
			}
		})
	}
}

func TestConfigFileInEveryFormatAndFlagsWinOverIt(t *testing.T) {
	formats := map[string]string{
		"msgbus.toml": "listen = \"127.0.0.1:%d\"\nmax_message_bytes = 1000\nallow_origin = [\"example.com\"]\nmode = \"production\"\n",
		"msgbus.yaml": "listen: 127.0.0.1:%d\nmax-message-bytes: 1000\nallow_origin:\n  - example.com\nmode: production\n",
		"msgbus.json": "{\"listen\": \"127.0.0.1:%d\", \"max_message_bytes\": 1000, \"allow_origin\": \"example.com\", \"mode\": \"production\"}",
	}
	for name, content := range formats {
		t.Run(name, func(t *testing.T) {
			port := freePort(t)
			file := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(file, []byte(strings.Replace(content, "%d", strconv.Itoa(port), 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			addr := "127.0.0.1:" + strconv.Itoa(port)
			p := startMsgbus(t, addr, binary, "-c", file)
			url := "http://" + addr
			if status, _ := get(t, "GET", url+"/", "", ""); status != 404 {
				t.Errorf("mode from the file: GET / = %d, want 404 (production)", status)
			}
			if status, _ := get(t, "POST", url+"/msgbus/x", "", strings.Repeat("x", 1001)); status != 413 {
				t.Errorf("max_message_bytes from the file: a 1001-byte publish = %d, want 413", status)
			}
			if status, body := get(t, "POST", url+"/msgbus/x", "http://evil.net", "hi"); status != 401 || !strings.Contains(body, "Origin check failed") {
				t.Errorf("allow_origin from the file: a foreign Origin = %d %q, want 401", status, body)
			}
			if status, _ := get(t, "POST", url+"/msgbus/x", "http://www.example.com", "hi"); status != 204 {
				t.Errorf("allow_origin from the file: a matching Origin = %d, want 204\n%s", status, p.stderr)
			}
		})
	}
	t.Run("flags and environment win", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "msgbus.toml")
		if err := os.WriteFile(file, []byte("port = 1\nlisten = \"127.0.0.1\"\nmax_message_bytes = 1000\nmode = \"production\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		port := freePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(binary, "-c", file, "-p", strconv.Itoa(port))
		cmd.Env = append(os.Environ(), "MSGBUS_MAX_MESSAGE_BYTES=5000")
		startCmd(t, addr, cmd) // listening on -p, not the file's port 1
		if status, _ := get(t, "POST", "http://"+addr+"/msgbus/x", "", strings.Repeat("x", 2000)); status != 204 {
			t.Errorf("MSGBUS_MAX_MESSAGE_BYTES over the file: a 2000-byte publish = %d, want 204", status)
		}
	})
	t.Run("msgbus.toml in the working directory", func(t *testing.T) {
		dir := t.TempDir()
		port := freePort(t)
		if err := os.WriteFile(filepath.Join(dir, "msgbus.toml"), []byte("listen = \"127.0.0.1:"+strconv.Itoa(port)+"\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary)
		cmd.Dir = dir
		startCmd(t, "127.0.0.1:"+strconv.Itoa(port), cmd)
	})
}

func TestBadConfigFileStopsTheServerNamingTheKey(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"bad.toml", "prot = 8080\n", `unknown key "prot"`},
		{"bad.toml", "port = \"eighty\"\n", `key "port": want a whole number`}, // even though -p overrides it
		{"bad.yaml", "max_subscribers: lots\n", `key "max_subscribers"`},
		{"bad.json", "{\"allow_origin\": [1, 2]}", `key "allow_origin": want a list of strings`},
		{"bad.json", "{\"port\": 80.5}", `key "port"`},
		{"bad.toml", "shutdown_timeout = \"soon\"\n", `key "shutdown_timeout": want a duration`},
		{"bad.ini", "port=1\n", "use .toml, .yaml, .yml or .json"},
		{"bad.toml", "port = \n", "bad.toml"},
	} {
		t.Run(tc.name+" "+tc.want, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), tc.name)
			if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, binary, "-c", file, "-l", "127.0.0.1", "-p", "0").CombinedOutput()
			if err == nil {
				t.Fatalf("msgbus started with %q; want it to refuse", tc.content)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("msgbus said %q, want it to name %q", out, tc.want)
			}
		})
	}
}
