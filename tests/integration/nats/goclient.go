// A nats.go (Debian's 1.22) client for test_nats_clients.py: each mode runs
// one scenario against the server at -url, checks what it received and
// prints "ok MODE" (exit 0) or the reason it failed (exit 1). Built at test
// time with GO111MODULE=off GOPATH=/usr/share/gocode.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

const wait = 5 * time.Second

var (
	url      = flag.String("url", "nats://127.0.0.1:4222", "server")
	user     = flag.String("user", "", "user name")
	pass     = flag.String("pass", "", "password")
	token    = flag.String("token", "", "token")
	nkeySeed = flag.String("nkey-seed", "", "file holding an NKey seed")
	caFile   = flag.String("ca", "", "CA file: TLS")
	certFile = flag.String("cert", "", "client certificate")
	keyFile  = flag.String("key", "", "its key")
	subject  = flag.String("subject", "ping.me", "ping: the subject")
)

// The options every connection of this run gets from the command line.
func common() []nats.Option {
	var o []nats.Option
	if *user != "" {
		o = append(o, nats.UserInfo(*user, *pass))
	}
	if *token != "" {
		o = append(o, nats.Token(*token))
	}
	if *nkeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(*nkeySeed)
		must(err, "nkey seed")
		o = append(o, opt)
	}
	if *caFile != "" {
		o = append(o, nats.RootCAs(*caFile))
	}
	if *certFile != "" {
		o = append(o, nats.ClientCert(*certFile, *keyFile))
	}
	return o
}

func fail(format string, a ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", a...)
	os.Exit(1)
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func conn(name string, opts ...nats.Option) *nats.Conn {
	opts = append(append([]nats.Option{nats.Name(name), nats.Timeout(wait)}, common()...),
		opts...)
	nc, err := nats.Connect(*url, opts...)
	must(err, "connect "+name)
	return nc
}

func next(sub *nats.Subscription, what string) *nats.Msg {
	m, err := sub.NextMsg(wait)
	must(err, what)
	return m
}

// Plain and header messages in order, payloads and headers intact (a
// repeated header name keeps both values in order).
func pubsub() {
	sc, pc := conn("sub"), conn("pub")
	defer sc.Close()
	defer pc.Close()
	if !pc.HeadersSupported() {
		fail("server does not announce headers")
	}
	sub, err := sc.SubscribeSync("cli.>")
	must(err, "subscribe")
	must(sc.Flush(), "flush")
	const n = 100
	for i := 0; i < n; i++ {
		must(pc.Publish(fmt.Sprintf("cli.a.%d", i), []byte(fmt.Sprintf("m%d", i))), "publish")
	}
	hm := nats.NewMsg("cli.h")
	hm.Header.Set("Proto-Type", "mir.v1.Telemetry")
	hm.Header.Add("Multi", "one")
	hm.Header.Add("Multi", "two")
	hm.Data = bytes.Repeat([]byte{0, 1, 2, 255}, 1000)
	must(pc.PublishMsg(hm), "publish with headers")
	must(pc.Flush(), "flush")
	for i := 0; i < n; i++ {
		m := next(sub, "message")
		if m.Subject != fmt.Sprintf("cli.a.%d", i) || string(m.Data) != fmt.Sprintf("m%d", i) {
			fail("message %d: %s %q", i, m.Subject, m.Data)
		}
	}
	m := next(sub, "header message")
	if !bytes.Equal(m.Data, hm.Data) || !reflect.DeepEqual(m.Header, hm.Header) {
		fail("header message: %v %d bytes", m.Header, len(m.Data))
	}
}

// Two groups of three connections: each message once per group.
func queue() {
	const n = 90
	var mu sync.Mutex
	seen := map[string]map[string]int{"g1": {}, "g2": {}}
	perMember := map[string]int{}
	done := make(chan struct{}, 2*n)
	var conns []*nats.Conn
	for _, g := range []string{"g1", "g2"} {
		for i := 0; i < 3; i++ {
			g, name := g, fmt.Sprintf("%s-%d", g, i)
			nc := conn(name)
			conns = append(conns, nc)
			_, err := nc.QueueSubscribe("work", g, func(m *nats.Msg) {
				mu.Lock()
				seen[g][string(m.Data)]++
				perMember[name]++
				mu.Unlock()
				done <- struct{}{}
			})
			must(err, "queue subscribe")
			must(nc.Flush(), "flush")
		}
	}
	pc := conn("pub")
	for i := 0; i < n; i++ {
		must(pc.Publish("work", []byte(fmt.Sprint(i))), "publish")
	}
	must(pc.Flush(), "flush")
	for i := 0; i < 2*n; i++ {
		select {
		case <-done:
		case <-time.After(wait):
			fail("only %d of %d deliveries", i, 2*n)
		}
	}
	for _, nc := range conns {
		must(nc.Flush(), "flush member")
	}
	mu.Lock()
	defer mu.Unlock()
	for g, s := range seen {
		if len(s) != n {
			fail("group %s saw %d distinct messages", g, len(s))
		}
		for k, c := range s {
			if c != 1 {
				fail("group %s got %s %d times", g, k, c)
			}
		}
	}
	if len(perMember) != 6 {
		fail("not every member got a message: %v", perMember)
	}
}

// Request/reply: nats.go's muxed inbox (one _INBOX.<nuid>.* subscription),
// a responder in a queue group answering with headers and then publishing
// +ACK to the same inbox (msg.Ack() on a core message), echo on the same
// connection, and no responders.
func request() {
	svc := conn("svc")
	defer svc.Close()
	_, err := svc.QueueSubscribe("svc.echo", "mods", func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("Reply-Of", m.Header.Get("Req-Id"))
		r.Data = append([]byte("re:"), m.Data...)
		if err := m.RespondMsg(r); err != nil {
			fmt.Println("respond:", err)
		}
		if err := m.Ack(); err != nil {
			fmt.Println("ack:", err)
		}
	})
	must(err, "queue subscribe")
	must(svc.Flush(), "flush")
	cli := conn("cli")
	defer cli.Close()
	for i := 0; i < 20; i++ {
		q := nats.NewMsg("svc.echo")
		q.Header.Set("Req-Id", fmt.Sprint(i))
		q.Data = []byte(fmt.Sprint(i))
		r, err := cli.RequestMsg(q, wait)
		must(err, "request")
		if string(r.Data) != "re:"+fmt.Sprint(i) || r.Header.Get("Reply-Of") != fmt.Sprint(i) {
			fail("reply %d: %q %v", i, r.Data, r.Header)
		}
	}
	// The +ACK after the reply, seen on an inbox of our own.
	inbox := cli.NewRespInbox()
	sub, err := cli.SubscribeSync(inbox)
	must(err, "inbox subscribe")
	must(cli.PublishRequest("svc.echo", inbox, []byte("x")), "publish request")
	if m := next(sub, "reply"); string(m.Data) != "re:x" {
		fail("reply %q", m.Data)
	}
	if m := next(sub, "+ACK"); string(m.Data) != "+ACK" {
		fail("second message %q", m.Data)
	}
	// A request to the service's own queue group from its own connection.
	r, err := svc.Request("svc.echo", []byte("self"), wait)
	must(err, "request on the responder's connection")
	if string(r.Data) != "re:self" {
		fail("self reply %q", r.Data)
	}
	if _, err := cli.Request("nobody.home", nil, wait); !errors.Is(err, nats.ErrNoResponders) {
		fail("request to nobody: %v", err)
	}
}

