# tools/: the task-dump CLI and the gdb helper.
bin_SCRIPTS += tools/weft-dump
dist_pkgdata_DATA = tools/weft-gdb.py
EXTRA_DIST += tools/weft-dump

# weft-wrap-flags prints the link-time wrapping flags (docs/wrap.md). It reads them from the
# installed weft.pc, whose place is filled in here.
bin_SCRIPTS += tools/weft-wrap-flags
CLEANFILES += tools/weft-wrap-flags
EXTRA_DIST += tools/weft-wrap-flags.in docs/wrap.md
tools/weft-wrap-flags: $(srcdir)/tools/weft-wrap-flags.in Makefile
	$(AM_V_GEN)$(MKDIR_P) tools && \
	sed -e 's|@pkgconfigdir[@]|$(pkgconfigdir)|g' $(srcdir)/tools/weft-wrap-flags.in >$@.tmp && \
	chmod +x $@.tmp && mv -f $@.tmp $@
