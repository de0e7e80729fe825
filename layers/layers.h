/* kiln layers: the local content store (OCI image layout), images, layer tars, archives. */
#ifndef KILN_LAYERS_H
#define KILN_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/base.h"

/* ==== store, images, cache, archives (store helper) ========================================== */
/* KILN-LAYERS-STORE-API */

/* ==== layer tars: diff, compression, apply, snapshots (layer helper) ========================= */
/* KILN-LAYERS-LAYER-API */

#endif
