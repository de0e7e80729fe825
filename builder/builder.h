/* kiln builder: plans and runs Dockerfile builds in namespaced sandboxes. */
#ifndef KILN_BUILDER_H
#define KILN_BUILDER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "layers/layers.h"
#include "parser/parser.h"

/* KILN-BUILDER-API */

#endif
