// bench/chan's counterpart in Go: pingpong (ns per message over two unbuffered channels,
// one message = one send met by one receive) and whispers (ms for a chain of -w goroutines,
// each receiving an int from its left neighbour and sending it plus one to the right, from
// the first channel made to the result). bench/chan.sh runs it with GOMAXPROCS=1, beside
// bench/chan, and prints lines in bench/chan's format with "go" in front of the names.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"time"
)

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func best(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		if x < m {
			m = x
		}
	}
	return m
}

// pingpong: n messages, n/2 each way; returns ns.
func pingpong(n int) float64 {
	ping, pong := make(chan int), make(chan int)
	done := make(chan struct{})
	go func() {
		for i := 0; i < n/2; i++ {
			x := <-ping
			pong <- x + 1
		}
		close(done)
	}()
	x := 0
	t0 := time.Now()
	for i := 0; i < n/2; i++ {
		ping <- x
		x = <-pong
	}
	el := time.Since(t0)
	<-done
	if x != n/2 {
		panic("pingpong")
	}
	return float64(el.Nanoseconds())
}

func whisper(left, right chan int) {
	left <- 1 + <-right
}

// whispers: the chain of n goroutines; returns ns.
func whispers(n int) float64 {
	t0 := time.Now()
	leftmost := make(chan int)
	right := leftmost
	left := leftmost
	for i := 0; i < n; i++ {
		right = make(chan int)
		go whisper(left, right)
		left = right
	}
	go func(c chan int) { c <- 1 }(right)
	x := <-leftmost
	el := time.Since(t0)
	if x != n+1 {
		panic("whispers")
	}
	return float64(el.Nanoseconds())
}

func main() {
	rounds := flag.Int("r", 9, "rounds")
	msgs := flag.Int("n", 0, "pingpong messages per round (0: calibrate to -t)")
	budget := flag.Float64("t", 20, "ms per pingpong measurement when calibrating")
	chain := flag.Int("w", 100000, "whispers chain length")
	only := flag.String("o", "pingpong,whispers", "variants")
	quiet := flag.Bool("q", false, "machine lines only")
	flag.Parse()
	doPP, doWh := false, false
	for _, v := range splitComma(*only) {
		doPP = doPP || v == "pingpong"
		doWh = doWh || v == "whispers"
	}
	n := *msgs
	if doPP && n == 0 {
		n = 2
		var t float64
		for t = pingpong(n); t < *budget*1e6/20 && n < 1<<40; t = pingpong(n) {
			n *= 2
		}
		n = int(float64(n)**budget*1e6/t) / 2 * 2
		if n < 2 {
			n = 2
		}
	}
	pp := make([]float64, *rounds)
	wh := make([]float64, *rounds)
	for r := 0; r < *rounds; r++ {
		if doPP {
			pp[r] = pingpong(n) / float64(n)
		}
		if doWh {
			wh[r] = whispers(*chain) / 1e6
		}
	}
	if !*quiet {
		fmt.Printf("# Go %s, GOMAXPROCS=%s; %d rounds\n", runtime.Version(), os.Getenv("GOMAXPROCS"), *rounds)
	}
	if doPP {
		fmt.Printf("chan   go_pingpong median %8.2f ns  best %8.2f ns  (%d messages/round)\n", median(pp), best(pp), n)
	}
	if doWh {
		// The first round runs in a fresh process (goroutine stacks all new), as each round of
		// bench/chan's whispers runs in a fresh scheduler; the later ones reuse what it left,
		// as whispers_warm does.
		fmt.Printf("chan   go_whispers median %8.2f ms  best %8.2f ms  (%d goroutines, first round)\n", wh[0], wh[0], *chain)
		if *rounds > 1 {
			fmt.Printf("chan   go_whispers_warm median %8.2f ms  best %8.2f ms  (%d goroutines)\n", median(wh[1:]), best(wh[1:]), *chain)
		}
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
