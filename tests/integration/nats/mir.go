// A Mir-shaped scenario for test_nats_mir.py with nats.go over mutual TLS,
// each party with its own client certificate (made at test time; -pki DIR
// holds ca.crt and NAME.crt/NAME.key for dev-1, dev-2, core, cli):
//
//   - two instances of a module ("core", OU=Services) in queue groups: one
//     takes telemetry, one answers config requests with headers and then
//     publishes +ACK to the same inbox (msg.Ack() on a core message);
//   - a device (dev-1, OU=Devices) with CustomInboxPrefix _INBOX.dev-1 that
//     publishes telemetry (HPUB device.dev-1.tlm.v1alpha.proto with a header
//     naming the protobuf type), an 8 MB schema hello, answers commands on
//     dev-1.>, and requests its configuration whenever it (re)connects;
//   - an operator (cli, OU=Operators) sending a command request;
//   - another device (dev-2) that must not be able to read dev-1's replies.
//
// It prints "ready" once all that worked, then waits until every
// connection reconnected (the test restarts the server), checks the config
// request made on reconnect and a command again, and prints "ok mir".
package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	wait      = 10 * time.Second
	protoHdr  = "Mir-Proto-Type"
	tlmSubj   = "device.dev-1.tlm.v1alpha.proto"
	helloSubj = "device.dev-1.schema.v1alpha.hello"
	cfgSubj   = "client.dev-1.core.v1alpha.config"
)

var (
	url     = flag.String("url", "tls://127.0.0.1:4222", "server")
	pki     = flag.String("pki", ".", "directory of ca.crt and NAME.crt / NAME.key")
	restart = flag.Bool("restart", true, "wait for a server restart after ready")
)

func fail(format string, a ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", a...)
	os.Exit(1)
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

// Connection events of one party: reconnects and asynchronous errors
// (permission violations arrive this way).
type party struct {
	nc        *nats.Conn
	reconnect chan struct{}
	errs      chan string
}

func connect(name string, opts ...nats.Option) *party {
	p := &party{reconnect: make(chan struct{}, 4), errs: make(chan string, 16)}
	dir := *pki
	opts = append([]nats.Option{
		nats.Name(name), nats.Timeout(wait),
		nats.RootCAs(filepath.Join(dir, "ca.crt")),
		nats.ClientCert(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")),
		nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { p.reconnect <- struct{}{} }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			p.errs <- err.Error()
		}),
	}, opts...)
	nc, err := nats.Connect(*url, opts...)
	must(err, "connect "+name)
	p.nc = nc
	return p
}

func expectErr(p *party, want string) {
	select {
	case e := <-p.errs:
		if !strings.Contains(e, want) {
			fail("error %q, wanted %q", e, want)
		}
	case <-time.After(wait):
		fail("no error %q", want)
	}
}

type modules struct {
	mu      sync.Mutex
	tlm     map[string]int // payload -> deliveries over both instances
	hello   [][32]byte
	configs int
}

// Two instances of the core module.
func startModules(m *modules) []*party {
	var out []*party
	for i := 0; i < 2; i++ {
		p := connect("core")
		_, err := p.nc.QueueSubscribe("device.*.tlm.v1alpha.proto", "core-tlm", func(msg *nats.Msg) {
			if msg.Header.Get(protoHdr) != "mir.device.v1alpha.Telemetry" {
				fmt.Println("telemetry without its type header:", msg.Header)
				return
			}
			m.mu.Lock()
			m.tlm[string(msg.Data)]++
			m.mu.Unlock()
		})
		must(err, "telemetry queue subscribe")
		_, err = p.nc.QueueSubscribe("device.*.schema.v1alpha.hello", "core-hello", func(msg *nats.Msg) {
			m.mu.Lock()
			m.hello = append(m.hello, sha256.Sum256(msg.Data))
			m.mu.Unlock()
		})
		must(err, "hello queue subscribe")
		_, err = p.nc.QueueSubscribe("client.*.core.v1alpha.config", "core-cfg", func(msg *nats.Msg) {
			m.mu.Lock()
			m.configs++
			m.mu.Unlock()
			r := nats.NewMsg(msg.Reply)
			r.Header.Set(protoHdr, "mir.core.v1alpha.Config")
			r.Data = []byte("config-for:" + strings.Split(msg.Subject, ".")[1])
			if err := msg.RespondMsg(r); err != nil {
				fmt.Println("config reply:", err)
			}
			if err := msg.Ack(); err != nil {
				fmt.Println("config +ACK:", err)
			}
		})
		must(err, "config queue subscribe")
		must(p.nc.Flush(), "module flush")
		out = append(out, p)
	}
	return out
}

func requestConfig(dev *party) {
	q := nats.NewMsg(cfgSubj)
	q.Header.Set(protoHdr, "mir.core.v1alpha.ConfigRequest")
	r, err := dev.nc.RequestMsg(q, wait)
	must(err, "config request")
	if string(r.Data) != "config-for:dev-1" || r.Header.Get(protoHdr) != "mir.core.v1alpha.Config" {
		fail("config reply %q %v", r.Data, r.Header)
	}
}

