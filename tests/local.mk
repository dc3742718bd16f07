# tests/: one Check suite per module, run by make check.
if HAVE_CHECK
TEST_LIBS = libweft.la $(CHECK_LIBS)
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)

check_PROGRAMS += tests/check_dump
tests_check_dump_SOURCES = tests/check_dump.c tests/testutil.h
tests_check_dump_CFLAGS = $(TEST_CFLAGS)
tests_check_dump_LDADD = $(TEST_LIBS) -lpthread
TESTS += tests/check_dump
endif

# The live process tools/weft-dump is tested against, and the script that does it.
check_PROGRAMS += tests/dump_target
tests_dump_target_SOURCES = tests/dump_target.c
tests_dump_target_LDADD = libweft.la
TESTS += tests/dump_cli.sh tests/dump_gdb.sh
EXTRA_DIST += tests/dump_cli.sh tests/dump_gdb.sh
TESTS_ENVIRONMENT = top_srcdir='$(top_srcdir)'; export top_srcdir;
