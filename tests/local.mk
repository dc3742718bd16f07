# tests/: one Check suite per module, run by make check. CHECK_SUITES lists the Check
# programs, which tools/dev also runs under Valgrind.
CHECK_SUITES =
EXTRA_DIST += tests/testutil.h tests/valgrind.sh
if HAVE_CHECK
TEST_LIBS = libweft.la $(CHECK_LIBS)
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
endif