func command(cli *party, n int) {
	q := nats.NewMsg("dev-1.cmd.v1alpha.reboot")
	q.Header.Set(protoHdr, "mir.device.v1alpha.Reboot")
	q.Data = []byte(fmt.Sprint(n))
	r, err := cli.nc.RequestMsg(q, wait)
	must(err, "command request")
	if string(r.Data) != "done:"+fmt.Sprint(n) || r.Header.Get(protoHdr) != "mir.device.v1alpha.RebootResult" {
		fail("command reply %q %v", r.Data, r.Header)
	}
}

func waitFor(what string, cond func() bool) {
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			fail("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func main() {
	flag.Parse()
	m := &modules{tlm: map[string]int{}}
	mods := startModules(m)
	cli := connect("cli")

	dev := connect("dev-1", nats.CustomInboxPrefix("_INBOX.dev-1"))
	if dev.nc.MaxPayload() != 8*1024*1024 {
		fail("max_payload %d", dev.nc.MaxPayload())
	}
	_, err := dev.nc.Subscribe("dev-1.>", func(msg *nats.Msg) {
		r := nats.NewMsg(msg.Reply)
		r.Header.Set(protoHdr, "mir.device.v1alpha.RebootResult")
		r.Data = append([]byte("done:"), msg.Data...)
		if err := msg.RespondMsg(r); err != nil {
			fmt.Println("command reply:", err)
		}
	})
	must(err, "command subscribe")
	must(dev.nc.Flush(), "device flush")
	requestConfig(dev)

	// Telemetry: each message once over the two module instances.
	for i := 0; i < 50; i++ {
		t := nats.NewMsg(tlmSubj)
		t.Header.Set(protoHdr, "mir.device.v1alpha.Telemetry")
		t.Data = []byte(fmt.Sprint(i))
		must(dev.nc.PublishMsg(t), "telemetry")
	}
	must(dev.nc.Flush(), "flush telemetry")
	// The schema hello at the size Mir allows (headers count too).
	hello := nats.NewMsg(helloSubj)
	hello.Header.Set(protoHdr, "mir.device.v1alpha.SchemaHello")
	hello.Data = bytes.Repeat([]byte("schema:0123456789abcdef"), (8*1024*1024-200)/23)
	must(dev.nc.PublishMsg(hello), "8 MB hello")
	must(dev.nc.Flush(), "flush hello")
	waitFor("telemetry and the hello", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.tlm) == 50 && len(m.hello) >= 1
	})
	for _, p := range mods {
		must(p.nc.Flush(), "module flush")
	}
	m.mu.Lock()
	for k, c := range m.tlm {
		if c != 1 {
			fail("telemetry %s delivered %d times", k, c)
		}
	}
	if len(m.hello) != 1 || m.hello[0] != sha256.Sum256(hello.Data) {
		fail("hello: %d copies or changed", len(m.hello))
	}
	m.mu.Unlock()

	command(cli, 1)

	// Another device cannot read dev-1's replies, nor anyone's.
	dev2 := connect("dev-2", nats.CustomInboxPrefix("_INBOX.dev-2"))
	for _, subj := range []string{"_INBOX.dev-1.>", "_INBOX.>", "dev-1.>", "device.dev-1.>"} {
		_, err := dev2.nc.SubscribeSync(subj)
		must(err, "subscribe")
		must(dev2.nc.Flush(), "flush")
		expectErr(dev2, fmt.Sprintf("Permissions Violation for Subscription to %q", subj))
	}
	// ... nor publish as dev-1.
	must(dev2.nc.Publish(tlmSubj, []byte("forged")), "publish")
	must(dev2.nc.Flush(), "flush")
	expectErr(dev2, fmt.Sprintf("Permissions Violation for Publish to %q", tlmSubj))
	requestConfig(dev) // works while dev-2 tried all that
	m.mu.Lock()
	if m.tlm["forged"] != 0 {
		fail("forged telemetry arrived")
	}
	m.mu.Unlock()

	if !*restart {
		fmt.Println("ok mir")
		return
	}
	fmt.Println("ready")
	configs := func() int { m.mu.Lock(); defer m.mu.Unlock(); return m.configs }
	before := configs()
	for _, p := range append([]*party{dev, cli}, mods...) {
		select {
		case <-p.reconnect:
		case <-time.After(30 * time.Second):
			fail("%s did not reconnect", p.nc.Opts.Name)
		}
	}
	// What Mir's device does when it comes back: ask for its configuration.
	requestConfig(dev)
	if configs() != before+1 {
		fail("configs answered %d, wanted %d", configs(), before+1)
	}
	command(cli, 2)
	fmt.Println("ok mir")
}
