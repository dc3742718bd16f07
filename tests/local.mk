# tests/: one Check suite per module, run by make check.
if HAVE_CHECK
TEST_LIBS = libweft.la $(CHECK_LIBS)
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)

check_PROGRAMS += tests/check_sched tests/check_timer tests/check_stack tests/check_ctx
TESTS += tests/check_sched tests/check_timer tests/check_stack tests/check_ctx

tests_check_sched_SOURCES = tests/check_sched.c tests/testutil.h
tests_check_sched_CFLAGS = $(TEST_CFLAGS)
tests_check_sched_LDADD = $(TEST_LIBS) -lpthread

# The heap is internal (hidden in libweft), so this suite is built with its source; realloc
# is wrapped so the out-of-memory path can be exercised.
tests_check_timer_SOURCES = tests/check_timer.c tests/testutil.h src/timer.c
tests_check_timer_CFLAGS = $(TEST_CFLAGS)
tests_check_timer_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=realloc
tests_check_timer_LDADD = $(CHECK_LIBS)

tests_check_stack_SOURCES = tests/check_stack.c tests/testutil.h
tests_check_stack_CFLAGS = $(TEST_CFLAGS)
tests_check_stack_LDADD = $(TEST_LIBS) -lpthread

tests_check_ctx_SOURCES = tests/check_ctx.c tests/testutil.h
tests_check_ctx_CFLAGS = $(TEST_CFLAGS)
tests_check_ctx_LDADD = $(TEST_LIBS) -lm
endif
