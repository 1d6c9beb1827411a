package natstest

import (
	"io"
	"net"
	"sync"
)

// link is a TCP proxy carrying the route connections one node opens to
// another. A test cuts it (every connection through it closes, new ones are
// refused at once) and heals it; the servers' own reconnect loops do the
// rest, as they would after a real network partition.
//
// One link per ordered pair of nodes, rather than one per node, is what
// lets a cut isolate one node both ways: a link knows whose connections it
// carries without reading the route protocol.
type link struct {
	ln net.Listener

	mu     sync.Mutex
	target string // the route listen address of the dialled node
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // the accept loop and every copy goroutine
}

// newLink listens on a free loopback port and forwards to target.
func newLink(target string) (*link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Go(l.accept)
	return l, nil
}

// addr is where the dialling node's Routes point.
func (l *link) addr() string { return l.ln.Addr().String() }

func (l *link) accept() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		l.mu.Lock()
		cut, target := l.cut, l.target
		l.mu.Unlock()
		if cut {
			in.Close() // as a refused connection: the dialler retries later
			continue
		}
		// The dial is local: the target is up and accepts, or refuses at
		// once (a stopped node), which closes the incoming side too.
		out, err := net.Dial("tcp", target)
		if err != nil {
			in.Close()
			continue
		}
		l.mu.Lock()
		if l.cut {
			l.mu.Unlock()
			in.Close()
			out.Close()
			continue
		}
		l.conns[in], l.conns[out] = struct{}{}, struct{}{}
		l.wg.Add(2)
		l.mu.Unlock()
		go l.pipe(in, out)
		go l.pipe(out, in)
	}
}

// pipe copies one direction; when either side ends, both close, so the
// servers see the route drop as they would a reset.
func (l *link) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	_, _ = io.Copy(dst, src)
	src.Close()
	dst.Close()
	l.mu.Lock()
	delete(l.conns, src)
	delete(l.conns, dst)
	l.mu.Unlock()
}

// retarget points the link at another address (a node given new ports
// before it ever ran).
func (l *link) retarget(target string) {
	l.mu.Lock()
	l.target = target
	l.mu.Unlock()
}

// setCut cuts the link (closing what it carries) or heals it.
func (l *link) setCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for c := range l.conns {
			c.Close()
		}
	}
}

// close stops the link and waits for its goroutines.
func (l *link) close() {
	l.ln.Close()
	l.setCut(true)
	l.wg.Wait()
}

// blackhole accepts TCP connections and closes them at once. Every node
// advertises it as its route address: a server that hears of a peer through
// another's gossip dials the advertised address, which would bypass the
// links; here that dial fails at once and the server keeps to the routes it
// is configured with, the links.
type blackhole struct {
	ln net.Listener
	wg sync.WaitGroup
}

func newBlackhole() (*blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &blackhole{ln: ln}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	return b, nil
}

func (b *blackhole) close() {
	b.ln.Close()
	b.wg.Wait()
}
