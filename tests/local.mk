# tests/: one Check suite per module, run by make check.
if HAVE_CHECK
TEST_LIBS = libweft.la $(CHECK_LIBS)
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
endif

# A framework-free smoke test of the context layer, for cross builds run under qemu-user
# (.ci/aarch64.sh); built on demand with `make tests/ctx_smoke`, never by make check.
EXTRA_PROGRAMS += tests/ctx_smoke
tests_ctx_smoke_SOURCES = tests/ctx_smoke.c
tests_ctx_smoke_LDADD = libweft.la -lm
CLEANFILES += tests/ctx_smoke$(EXEEXT)
