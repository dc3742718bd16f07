/* Transitional: every layer's header at once, for code not yet moved to its own includes.
 * New code includes the headers of the layers it uses (DESIGN.md's table). */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <errno.h>
#include <signal.h>

#include "sys.h"
#include "sigfmt.h"
#include "backtrace.h"
#include "sched.h"
#include "reactor.h"
#include "dump.h"

#endif
