/* kiln base: the one header modules include for errors, buffers, vectors, cleanup and fs helpers. */
#ifndef KILN_BASE_H
#define KILN_BASE_H

#include "base/buf.h"
#include "base/cleanup.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/platform.h"
#include "base/strv.h"
#include "base/xalloc.h"

#define KN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
