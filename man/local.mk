# man/: the manual pages, a page per call or small group of calls in man3 (with a .so alias
# page for every other public name), weft(7) the overview and weft-dump(1). Installed under
# $(mandir) by pattern, so a new page needs no edit here; tests/man.test checks them.
dist_man1_MANS = $(wildcard $(srcdir)/man/man1/*.1)
dist_man3_MANS = $(wildcard $(srcdir)/man/man3/*.3)
dist_man7_MANS = $(wildcard $(srcdir)/man/man7/*.7)