// Drain: messages already sent are delivered, then nats.go unsubscribes
// (UNSUB sid with a trailing space) and closes.
func drain() {
	closed := make(chan struct{})
	sc := conn("sub", nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	var mu sync.Mutex
	got := 0
	_, err := sc.Subscribe("d", func(*nats.Msg) {
		time.Sleep(time.Millisecond)
		mu.Lock()
		got++
		mu.Unlock()
	})
	must(err, "subscribe")
	sub2, err := sc.SubscribeSync("d2")
	must(err, "subscribe")
	must(sc.Flush(), "flush")
	pc := conn("pub")
	defer pc.Close()
	for i := 0; i < 50; i++ {
		must(pc.Publish("d", []byte("x")), "publish")
	}
	must(pc.Flush(), "flush")
	must(sc.Flush(), "flush")
	must(sub2.Drain(), "subscription drain")
	must(sc.Drain(), "drain")
	select {
	case <-closed:
	case <-time.After(2 * wait):
		fail("drain did not close the connection")
	}
	mu.Lock()
	defer mu.Unlock()
	if got != 50 {
		fail("drained with %d of 50", got)
	}
	if sc.LastError() != nil {
		fail("error after drain: %v", sc.LastError())
	}
}

// Ping: connects with the command line's credentials and gets its own
// message back.
func ping() {
	nc := conn("ping")
	defer nc.Close()
	sub, err := nc.SubscribeSync(*subject)
	must(err, "subscribe")
	must(nc.Publish(*subject, []byte("pong")), "publish")
	if m := next(sub, "own message"); string(m.Data) != "pong" {
		fail("got %q", m.Data)
	}
}

// Reconnect: prints "ready", waits for the server to go and come back on
// the same address, then its subscription must work again.
func reconnect() {
	back := make(chan struct{}, 1)
	nc := conn("rc", nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { back <- struct{}{} }))
	defer nc.Close()
	sub, err := nc.SubscribeSync("rc.x")
	must(err, "subscribe")
	must(nc.Flush(), "flush")
	fmt.Println("ready")
	select {
	case <-back:
	case <-time.After(30 * time.Second):
		fail("no reconnect")
	}
	must(nc.Publish("rc.x", []byte("again")), "publish")
	must(nc.Flush(), "flush")
	if m := next(sub, "message after reconnect"); string(m.Data) != "again" {
		fail("after reconnect %q", m.Data)
	}
}

func main() {
	mode := flag.String("mode", "pubsub", "pubsub, queue, request, drain, reconnect or ping")
	flag.Parse()
	modes := map[string]func(){"pubsub": pubsub, "queue": queue, "request": request,
		"drain": drain, "reconnect": reconnect, "ping": ping}
	f, ok := modes[*mode]
	if !ok {
		fail("unknown mode %s", *mode)
	}
	f()
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "ok", *mode)
	w.Flush()
}
