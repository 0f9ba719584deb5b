package server

// Tests of HTTPS (PROTOCOL.md §2) against a real server over loopback, with
// a self-signed certificate made by the test. Helpers here are prefixed
// "tls".

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server/bustest"
)

// tlsCert is a self-signed certificate for 127.0.0.1, as PEM files.
type tlsCert struct {
	certFile, keyFile string
	pool              *x509.CertPool
}

// tlsMakeCert writes a fresh self-signed certificate and key for 127.0.0.1
// to a temporary folder.
func tlsMakeCert(t *testing.T) tlsCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "msgbus test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := tlsCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	tlsWritePEM(t, c.certFile, "CERTIFICATE", der)
	tlsWritePEM(t, c.keyFile, "PRIVATE KEY", keyDER)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	c.pool.AddCert(cert)
	return c
}

func tlsWritePEM(t *testing.T, name, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsSubscribe opens a TLS connection, requests path over HTTP/1.1 and
// reads the multipart head.
func tlsSubscribe(t *testing.T, ts *testServer, cert tlsCert, path string) *rawConn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ts.Addr, &tls.Config{RootCAs: cert.pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{bustest.NewConn(t, c, c)}
	rc.expect(string(chunkedHead))
	rc.withoutIDs(true)
	return rc
}

func TestTLSStreamsPartsByteExact(t *testing.T) {
	cert := tlsMakeCert(t)
	ts := startServer(t, Config{TLSCertFile: cert.certFile, TLSKeyFile: cert.keyFile})
	sub := tlsSubscribe(t, ts, cert, "/msgbus/secure")
	root := tlsSubscribe(t, ts, cert, "/msgbus/")
	ts.waitSubscribers(t, 2)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	messages := []struct{ channel, typ, body string }{
		{"secure", "text/plain", "hello over TLS"},
		{"secure/child", "application/octet-stream", "\x00\x01\xff--00MsgBus00\r\n\r\nbinary"},
		{"secure", "text/plain", strings.Repeat("big ", 20000)}, // many TLS records
		{"secure", "text/plain", ""},
	}
	var subWant, rootWant strings.Builder
	for _, m := range messages {
		resp, err := client.Post("https://"+ts.Addr+"/msgbus/"+m.channel, m.typ, strings.NewReader(m.body))
		if err != nil {
			t.Fatalf("HTTPS publish: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("HTTPS publish: status %d, want 204", resp.StatusCode)
		}
		located := wirePart("Content-Location: /msgbus/"+m.channel+"\r\nContent-Type: "+m.typ+"\r\n", m.body)
		if m.channel == "secure" {
			subWant.WriteString(chunkOf(wirePart("Content-Type: "+m.typ+"\r\n", m.body)))
		} else {
			subWant.WriteString(chunkOf(located))
		}
		rootWant.WriteString(chunkOf(located))
	}
	sub.expect(subWant.String())
	root.expect(rootWant.String())

	// Plain HTTP on the TLS port is not served.
	plain := ts.dial(t, "GET /msgbus/secure HTTP/1.1\r\nHost: x\r\n\r\n")
	plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(plain.R); strings.Contains(string(b), "multipart") {
		t.Errorf("plain HTTP on the TLS port got a stream: %q", b)
	}
	plain.Close()

	tr.CloseIdleConnections()
	ts.stop(t)
	end := chunkOf("--00MsgBus00--\r\n") + "0\r\n\r\n"
	for name, c := range map[string]*rawConn{"channel": sub, "root": root} {
		if got := c.readAll(); got != end {
			t.Errorf("%s subscriber's end of stream %q, want %q", name, got, end)
		}
	}
}

func TestNewRefusesIncompleteOrBadTLSFiles(t *testing.T) {
	cert := tlsMakeCert(t)
	other := tlsMakeCert(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a PEM file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	cases := []struct {
		name      string
		cert, key string
		mention   string // the error must contain this
	}{
		{"certificate without key", cert.certFile, "", "--tls-key"},
		{"key without certificate", "", cert.keyFile, "--tls-cert"},
		{"missing certificate file", missing, cert.keyFile, "--tls-cert"},
		{"missing key file", cert.certFile, missing, "--tls-key"},
		{"certificate file is not PEM", garbage, cert.keyFile, "--tls-cert"},
		{"key file is not PEM", cert.certFile, garbage, "--tls-key"},
		{"key of another certificate", cert.certFile, other.keyFile, "--tls-key"},
		{"certificate and key swapped", cert.keyFile, cert.certFile, "--tls-cert"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(Config{TLSCertFile: tc.cert, TLSKeyFile: tc.key})
			if err == nil {
				t.Fatalf("New succeeded (%v), want an error", srv != nil)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.mention) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line naming %s", msg, tc.mention)
			}
		})
	}
}
