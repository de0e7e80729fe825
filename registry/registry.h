/* kiln registry: distribution v2 client (references, transport, auth, pull, push). */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "layers/layers.h"

/* ==== references, transport, auth, credentials (transport helper) ============================ */
/* KILN-REGISTRY-TRANSPORT-API */

/* ==== pull and push (transfer helper) ========================================================== */
/* KILN-REGISTRY-TRANSFER-API */

#endif
