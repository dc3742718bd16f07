# examples/: small programs that show weft in use; the demo is the Quickstart's.
noinst_PROGRAMS += examples/demo
examples_demo_SOURCES = examples/demo.c
examples_demo_LDADD = libweft.la

.PHONY: demo
demo: examples/demo$(EXEEXT)
	./examples/demo$(EXEEXT)
