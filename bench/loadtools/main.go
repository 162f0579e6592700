// Load tools scripts/bench.sh needs beyond wrk (standard library only):
//
//	handshakes: full TLS handshakes per second, one new connection per
//	            request, session resumption off (no client session cache), and
//	            a count of any handshake that resumed anyway.
//	idle:       opens N keep-alive connections, sends one request on each,
//	            reads the answer, and holds them open until killed; prints
//	            how many were refused or failed.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadtools handshakes|idle [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "handshakes":
		handshakes(os.Args[2:])
	case "idle":
		idle(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "unknown tool", os.Args[1])
		os.Exit(2)
	}
}

func request(host, path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n")
}

func handshakes(args []string) {
	fs := flag.NewFlagSet("handshakes", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:443", "target")
	host := fs.String("host", "bench.test", "SNI and Host")
	path := fs.String("path", "/1k", "request path")
	conns := fs.Int("c", 16, "concurrent connections")
	duration := fs.Duration("d", 5*time.Second, "run time")
	fs.Parse(args)

	config := &tls.Config{ServerName: *host, InsecureSkipVerify: true,
		ClientSessionCache: nil, // no cache: every handshake is a full one
		CurvePreferences:   []tls.CurveID{tls.CurveP256}, MinVersion: tls.VersionTLS13}
	var done, resumed, failed int64
	var mu sync.Mutex
	var latencies []time.Duration
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			req := request(*host, *path)
			for time.Now().Before(deadline) {
				start := time.Now()
				conn, err := tls.Dial("tcp", *addr, config)
				if err != nil {
					atomic.AddInt64(&failed, 1)
					continue
				}
				if conn.ConnectionState().DidResume {
					atomic.AddInt64(&resumed, 1)
				}
				_, err = conn.Write(req)
				if err == nil {
					var resp *http.Response
					resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
				conn.Close()
				if err != nil {
					atomic.AddInt64(&failed, 1)
					continue
				}
				atomic.AddInt64(&done, 1)
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	// The same lines wrk prints, so the bench parses both alike.
	fmt.Printf("%d requests in %s\n", done, duration.String())
	fmt.Printf("Requests/sec: %.2f\n", float64(done)/duration.Seconds())
	fmt.Printf("     50%% %.2fms\n     99%% %.2fms\n", pct(0.50), pct(0.99))
	fmt.Printf("resumed: %d failed: %d\n", resumed, failed)
}

func idle(args []string) {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:80", "target")
	host := fs.String("host", "bench.test", "Host")
	path := fs.String("path", "/1k", "request path")
	count := fs.Int("n", 10000, "connections to hold")
	ready := fs.String("ready-file", "", "written once all connections are open")
	fs.Parse(args)

	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *host + "\r\n\r\n")
	var held []net.Conn
	var mu sync.Mutex
	var refused, failed int64
	var wg sync.WaitGroup
	slots := make(chan struct{}, 200) // opening rate: 200 handshakes in flight
	for i := 0; i < *count; i++ {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			conn, err := net.DialTimeout("tcp", *addr, 10*time.Second)
			if err != nil {
				atomic.AddInt64(&refused, 1)
				return
			}
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			_, err = conn.Write(req)
			var resp *http.Response
			if err == nil {
				resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
			}
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				atomic.AddInt64(&failed, 1)
				conn.Close()
				return
			}
			conn.SetDeadline(time.Time{})
			mu.Lock()
			held = append(held, conn)
			mu.Unlock()
		}()
	}
	wg.Wait()
	summary := fmt.Sprintf("held: %d refused: %d failed: %d\n", len(held), refused, failed)
	fmt.Print(summary)
	if *ready != "" {
		os.WriteFile(*ready, []byte(summary), 0o644)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	// Any held connection the server closed meanwhile is counted on exit.
	closed := 0
	one := make([]byte, 1)
	for _, conn := range held {
		conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := conn.Read(one); err == io.EOF {
			closed++
		}
		conn.Close()
	}
	fmt.Printf("closed by the server while held: %d\n", closed)
}
