// A reverse proxy built from Go's standard library only (net/http/httputil),
// the peer scripts/bench.sh measures ingressd against. One backend, HTTP and
// HTTPS listeners, an idle pool sized like nginx's upstream keepalive.
package main

import (
	"crypto/tls"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
)

func main() {
	backend := flag.String("backend", "http://127.0.0.1:20000", "upstream URL")
	httpAddr := flag.String("http", "127.0.0.1:20003", "plain HTTP listen address")
	httpsAddr := flag.String("https", "", "HTTPS listen address (needs -cert and -key)")
	cert := flag.String("cert", "", "PEM certificate")
	key := flag.String("key", "", "PEM private key")
	flag.Parse()

	target, err := url.Parse(*backend)
	if err != nil {
		log.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{MaxIdleConns: 320, MaxIdleConnsPerHost: 320}
	proxy.ErrorLog = log.New(log.Writer(), "", 0)

	if *httpsAddr != "" {
		server := &http.Server{Addr: *httpsAddr, Handler: proxy,
			// HTTP/1.1 only, as every other target in the bench.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		go func() { log.Fatal(server.ListenAndServeTLS(*cert, *key)) }()
	}
	log.Fatal(http.ListenAndServe(*httpAddr, proxy))
}
