// Package tools holds the msgbus command-line tools, each a small main over
// the client package: msgsend publishes, msgdump prints what arrives, and
// test-pub with test-sub are the load benchmark. This package itself holds
// only their end-to-end tests, which build the binaries and run them
// against a real server.
package tools
