# tools/: the task-dump CLI and the gdb helper.
bin_SCRIPTS += tools/weft-dump
dist_pkgdata_DATA = tools/weft-gdb.py
EXTRA_DIST += tools/weft-dump
