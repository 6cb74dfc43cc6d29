// nats.go (Debian's 1.22, which speaks ws:// and wss:// itself) over
// WebSocket for test_websocket_nats.py. Built at test time with
// GO111MODULE=off GOPATH=/usr/share/gocode. Modes:
//
//	big   a 600 KB message (many frames' worth) published and received
//	      whole on one connection, and from a second one
//	recv  subscribe to -subject, print "ready", then print "msg SUBJECT
//	      PAYLOAD" for each of -n messages and exit 0
//	send  publish -n messages "m0".."mN-1" to -subject, flush, exit 0
//
// Any failure prints "FAIL reason" and exits 1; every wait is bounded.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

const wait = 10 * time.Second

var (
	url     = flag.String("url", "ws://127.0.0.1:8080", "server")
	caFile  = flag.String("ca", "", "CA file (wss)")
	subject = flag.String("subject", "ws.go", "subject")
	count   = flag.Int("n", 1, "messages")
	out     = bufio.NewWriter(os.Stdout)
)

func fail(format string, a ...interface{}) {
	out.Flush()
	fmt.Printf("FAIL "+format+"\n", a...)
	os.Exit(1)
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func conn(name string) *nats.Conn {
	opts := []nats.Option{nats.Name(name), nats.Timeout(wait), nats.NoReconnect()}
	if *caFile != "" {
		opts = append(opts, nats.RootCAs(*caFile))
	}
	nc, err := nats.Connect(*url, opts...)
	must(err, "connect "+name)
	return nc
}

func big() {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 600*1024/16)
	a, b := conn("big-a"), conn("big-b")
	sa, err := a.SubscribeSync(*subject)
	must(err, "subscribe")
	must(a.Flush(), "flush")
	must(a.Publish(*subject, payload), "publish on the same connection")
	must(b.Publish(*subject, payload), "publish from another")
	must(b.Flush(), "flush")
	for i := 0; i < 2; i++ {
		m, err := sa.NextMsg(wait)
		must(err, fmt.Sprintf("message %d", i))
		if !bytes.Equal(m.Data, payload) {
			fail("message %d: %d bytes, not the %d sent", i, len(m.Data), len(payload))
		}
	}
	a.Close()
	b.Close()
	fmt.Fprintln(out, "ok big")
}

func recv() {
	nc := conn("recv")
	sub, err := nc.SubscribeSync(*subject)
	must(err, "subscribe")
	must(nc.Flush(), "flush")
	fmt.Println("ready")
	for i := 0; i < *count; i++ {
		m, err := sub.NextMsg(wait)
		must(err, fmt.Sprintf("message %d", i))
		fmt.Fprintf(out, "msg %s %s\n", m.Subject, m.Data)
	}
	nc.Close()
	fmt.Fprintln(out, "ok recv")
}

func send() {
	nc := conn("send")
	for i := 0; i < *count; i++ {
		must(nc.Publish(*subject, []byte(fmt.Sprintf("m%d", i))), "publish")
	}
	must(nc.Flush(), "flush")
	nc.Close()
	fmt.Fprintln(out, "ok send")
}

func main() {
	mode := flag.String("mode", "big", "big, recv or send")
	flag.Parse()
	modes := map[string]func(){"big": big, "recv": recv, "send": send}
	f, ok := modes[*mode]
	if !ok {
		fail("unknown mode %s", *mode)
	}
	f()
	out.Flush()
}
