// natsload: a core NATS load generator built on nats.go (Debian's
// golang-github-nats-io-go-nats-dev), so ward's NATS listener is measured by
// a client that ward's own code did not write. It drives one broker with one
// scenario and prints one JSON object (or a line of text).
//
// Build (no network, Debian's Go sources):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o natsload ./bench/natsload
//
// Scenarios: p2p (N publishers, N subscribers, a subject per pair), fanout
// (one publisher, N subscribers), fanin (N publishers, one wildcard
// subscriber), req (N requesters, each with -w requests outstanding, against
// -responders connections in one queue group), conn (connections opened and
// closed as fast as -n goroutines can: with TLS, each one a full handshake,
// since no session cache is offered), idle (-n connections held -hold s).
//
// Core NATS has no acknowledgements, so a publisher flushes (PING/PONG)
// every -b messages: at most -b messages per publisher are in the broker or
// the sockets at a time, the rate is set by the broker, and a broker that
// drops (slow consumer) shows it as "lost" rather than as a higher rate.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type config struct {
	url, ca, cert, key, mode string
	n, size, batch, window   int
	responders               int
	secs, hold               float64
	asJSON                   bool
}

// hist is a latency histogram with 16 buckets per power of two (about 4%
// wide), so percentiles come from a fixed amount of memory however many
// messages a run carries.
type hist struct {
	mu sync.Mutex
	b  [64 * 16]uint64
}

func bucket(ns uint64) int {
	if ns < 16 {
		return int(ns)
	}
	e := bits.Len64(ns) - 1 // ns in [2^e, 2^(e+1))
	m := (ns >> uint(e-4)) & 15
	return e*16 + int(m)
}

func bucketValue(i int) float64 {
	if i < 16 {
		return float64(i)
	}
	e, m := i/16, i%16
	return float64(uint64(16+m)<<uint(e-4)) * (1 + 1.0/32)
}

func (h *hist) merge(o *[64 * 16]uint64) {
	h.mu.Lock()
	for i, v := range o {
		h.b[i] += v
	}
	h.mu.Unlock()
}

func (h *hist) pct(p float64) float64 {
	var total uint64
	for _, v := range h.b {
		total += v
	}
	if total == 0 {
		return 0
	}
	want := uint64(p * float64(total))
	var seen uint64
	for i, v := range h.b {
		seen += v
		if seen > want {
			return bucketValue(i) / 1e6
		}
	}
	return 0
}

