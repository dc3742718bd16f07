# tests/: one Check suite per module, run by make check.
if HAVE_CHECK
TEST_LIBS = libweft.la $(CHECK_LIBS)
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)

# The reactor and IO wrappers (check_io, check_reactor) and the net helpers (check_net).
check_PROGRAMS += tests/check_io tests/check_reactor tests/check_net
TESTS += tests/check_io tests/check_reactor tests/check_net
tests_check_io_SOURCES = tests/check_io.c tests/iotest.h tests/testutil.h
tests_check_io_CFLAGS = $(TEST_CFLAGS)
tests_check_io_LDADD = $(TEST_LIBS)
tests_check_reactor_SOURCES = tests/check_reactor.c tests/iotest.h tests/testutil.h
tests_check_reactor_CFLAGS = $(TEST_CFLAGS)
tests_check_reactor_LDADD = $(TEST_LIBS)
tests_check_net_SOURCES = tests/check_net.c tests/iotest.h tests/testutil.h
tests_check_net_CFLAGS = $(TEST_CFLAGS)
tests_check_net_LDADD = $(TEST_LIBS)
endif
