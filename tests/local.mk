# tests/: one Check suite per module, run by make check. CHECK_SUITES lists the Check
# programs, which tools/dev also runs under Valgrind.
CHECK_SUITES =
# TSAN_SUITES: those tools/dev also runs under ThreadSanitizer (code on several threads).
TSAN_SUITES =
EXTRA_DIST += tests/testutil.h tests/valgrind.sh
if HAVE_CHECK
TEST_LIBS = libweft.la $(CHECK_LIBS)
TEST_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)

check_PROGRAMS += tests/check_sched tests/check_timer tests/check_stack tests/check_ctx
TESTS += tests/check_sched tests/check_timer tests/check_stack tests/check_ctx
CHECK_SUITES += tests/check_sched tests/check_timer tests/check_stack tests/check_ctx

check_PROGRAMS += tests/check_runnow
TESTS += tests/check_runnow
CHECK_SUITES += tests/check_runnow
tests_check_runnow_SOURCES = tests/check_runnow.c tests/eventlog.h tests/testutil.h
tests_check_runnow_CFLAGS = $(TEST_CFLAGS)
tests_check_runnow_LDADD = $(TEST_LIBS)

tests_check_sched_SOURCES = tests/check_sched.c tests/eventlog.h tests/testutil.h
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

# The reactor and IO wrappers (check_io, check_reactor) and the net helpers (check_net).
check_PROGRAMS += tests/check_io tests/check_reactor tests/check_net tests/check_fd tests/check_fork \
	tests/check_dump_threads
TESTS += tests/check_io tests/check_reactor tests/check_net tests/check_fd tests/check_fork \
	tests/check_dump_threads
CHECK_SUITES += tests/check_io tests/check_reactor tests/check_net tests/check_fd tests/check_fork \
	tests/check_dump_threads
tests_check_io_SOURCES = tests/check_io.c tests/iotest.h tests/testutil.h
tests_check_io_CFLAGS = $(TEST_CFLAGS)
tests_check_io_LDADD = $(TEST_LIBS)
tests_check_reactor_SOURCES = tests/check_reactor.c tests/iotest.h tests/testutil.h
tests_check_reactor_CFLAGS = $(TEST_CFLAGS)
tests_check_reactor_LDADD = $(TEST_LIBS)
tests_check_net_SOURCES = tests/check_net.c tests/iotest.h tests/testutil.h
tests_check_net_CFLAGS = $(TEST_CFLAGS)
tests_check_net_LDADD = $(TEST_LIBS)
# weft/posix.h: plain POSIX calls mapped to the wrappers.
check_PROGRAMS += tests/check_posix
TESTS += tests/check_posix
CHECK_SUITES += tests/check_posix
tests_check_posix_SOURCES = tests/check_posix.c tests/testutil.h
tests_check_posix_CFLAGS = $(TEST_CFLAGS)
tests_check_posix_LDADD = $(TEST_LIBS)
# fd records: close while woken, stale records after close(2), weft_fd_forget, teardown.
tests_check_fd_SOURCES = tests/check_fd.c tests/iotest.h tests/testutil.h
tests_check_fd_CFLAGS = $(TEST_CFLAGS)
tests_check_fd_LDADD = $(TEST_LIBS)
tests_check_fork_SOURCES = tests/check_fork.c tests/iotest.h tests/testutil.h
tests_check_fork_CFLAGS = $(TEST_CFLAGS)
tests_check_fork_LDADD = $(TEST_LIBS) -lpthread
tests_check_dump_threads_SOURCES = tests/check_dump_threads.c tests/iotest.h tests/testutil.h
tests_check_dump_threads_CFLAGS = $(TEST_CFLAGS)
tests_check_dump_threads_LDADD = $(TEST_LIBS) -lpthread
# The sync layer: wait queues, mutex, cond, wait group, semaphore, task group.
check_PROGRAMS += tests/check_sync
TESTS += tests/check_sync
CHECK_SUITES += tests/check_sync
tests_check_sync_SOURCES = tests/check_sync.c tests/iotest.h tests/testutil.h
tests_check_sync_CFLAGS = $(TEST_CFLAGS)
tests_check_sync_LDADD = $(TEST_LIBS)
endif

