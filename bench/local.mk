# bench/: speed measurements, never part of make check. `make bench` runs bench/run.sh,
# which builds the programs below against an asm and a ucontext build of the library and
# runs them interleaved; `make bench-programs` only builds them against this build.
BENCH_PROGS = bench/switch bench/spawn bench/million bench/sync bench/chan bench/gen
EXTRA_PROGRAMS += $(BENCH_PROGS)
CLEANFILES += $(BENCH_PROGS)
EXTRA_DIST += bench/run.sh bench/README.md bench/floor_x86_64.S bench/floor_aarch64.S
EXTRA_DIST += bench/profile.sh

bench_switch_SOURCES = bench/switch.c bench/floors.c bench/bench.h bench/floor.S
bench_switch_LDADD = libweft.la -ldl
bench_spawn_SOURCES = bench/spawn.c bench/bench.h bench/floor.S
bench_spawn_LDADD = libweft.la
bench_million_SOURCES = bench/million.c
bench_million_LDADD = libweft.la
# The sync layer: mutex hand-off (and semaphore, park/unpark) beside the floor switch.
bench_sync_SOURCES = bench/sync.c bench/floors.c bench/bench.h bench/floor.S
bench_sync_LDADD = libweft.la
bench_chan_SOURCES = bench/chan.c bench/floors.c bench/bench.h bench/floor.S
bench_chan_LDADD = libweft.la
# Generators: a send/yield round trip beside the floor switch.
bench_gen_SOURCES = bench/gen.c bench/floors.c bench/bench.h bench/floor.S
bench_gen_LDADD = libweft.la
# The offload pool: a round trip beside a hand-written worker, lookups beside libc's.
EXTRA_PROGRAMS += bench/offload
BENCH_PROGS += bench/offload
bench_offload_SOURCES = bench/offload.c bench/bench.h
bench_offload_LDADD = libweft.la -lpthread

.PHONY: bench bench-programs
bench-programs: $(BENCH_PROGS)

bench:
	WEFT_SRCDIR='$(abs_top_srcdir)' WEFT_BUILDDIR='$(abs_top_builddir)' \
	  $(SHELL) '$(abs_top_srcdir)/bench/run.sh'

# The HTTP benchmark (bench/README-http.md): examples/httpd against a hand-written epoll
# server (and Go's net/http, when go is installed), driven by wrk. make bench-http.
EXTRA_PROGRAMS += bench/epoll_httpd
bench_epoll_httpd_SOURCES = bench/epoll_httpd.c examples/http.h
CLEANFILES += bench/epoll_httpd$(EXEEXT)
EXTRA_DIST += bench/http.sh bench/serverlib.sh bench/README-http.md bench/go/nethttp/main.go bench/go/raw/main.go

.PHONY: bench-http
bench-http: examples/httpd$(EXEEXT) bench/epoll_httpd$(EXEEXT)
	WEFT_BUILDDIR='$(abs_top_builddir)' WEFT_SRCDIR='$(abs_top_srcdir)' $(SHELL) $(top_srcdir)/bench/http.sh

# Channels beside Go (bench/chan.sh): bench/chan and bench/go/chan interleaved. make bench-chan.
EXTRA_DIST += bench/go/chan/main.go
.PHONY: bench-chan
bench-chan: bench/chan$(EXEEXT)
	WEFT_BUILDDIR='$(abs_top_builddir)' WEFT_SRCDIR='$(abs_top_srcdir)' $(SHELL) $(top_srcdir)/bench/chan.sh

# Delayed calls: weft_after + reset + stop beside one sleeping task per timer. make bench/after.
EXTRA_PROGRAMS += bench/after
CLEANFILES += bench/after$(EXEEXT)
bench_after_SOURCES = bench/after.c bench/bench.h
bench_after_LDADD = libweft.la
# Child processes: spawn + wait of /bin/true through weft_proc beside posix_spawn + waitpid.
BENCH_PROGS += bench/proc
bench_proc_SOURCES = bench/proc.c bench/bench.h
bench_proc_LDADD = libweft.la
# examples/kv against redis-server, driven by redis-benchmark (bench/kv.sh). make bench-kv.
EXTRA_DIST += bench/kv.sh
.PHONY: bench-kv
bench-kv: examples/kv$(EXEEXT)
	WEFT_BUILDDIR='$(abs_top_builddir)' WEFT_SRCDIR='$(abs_top_srcdir)' $(SHELL) $(top_srcdir)/bench/kv.sh
# Cold spawn beside the page-fault floor (bench/cold.c): make bench/cold && ./bench/cold.
BENCH_PROGS += bench/cold
bench_cold_SOURCES = bench/cold.c bench/bench.h
bench_cold_LDADD = libweft.la
# The long soak (bench/soak.sh): httpd, echo and proxy under tests/soakload for SOAK_SECONDS
# each, fds and RSS every SOAK_INTERVAL s, then a burst of SOAK_BURST connections. make bench-soak.
EXTRA_DIST += bench/soak.sh
.PHONY: bench-soak
bench-soak: examples/httpd$(EXEEXT) examples/echo$(EXEEXT) examples/proxy$(EXEEXT) tests/soakload$(EXEEXT)
	WEFT_BUILDDIR='$(abs_top_builddir)' WEFT_SRCDIR='$(abs_top_srcdir)' $(SHELL) $(top_srcdir)/bench/soak.sh

# httpd --threads 1 against --threads 2 (bench/threads.sh; README.md "One loop per core"),
# driven by wrk like bench-http. make bench-threads.
EXTRA_DIST += bench/threads.sh
.PHONY: bench-threads
bench-threads: examples/httpd$(EXEEXT)
	WEFT_BUILDDIR='$(abs_top_builddir)' WEFT_SRCDIR='$(abs_top_srcdir)' $(SHELL) $(top_srcdir)/bench/threads.sh

# Idle keep-alive connections (bench/idle.sh): examples/httpd's RSS per idle connection and
# its CPU time while they idle, driven by bench/idleload (one epoll process; tests/idle.test
# runs it too, so make check builds it). make bench-idle; IDLE_CONNS, IDLE_SECONDS.
check_PROGRAMS += bench/idleload
bench_idleload_SOURCES = bench/idleload.c
EXTRA_DIST += bench/idle.sh
.PHONY: bench-idle
bench-idle: examples/httpd$(EXEEXT) bench/idleload$(EXEEXT)
	WEFT_BUILDDIR='$(abs_top_builddir)' WEFT_SRCDIR='$(abs_top_srcdir)' $(SHELL) $(top_srcdir)/bench/idle.sh

# Shared channels across threads beside mutex+condvar and eventfd ping-pongs.
BENCH_PROGS += bench/xchan
bench_xchan_SOURCES = bench/xchan.c bench/floors.c bench/bench.h bench/floor.S
bench_xchan_LDADD = libweft.la -lpthread
# Timers at scale (bench/timers.c): the timing wheel alone at 1,000 to 1,000,000 timers beside
# the two heaps it replaced, then sleeping tasks and delayed calls end to end.
BENCH_PROGS += bench/timers
bench_timers_SOURCES = bench/timers.c bench/timers_binheap.h bench/timers_keyed4.h bench/bench.h \
	src/timer.c
bench_timers_LDADD = libweft.la
