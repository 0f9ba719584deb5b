package server

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ListenAddress turns the -l and -p flags into a host:port to listen on.
// spec may be empty (every interface), a host ("127.0.0.1", "::1", "*"), a
// host:port, or a URL such as "http://*:4000" as the original msgbus took;
// "*" means every interface. A port in spec wins over port.
func ListenAddress(spec string, port int) (string, error) {
	if port < 0 || port > 65535 {
		return "", fmt.Errorf("port %d is out of range 0-65535 (-p)", port)
	}
	s := spec
	if i := strings.Index(s, "://"); i >= 0 {
		switch scheme := strings.ToLower(s[:i]); scheme {
		case "http", "https":
		default:
			return "", fmt.Errorf("listen address %q: scheme %q is not http or https (-l)", spec, scheme)
		}
		s = strings.TrimSuffix(s[i+3:], "/")
	}
	host, p := s, strconv.Itoa(port)
	if h, pp, err := net.SplitHostPort(s); err == nil {
		host, p = h, pp
		if n, err := strconv.Atoi(pp); err != nil || n < 0 || n > 65535 {
			return "", fmt.Errorf("listen address %q: bad port %q (-l)", spec, pp)
		}
	} else if strings.Count(s, ":") == 1 || strings.ContainsAny(s, "/[]") {
		return "", fmt.Errorf("listen address %q: want host, host:port or http://host:port (-l)", spec)
	}
	if host == "*" {
		host = ""
	}
	host = strings.Trim(host, "[]")
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", fmt.Errorf("listen address %q: %q is not an IPv6 address (-l)", spec, host)
	}
	return net.JoinHostPort(host, p), nil
}