# Generators (src/gen.c): send/yield, close, blocking generators, the dump's gen-wait.
if HAVE_CHECK
check_PROGRAMS += tests/check_gen
TESTS += tests/check_gen
CHECK_SUITES += tests/check_gen
tests_check_gen_SOURCES = tests/check_gen.c tests/iotest.h tests/testutil.h
tests_check_gen_CFLAGS = $(TEST_CFLAGS)
tests_check_gen_LDADD = $(TEST_LIBS)
endif

# Link-time wrapping (src/wrap.c, docs/wrap.md). check_wrap calls libc by its own names and
# is linked with the wrap flags: once against the shared libweft, once (check_wrap_static)
# against libweft.a, where a libweft that called read by that name would recurse. Its calls
# under glibc's other names (__read_chk, fcntl64, ...) come from libwrapalt.a, compiled with
# _FORTIFY_SOURCE and a 64-bit off_t. wrap-symbols.test checks the list against the library;
# redis.test runs examples/redis-fanout against a redis-server of its own.
TEST_LOG_COMPILER = $(SHELL)
TESTS += tests/wrap-symbols.test tests/redis.test
EXTRA_DIST += tests/wrap-symbols.test tests/redis.test
if HAVE_CHECK
check_LIBRARIES = tests/libwrapalt.a
tests_libwrapalt_a_SOURCES = tests/wrap_alt.c tests/wrap_alt.h
tests_libwrapalt_a_CFLAGS = $(AM_CFLAGS) -O2 -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2 -D_FILE_OFFSET_BITS=64
check_PROGRAMS += tests/check_wrap tests/check_wrap_static
tests_check_wrap_SOURCES = tests/check_wrap.c tests/testutil.h
tests_check_wrap_CFLAGS = $(TEST_CFLAGS)
tests_check_wrap_LDFLAGS = $(AM_LDFLAGS) $(WEFT_WRAP_LDFLAGS)
tests_check_wrap_LDADD = tests/libwrapalt.a $(TEST_LIBS)
tests_check_wrap_static_SOURCES = $(tests_check_wrap_SOURCES)
tests_check_wrap_static_CFLAGS = $(TEST_CFLAGS)
tests_check_wrap_static_LDFLAGS = $(AM_LDFLAGS) -static $(WEFT_WRAP_LDFLAGS)
tests_check_wrap_static_LDADD = $(tests_check_wrap_LDADD)
TESTS += tests/check_wrap tests/check_wrap_static
CHECK_SUITES += tests/check_wrap tests/check_wrap_static
endif

# x86-64 CET: the context switch's object keeps a library built with -fcf-protection marked
# for IBT (and never for shadow stacks), and libweft's objects are built for IBT.
TESTS += tests/cet-note.test

# The task dump (src/dump.c, docs/dump.md): the Check suite, and tools/weft-dump and
# tools/weft-gdb.py run against a live process, tests/dump_target.
if HAVE_CHECK
check_PROGRAMS += tests/check_dump
tests_check_dump_SOURCES = tests/check_dump.c tests/testutil.h
tests_check_dump_CFLAGS = $(TEST_CFLAGS)
tests_check_dump_LDADD = $(TEST_LIBS) -lpthread
TESTS += tests/check_dump
CHECK_SUITES += tests/check_dump
endif
check_PROGRAMS += tests/dump_target
tests_dump_target_SOURCES = tests/dump_target.c
tests_dump_target_LDADD = libweft.la -lpthread
TESTS += tests/dump-cli.test tests/dump-gdb.test tests/layers.test
EXTRA_DIST += tests/dump-cli.test tests/dump-gdb.test tests/layers.test
# The sampling profiler (src/dump_profile.c) and weft-dump --top, against tests/top_target:
# two tasks spinning 3:1.
check_PROGRAMS += tests/top_target
tests_top_target_SOURCES = tests/top_target.c
tests_top_target_LDADD = libweft.la -lpthread
TESTS += tests/top.test
EXTRA_DIST += tests/top.test

# A framework-free smoke test of the context layer, for cross builds run under qemu-user
# (.ci/aarch64.sh, `make tests/ctx_smoke`); make check builds it, so a native build catches
# what breaks it, but does not run it (the suites go deeper).
check_PROGRAMS += tests/ctx_smoke
tests_ctx_smoke_SOURCES = tests/ctx_smoke.c
tests_ctx_smoke_LDADD = libweft.la -lm
tests_ctx_smoke_LDFLAGS = $(AM_LDFLAGS) -static     # it reads the task record: libweft.a

