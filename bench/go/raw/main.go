// The HTTP benchmark's raw Go responder: a goroutine per connection that answers every
// complete request head (up to its empty line) with the fixed response, pipelined requests
// in one write. No real HTTP parsing: it shows the cost of Go's runtime and netpoller
// alone, next to net/http. bench/http.sh runs it with GOMAXPROCS=1 on one CPU.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

var sep = []byte("\r\n\r\n")

// The Date header's value, refreshed once a second by a ticker goroutine.
var date atomic.Value

func keepDate() {
	for {
		date.Store([]byte(time.Now().UTC().Format(http.TimeFormat)))
		time.Sleep(time.Second)
	}
}

func serve(c net.Conn) {
	defer c.Close()
	in := make([]byte, 8192)
	out := make([]byte, 0, 4096)
	have := 0
	for {
		n, err := c.Read(in[have:])
		if n <= 0 || err != nil {
			return
		}
		have += n
		off := 0
		out = out[:0]
		for {
			i := bytes.Index(in[off:have], sep)
			if i < 0 {
				break
			}
			off += i + 4
			out = append(out, "HTTP/1.1 200 OK\r\nServer: weft\r\nDate: "...)
			out = append(out, date.Load().([]byte)...)
			out = append(out, "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"...)
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		have = copy(in, in[off:have])
		if have == len(in) {
			return // a head longer than the buffer: give up on this client
		}
	}
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 8080, "port (0: any free port)")
	flag.Parse()
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-raw:", err)
		os.Exit(1)
	}
	date.Store([]byte(time.Now().UTC().Format(http.TimeFormat)))
	go keepDate()
	fmt.Printf("go-raw listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	for {
		c, err := ln.Accept()
		if err != nil {
			time.Sleep(50 * time.Millisecond) // out of fds: back off
			continue
		}
		go serve(c)
	}
}
