// The HTTP benchmark's Go reference: the standard library's net/http serving the same
// "Hello, World!" text/plain body. bench/http.sh runs it with GOMAXPROCS=1 on one CPU.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 8080, "port (0: any free port)")
	flag.Parse()
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, fmt.Sprint(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-nethttp:", err)
		os.Exit(1)
	}
	body := []byte("Hello, World!")
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "weft")
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}
	fmt.Printf("go-nethttp listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	if err := http.Serve(ln, http.HandlerFunc(h)); err != nil {
		fmt.Fprintln(os.Stderr, "go-nethttp:", err)
		os.Exit(1)
	}
}