# Channels and select (src/chan.c).
if HAVE_CHECK
check_PROGRAMS += tests/check_chan
TESTS += tests/check_chan
CHECK_SUITES += tests/check_chan
tests_check_chan_SOURCES = tests/check_chan.c tests/iotest.h tests/testutil.h
tests_check_chan_CFLAGS = $(TEST_CFLAGS)
tests_check_chan_LDADD = $(TEST_LIBS)
# The offload pool (src/offload.c): deadlines, cancels, discard, batching, threads, fork.
check_PROGRAMS += tests/check_offload
TESTS += tests/check_offload
CHECK_SUITES += tests/check_offload
TSAN_SUITES += tests/check_offload tests/check_fs tests/check_dns
tests_check_offload_SOURCES = tests/check_offload.c tests/testutil.h
tests_check_offload_CFLAGS = $(TEST_CFLAGS)
tests_check_offload_LDADD = $(TEST_LIBS) -lpthread
# Fault injection (tests/fault.c): libweft's static archive linked with --wrap on its
# allocations and system calls, so that each one in turn can be made to fail.
FAULT_WRAPS = malloc calloc realloc syscall mmap mprotect madvise epoll_create1 epoll_ctl \
	epoll_wait eventfd socket pipe2 pthread_create
check_PROGRAMS += tests/fault
TESTS += tests/fault
tests_fault_SOURCES = tests/fault.c
tests_fault_CFLAGS = $(AM_CFLAGS)
tests_fault_LDFLAGS = $(AM_LDFLAGS) -static $(patsubst %,-Wl$(comma)--wrap=%,$(FAULT_WRAPS))
tests_fault_LDADD = libweft.la -lpthread
comma = ,
# Exhaustion and interruption: signal storms, timers due together, EMFILE, stalled readers.
check_PROGRAMS += tests/check_exhaust
TESTS += tests/check_exhaust
CHECK_SUITES += tests/check_exhaust
tests_check_exhaust_SOURCES = tests/check_exhaust.c tests/iotest.h tests/testutil.h
tests_check_exhaust_CFLAGS = $(TEST_CFLAGS)
tests_check_exhaust_LDADD = $(TEST_LIBS) -lpthread
# File calls through the pool (src/offload_fs.c): errors, bad input, large IO, deadline, cancel.
check_PROGRAMS += tests/check_fs
TESTS += tests/check_fs
CHECK_SUITES += tests/check_fs
tests_check_fs_SOURCES = tests/check_fs.c tests/testutil.h
tests_check_fs_CFLAGS = $(TEST_CFLAGS)
tests_check_fs_LDADD = $(TEST_LIBS) -lpthread
# Name lookups through the pool and the net helpers with names (src/offload_dns.c, offload_net.c).
check_PROGRAMS += tests/check_dns
TESTS += tests/check_dns
CHECK_SUITES += tests/check_dns
tests_check_dns_SOURCES = tests/check_dns.c tests/testutil.h
tests_check_dns_CFLAGS = $(TEST_CFLAGS)
tests_check_dns_LDADD = $(TEST_LIBS) -lpthread
endif

# Signals as events (src/signal.c) and delayed calls (src/after.c).
if HAVE_CHECK
check_PROGRAMS += tests/check_signal
TESTS += tests/check_signal
CHECK_SUITES += tests/check_signal
tests_check_signal_SOURCES = tests/check_signal.c tests/testutil.h
tests_check_signal_CFLAGS = $(TEST_CFLAGS)
tests_check_signal_LDADD = $(TEST_LIBS) -lpthread
check_PROGRAMS += tests/check_after
TESTS += tests/check_after
CHECK_SUITES += tests/check_after
tests_check_after_SOURCES = tests/check_after.c tests/testutil.h
tests_check_after_CFLAGS = $(TEST_CFLAGS)
tests_check_after_LDADD = $(TEST_LIBS) -lpthread
endif

# Child processes (src/proc.c): spawn, pipes, waits on pidfds, kill, run, no zombies.
if HAVE_CHECK
check_PROGRAMS += tests/check_proc
TESTS += tests/check_proc
CHECK_SUITES += tests/check_proc
tests_check_proc_SOURCES = tests/check_proc.c tests/iotest.h tests/testutil.h
tests_check_proc_CFLAGS = $(TEST_CFLAGS)
tests_check_proc_LDADD = $(TEST_LIBS)
endif

