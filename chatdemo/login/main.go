// Command login is the chat demo's login backend: it serves the chat page
// in login mode and mints each person a token through the bus's admin
// listener, so the bus itself makes sure that everyone posts as themselves
// and reads only the rooms they joined. See package backend.
//
//	msgbus --token-secret "$SECRET" --admin-listen 127.0.0.1:9090 --allow-origin http://localhost:8080 &
//	go run ./chatdemo/login --bus http://localhost:8888 --admin http://127.0.0.1:9090
//
// then open http://localhost:8080/ in two browsers.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/msgbus/msgbus/chatdemo/login/backend"
)

func main() {
	listen := flag.String("listen", "localhost:8080", "serve the chat on `ADDR`")
	bus := flag.String("bus", "http://localhost:8888", "the bus's `URL` as browsers reach it")
	admin := flag.String("admin", "http://127.0.0.1:9090", "the `URL` of the bus's admin listener (its --admin-listen)")
	adminToken := flag.String("admin-token", os.Getenv("MSGBUS_ADMIN_TOKEN"), "the admin listener's `TOKEN` (its --admin-token); default $MSGBUS_ADMIN_TOKEN")
	rooms := flag.String("rooms", strings.Join(backend.DefaultRooms, ","), "the rooms people may join, comma-separated")
	ttl := flag.Duration("ttl", backend.DefaultTTL, "how long a token lasts; pages renew theirs before")
	dir := flag.String("dir", "chatdemo", "the chat page's folder (index.html, chat.js, chat.css)")
	flag.Parse()

	b, err := backend.New(backend.Config{Bus: *bus, Admin: *admin, AdminToken: *adminToken,
		Rooms: strings.Split(*rooms, ","), TTL: *ttl, Dir: *dir})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()
	if host, _, _ := net.SplitHostPort(*listen); host == "" || host == "localhost" {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		origin = "http://localhost:" + port
	}
	fmt.Printf("chat with login on %s/ (the bus needs --token-secret and --allow-origin %s)\n", origin, origin)
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}
