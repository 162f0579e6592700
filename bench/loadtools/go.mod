module ingressd.bench/loadtools

go 1.19
