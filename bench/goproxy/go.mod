module ingressd.bench/goproxy

go 1.19
