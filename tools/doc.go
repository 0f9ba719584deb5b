// Package tools holds the msgbus command-line tools, each a small main over
// the client package: msgsend publishes, msgdump prints what arrives, and
// test-pub with test-sub are the load benchmark. This package itself holds
// only their end-to-end tests, which build the binaries and run them
// against a real server.
//
// The tools share their flags (tools/internal/toolflags): -u URL
// ($MSGBUS_URL), -c CHANNEL, -t TYPE, -n COUNT, --json, and the
// credentials: --user NAME ($MSGBUS_USER) and -s SECRET ($MSGBUS_SECRET)
// for a server run with -s, or --token TOKEN ($MSGBUS_TOKEN), a JWT sent as
// Authorization: Bearer, for a server run with --token-secret or
// --token-key. A token excludes --user and -s. A refused token (401) or a
// token without the right (403) ends a tool with the server's reason; it
// is not retried.
package tools
