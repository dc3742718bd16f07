# examples/: small programs that show weft in use; the demo is the Quickstart's.
noinst_PROGRAMS += examples/demo
examples_demo_SOURCES = examples/demo.c
examples_demo_LDADD = libweft.la

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