type result struct {
	Mode      string  `json:"mode"`
	Sent      uint64  `json:"sent"`
	Expected  uint64  `json:"expected"`
	Received  uint64  `json:"received"`
	Lost      int64   `json:"lost"`
	Rate      float64 `json:"rate"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	Seconds   float64 `json:"seconds"`
	Connects  uint64  `json:"connects"`
	Failed    uint64  `json:"failed"`
	Connected int     `json:"connected"`
	Error     string  `json:"error,omitempty"`
}

func (c *config) options(name string) []nats.Option {
	o := []nats.Option{nats.Name(name), nats.NoReconnect(), nats.Timeout(10 * time.Second),
		nats.DontRandomize(), nats.FlusherTimeout(30 * time.Second)}
	if c.ca != "" {
		o = append(o, nats.RootCAs(c.ca))
	}
	if c.cert != "" {
		o = append(o, nats.ClientCert(c.cert, c.key))
	}
	return o
}

func (c *config) connect(name string) (*nats.Conn, error) {
	return nats.Connect(c.url, c.options(name)...)
}

// subscriber counts what it receives and the latency of each message from
// the send time in its first 8 bytes.
type subscriber struct {
	nc    *nats.Conn
	got   atomic.Uint64
	last  atomic.Int64
	mu    sync.Mutex // the handler's goroutine may outlive Close
	local [64 * 16]uint64
}

func (s *subscriber) handle(m *nats.Msg) {
	now := time.Now().UnixNano()
	if len(m.Data) >= 8 {
		sent := int64(binary.LittleEndian.Uint64(m.Data))
		if d := now - sent; d > 0 {
			s.mu.Lock()
			s.local[bucket(uint64(d))]++
			s.mu.Unlock()
		}
	}
	s.got.Add(1)
	s.last.Store(now)
}

// publish sends to subj until the deadline, flushing every batch, and
// returns how many messages went out.
func publish(nc *nats.Conn, subj string, size, batch int, deadline time.Time, stop *atomic.Bool) (uint64, error) {
	buf := make([]byte, size)
	var sent uint64
	for !stop.Load() && time.Now().Before(deadline) {
		for i := 0; i < batch; i++ {
			binary.LittleEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
			if err := nc.Publish(subj, buf); err != nil {
				return sent, err
			}
			sent++
		}
		if err := nc.FlushTimeout(30 * time.Second); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

func closeAll(conns []*nats.Conn) {
	for _, nc := range conns {
		if nc != nil {
			nc.Close()
		}
	}
}

// pubsub runs p2p, fanout and fanin: pubs publishers, subs subscribers, the
// subjects chosen by mode.
func pubsub(c *config) result {
	r := result{Mode: c.mode}
	pubs, subs := c.n, c.n
	switch c.mode {
	case "fanout":
		pubs = 1
	case "fanin":
		subs = 1
	}
	pubSubj := func(i int) string {
		switch c.mode {
		case "p2p":
			return "bench.p2p." + strconv.Itoa(i)
		case "fanin":
			return "bench.fanin." + strconv.Itoa(i)
		}
		return "bench.fanout"
	}
	subSubj := func(i int) string {
		switch c.mode {
		case "p2p":
			return "bench.p2p." + strconv.Itoa(i)
		case "fanin":
			return "bench.fanin.*"
		}
		return "bench.fanout"
	}
	ss := make([]*subscriber, subs)
	var conns []*nats.Conn
	defer func() { closeAll(conns) }()
	for i := range ss {
		nc, err := c.connect("sub" + strconv.Itoa(i))
		if err != nil {
			r.Error = "subscriber connect: " + err.Error()
			return r
		}
		conns = append(conns, nc)
		s := &subscriber{nc: nc}
		ss[i] = s
		sub, err := nc.Subscribe(subSubj(i), s.handle)
		if err != nil {
			r.Error = "subscribe: " + err.Error()
			return r
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := nc.FlushTimeout(10 * time.Second); err != nil {
			r.Error = "subscribe flush: " + err.Error()
			return r
		}
	}
	pcs := make([]*nats.Conn, pubs)
	for i := range pcs {
		nc, err := c.connect("pub" + strconv.Itoa(i))
		if err != nil {
			r.Error = "publisher connect: " + err.Error()
			return r
		}
		conns = append(conns, nc)
		pcs[i] = nc
	}
	var sent atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var errOnce sync.Once
	start := time.Now()
	deadline := start.Add(time.Duration(c.secs * float64(time.Second)))
	for i, nc := range pcs {
		wg.Add(1)
		go func(i int, nc *nats.Conn) {
			defer wg.Done()
			n, err := publish(nc, pubSubj(i), c.size, c.batch, deadline, &stop)
			sent.Add(n)
			if err != nil {
				errOnce.Do(func() { r.Error = "publish: " + err.Error() })
				stop.Store(true)
			}
		}(i, nc)
	}
	wg.Wait()
	perMsg := uint64(1)
	if c.mode == "fanout" {
		perMsg = uint64(subs)
	}
	r.Sent = sent.Load()
	r.Expected = r.Sent * perMsg
	// Wait for the tail: until everything expected arrived, or nothing
	// arrived for a second, or 10 s at most.
	received := func() uint64 {
		var t uint64
		for _, s := range ss {
			t += s.got.Load()
		}
		return t
	}
	prev, still := received(), time.Now()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		cur := received()
		if cur >= r.Expected {
			break
		}
		if cur != prev {
			prev, still = cur, time.Now()
		} else if time.Since(still) > time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	closeAll(conns) // stops the handlers before their counters are read
	conns = nil
	var h hist
	var last int64
	for _, s := range ss {
		s.mu.Lock()
		h.merge(&s.local)
		s.mu.Unlock()
		if l := s.last.Load(); l > last {
			last = l
		}
	}
	r.Received = received()
	r.Lost = int64(r.Expected) - int64(r.Received)
	if last > start.UnixNano() {
		r.Seconds = float64(last-start.UnixNano()) / 1e9
		r.Rate = float64(r.Received) / r.Seconds
	}
	r.P50ms, r.P99ms = h.pct(0.50), h.pct(0.99)
	return r
}

// request: c.n requester connections, each with c.window requests in
// flight (one goroutine per request), c.responders responders in a queue
// group; latency is the request's round trip.
func request(c *config) result {
	r := result{Mode: c.mode}
	var conns []*nats.Conn
	defer func() { closeAll(conns) }()
	for i := 0; i < c.responders; i++ {
		nc, err := c.connect("responder" + strconv.Itoa(i))
		if err != nil {
			r.Error = "responder connect: " + err.Error()
			return r
		}
		conns = append(conns, nc)
		sub, err := nc.QueueSubscribe("bench.req", "responders", func(m *nats.Msg) { _ = m.Respond(m.Data) })
		if err != nil {
			r.Error = "queue subscribe: " + err.Error()
			return r
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := nc.FlushTimeout(10 * time.Second); err != nil {
			r.Error = "responder flush: " + err.Error()
			return r
		}
	}
	reqs := make([]*nats.Conn, c.n)
	for i := range reqs {
		nc, err := c.connect("requester" + strconv.Itoa(i))
		if err != nil {
			r.Error = "requester connect: " + err.Error()
			return r
		}
		conns = append(conns, nc)
		reqs[i] = nc
	}
	var h hist
	var sent, got, failed atomic.Uint64
	var wg sync.WaitGroup
	var errOnce sync.Once
	start := time.Now()
	deadline := start.Add(time.Duration(c.secs * float64(time.Second)))
	for _, nc := range reqs {
		for w := 0; w < c.window; w++ {
			wg.Add(1)
			go func(nc *nats.Conn) {
				defer wg.Done()
				var local [64 * 16]uint64
				buf := make([]byte, c.size)
				for time.Now().Before(deadline) {
					t0 := time.Now()
					sent.Add(1)
					if _, err := nc.Request("bench.req", buf, 5*time.Second); err != nil {
						failed.Add(1)
						errOnce.Do(func() { r.Error = "request: " + err.Error() })
						if failed.Load() > 100 {
							break
						}
						continue
					}
					got.Add(1)
					local[bucket(uint64(time.Since(t0)))]++
				}
				h.merge(&local)
			}(nc)
		}
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	r.Sent, r.Expected, r.Received, r.Failed = sent.Load(), sent.Load(), got.Load(), failed.Load()
	r.Lost = int64(r.Expected) - int64(r.Received)
	r.Rate = float64(r.Received) / r.Seconds
	r.P50ms, r.P99ms = h.pct(0.50), h.pct(0.99)
	return r
}

// connects opens and closes connections from c.n goroutines until the
// deadline; each connect waits for the server's PONG to its first PING.
func connects(c *config) result {
	r := result{Mode: c.mode}
	var ok, failed atomic.Uint64
	var wg sync.WaitGroup
	var errOnce sync.Once
	var h hist
	start := time.Now()
	deadline := start.Add(time.Duration(c.secs * float64(time.Second)))
	for i := 0; i < c.n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var local [64 * 16]uint64
			opts := c.options("conn" + strconv.Itoa(i))
			for time.Now().Before(deadline) {
				t0 := time.Now()
				nc, err := nats.Connect(c.url, opts...)
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { r.Error = "connect: " + err.Error() })
					if failed.Load() > 1000 {
						break
					}
					time.Sleep(time.Millisecond)
					continue
				}
				local[bucket(uint64(time.Since(t0)))]++
				nc.Close()
				ok.Add(1)
			}
			h.merge(&local)
		}(i)
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	r.Connects, r.Failed = ok.Load(), failed.Load()
	r.Rate = float64(r.Connects) / r.Seconds
	r.P50ms, r.P99ms = h.pct(0.50), h.pct(0.99)
	return r
}

// idle connects c.n clients (64 at a time), prints "connected N" on stderr
// once they all are, holds them c.hold seconds and closes them.
func idle(c *config) result {
	r := result{Mode: c.mode}
	conns := make([]*nats.Conn, c.n)
	defer func() { closeAll(conns) }()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var failed atomic.Uint64
	var errOnce sync.Once
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			opts := append(c.options("idle"+strconv.Itoa(i)), nats.PingInterval(10*time.Minute))
			nc, err := nats.Connect(c.url, opts...)
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { r.Error = "connect: " + err.Error() })
				return
			}
			conns[i] = nc
		}(i)
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	for _, nc := range conns {
		if nc != nil && nc.IsConnected() {
			r.Connected++
		}
	}
	r.Failed = failed.Load()
	fmt.Fprintf(os.Stderr, "connected %d\n", r.Connected)
	time.Sleep(time.Duration(c.hold * float64(time.Second)))
	return r
}

func main() {
	var c config
	flag.StringVar(&c.url, "s", "nats://127.0.0.1:4222", "server URL")
	flag.StringVar(&c.ca, "ca", "", "CA file (TLS)")
	flag.StringVar(&c.cert, "cert", "", "client certificate (mTLS)")
	flag.StringVar(&c.key, "key", "", "its private key")
	flag.StringVar(&c.mode, "m", "p2p", "p2p, fanout, fanin, req, conn or idle")
	flag.IntVar(&c.n, "n", 10, "publishers/subscribers/requesters/connections")
	flag.IntVar(&c.size, "size", 64, "payload bytes (at least 8)")
	flag.IntVar(&c.batch, "b", 1000, "messages a publisher sends between flushes (PING/PONG)")
	flag.IntVar(&c.window, "w", 8, "req: requests in flight per requester")
	flag.IntVar(&c.responders, "responders", 2, "req: responder connections (one queue group)")
	flag.Float64Var(&c.secs, "d", 5, "seconds of load")
	flag.Float64Var(&c.hold, "hold", 5, "idle: seconds to hold the connections")
	flag.BoolVar(&c.asJSON, "json", false, "one JSON object")
	flag.Parse()
	if c.size < 8 || c.n < 1 || c.batch < 1 || c.window < 1 || c.responders < 1 || c.secs <= 0 || c.secs > 600 || c.hold < 0 || c.hold > 600 || c.n > 20000 {
		fmt.Fprintln(os.Stderr, "natsload: bad option (see -help)")
		os.Exit(2)
	}
	var r result
	switch c.mode {
	case "p2p", "fanout", "fanin":
		r = pubsub(&c)
	case "req":
		r = request(&c)
	case "conn":
		r = connects(&c)
	case "idle":
		r = idle(&c)
	default:
		fmt.Fprintln(os.Stderr, "natsload: unknown mode", c.mode)
		os.Exit(2)
	}
	if c.asJSON {
		out, _ := json.Marshal(r)
		fmt.Println(string(out))
	} else {
		keys := []string{}
		m := map[string]interface{}{}
		raw, _ := json.Marshal(r)
		_ = json.Unmarshal(raw, &m)
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("%-10s %v\n", k, m[k])
		}
	}
	if r.Error != "" {
		os.Exit(1)
	}
}