# The manual pages (man/): a page or alias for every public name of weft.h, each rendered by
# groff without a warning, SYNOPSIS and ERRORS as the header says, EXAMPLEs that compile.
TESTS += tests/man.test
# The grouped dump and the folded stacks (src/dump_group.c).
if HAVE_CHECK
check_PROGRAMS += tests/check_dump_group
tests_check_dump_group_SOURCES = tests/check_dump_group.c tests/testutil.h
tests_check_dump_group_CFLAGS = $(TEST_CFLAGS)
tests_check_dump_group_LDADD = $(TEST_LIBS) -lpthread
TESTS += tests/check_dump_group
CHECK_SUITES += tests/check_dump_group
endif

# The ABI (docs/abi.md): libweft.so exports exactly what the header declares, versioned.
check_PROGRAMS += tests/abi_version
tests_abi_version_SOURCES = tests/abi_version.c
tests_abi_version_LDADD = libweft.la
TESTS += tests/abi.test
EXTRA_DIST += tests/abi.test
# Randomized schedules (tests/check_random.c): seeded random mixes of tasks, fd waits,
# deadlines, cancels, channels and locks, every result checked; WEFT_RANDOM_SEED=N reruns one.
if HAVE_CHECK
check_PROGRAMS += tests/check_random
TESTS += tests/check_random
CHECK_SUITES += tests/check_random
tests_check_random_SOURCES = tests/check_random.c tests/iotest.h tests/testutil.h
tests_check_random_CFLAGS = $(TEST_CFLAGS)
tests_check_random_LDADD = $(TEST_LIBS)
endif
# Fuzz harnesses (tests/fuzz/): tests/fuzz/run.sh fuzzes them with clang's libFuzzer;
# here, plain builds replay the committed corpus of each (tests/fuzz/corpus.test).
check_PROGRAMS += tests/fuzz/replay_http tests/fuzz/replay_io tests/fuzz/replay_resp
tests_fuzz_replay_resp_SOURCES = tests/fuzz/fuzz_resp.c tests/fuzz/replay.c examples/resp.h
tests_fuzz_replay_http_SOURCES = tests/fuzz/fuzz_http.c tests/fuzz/replay.c examples/http.h
tests_fuzz_replay_io_SOURCES = tests/fuzz/fuzz_io.c tests/fuzz/replay.c
tests_fuzz_replay_io_LDADD = libweft.la
TESTS += tests/fuzz/corpus.test
EXTRA_DIST += tests/fuzz/corpus.test tests/fuzz/run.sh tests/fuzz/corpus
# examples/kv, the Redis-protocol server, driven by redis-cli (skipped without redis-tools).
TESTS += tests/kv.test
EXTRA_DIST += tests/kv.test

# examples/resp.h, kv's request parser: every split of the input, errors, limits, random bytes.
if HAVE_CHECK
check_PROGRAMS += tests/check_resp
TESTS += tests/check_resp
CHECK_SUITES += tests/check_resp
tests_check_resp_SOURCES = tests/check_resp.c examples/resp.h tests/testutil.h
tests_check_resp_CFLAGS = $(TEST_CFLAGS)
tests_check_resp_LDADD = $(TEST_LIBS)
endif

# One weft loop per thread: httpd, echo and proxy with --threads 2 (examples/shutdown.h),
# their dump with two scheduler threads, and SIGTERM stopping both loops.
TESTS += tests/threads.test
EXTRA_DIST += tests/threads.test
# examples/httpd holding 2,000 idle keep-alive connections from bench/idleload (built by
# bench/local.mk), then answering a random sample of them (bench/idle.sh measures it).
TESTS += tests/idle.test
EXTRA_DIST += tests/idle.test
# Shared channels, between threads.
check_PROGRAMS += tests/check_xchan
TESTS += tests/check_xchan
CHECK_SUITES += tests/check_xchan
TSAN_SUITES += tests/check_xchan
tests_check_xchan_SOURCES = tests/check_xchan.c tests/iotest.h tests/testutil.h
tests_check_xchan_CFLAGS = $(TEST_CFLAGS)
tests_check_xchan_LDADD = $(TEST_LIBS) -lpthread
