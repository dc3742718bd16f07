# tools/: the task-dump CLI and the gdb helper.
