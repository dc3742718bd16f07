# bench/: speed measurements, never part of make check; run with make bench.
.PHONY: bench
bench:
