#!/bin/sh
# The PEP end to end: size limits at the boundary and one past, stalls, endless bodies, resets.
# Data-driven: tests/pep/e2e/limits.json (cases run by tests/pep/corpus.py against the real
# `pexi pep` daemon and the recording loopback upstream tests/pep/upstream.py).
. "$(dirname "$0")/lib.sh"
require_programs python3 openssl
python3 "$PEXI_SRC/tests/pep/corpus.py" "$PEXI_SRC/tests/pep/e2e/limits.json"
