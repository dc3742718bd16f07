# bench/: speed measurements, never part of make check; run with make bench.
.PHONY: bench
bench:
EXTRA_PROGRAMS += bench/million
bench_million_SOURCES = bench/million.c
bench_million_LDADD = libweft.la
CLEANFILES += bench/million
