# examples/: small programs that show weft in use; the demo is the Quickstart's. The servers
# are checked end to end over real sockets by tests/*.test (listed here, with their client).
# -no-install: real executables in the build tree (no libtool wrapper script), so tests and
# the benchmark see the server's own pid.
noinst_PROGRAMS += examples/demo examples/echo examples/httpd examples/proxy examples/pipeline
examples_demo_SOURCES = examples/demo.c
examples_demo_LDADD = libweft.la
examples_demo_LDFLAGS = $(AM_LDFLAGS) -no-install
examples_echo_SOURCES = examples/echo.c examples/shutdown.h
examples_echo_LDADD = libweft.la
examples_echo_LDFLAGS = $(AM_LDFLAGS) -no-install
examples_httpd_SOURCES = examples/httpd.c examples/http.h examples/shutdown.h
examples_httpd_LDADD = libweft.la
examples_httpd_LDFLAGS = $(AM_LDFLAGS) -no-install
examples_proxy_SOURCES = examples/proxy.c examples/shutdown.h
examples_proxy_LDADD = libweft.la
examples_proxy_LDFLAGS = $(AM_LDFLAGS) -no-install
# pipeline: a bounded worker pool over channels (checksums files like cksum; tests/pipeline.test).
examples_pipeline_SOURCES = examples/pipeline.c
examples_pipeline_LDADD = libweft.la
examples_pipeline_LDFLAGS = $(AM_LDFLAGS) -no-install

.PHONY: demo
demo: examples/demo$(EXEEXT)
	./examples/demo$(EXEEXT)

# redis-fanout: hiredis's blocking API made cooperative by link-time wrapping (docs/wrap.md).
# hiredis is linked as its static archive, with the wrap flags; redis-fanout-nowrap is the
# same program without them, the control that tests/redis.test compares against.
if HAVE_HIREDIS
noinst_PROGRAMS += examples/redis-fanout examples/redis-fanout-nowrap
examples_redis_fanout_SOURCES = examples/redis-fanout.c
examples_redis_fanout_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS)
examples_redis_fanout_LDFLAGS = $(AM_LDFLAGS) $(WEFT_WRAP_LDFLAGS)
examples_redis_fanout_LDADD = $(HIREDIS_STATIC) libweft.la
examples_redis_fanout_nowrap_SOURCES = examples/redis-fanout.c
examples_redis_fanout_nowrap_CFLAGS = $(AM_CFLAGS) $(HIREDIS_CFLAGS)
examples_redis_fanout_nowrap_LDADD = $(HIREDIS_STATIC) libweft.la
endif

# End-to-end tests of the servers: shell scripts run by automake's test driver, each starting
# its servers on port 0 from $(builddir) (WEFT_BUILDDIR) and talking to them with
# tests/tcpclient (and curl, when installed). tests/local.mk sets TEST_LOG_COMPILER = $(SHELL).
check_PROGRAMS += tests/tcpclient
tests_tcpclient_SOURCES = tests/tcpclient.c
EXAMPLE_TESTS = tests/echo.test tests/httpd.test tests/httpd-curl.test tests/proxy.test tests/pipeline.test
# Graceful shutdown of the servers on SIGTERM / SIGINT (examples/shutdown.h).
EXAMPLE_TESTS += tests/shutdown.test
# The servers' header and idle deadlines (tests/deadlines.test), and the soak: the servers
# under load from tests/soakload mixed with misbehaving clients (tests/soak.test; SOAK_SECONDS
# scales it; bench/soak.sh is the long run).
EXAMPLE_TESTS += tests/deadlines.test tests/soak.test
# httpd at its fd limit: back-off at EMFILE, measured CPU, recovery.
EXAMPLE_TESTS += tests/emfile.test
check_PROGRAMS += tests/soakload
tests_soakload_SOURCES = tests/soakload.c
tests_soakload_LDADD = libweft.la
tests_soakload_LDFLAGS = $(AM_LDFLAGS) -no-install
TESTS += $(EXAMPLE_TESTS)
EXTRA_DIST += $(EXAMPLE_TESTS) tests/examples-lib.sh
AM_TESTS_ENVIRONMENT = WEFT_BUILDDIR='$(abs_top_builddir)'; WEFT_SRCDIR='$(abs_top_srcdir)'; \
	export WEFT_BUILDDIR WEFT_SRCDIR;

# prun: a parallel command runner over weft_proc (tests/prun.test).
noinst_PROGRAMS += examples/prun
examples_prun_SOURCES = examples/prun.c
examples_prun_LDADD = libweft.la
examples_prun_LDFLAGS = $(AM_LDFLAGS) -no-install
TESTS += tests/prun.test
EXTRA_DIST += tests/prun.test
# kv: a Redis-protocol key-value server (tests/kv.test with redis-cli; bench/kv.sh against
# redis-server). examples/resp.h is its request parser, header-only so a fuzzer can use it.
noinst_PROGRAMS += examples/kv
examples_kv_SOURCES = examples/kv.c examples/resp.h examples/shutdown.h
examples_kv_LDADD = libweft.la
examples_kv_LDFLAGS = $(AM_LDFLAGS) -no-install
