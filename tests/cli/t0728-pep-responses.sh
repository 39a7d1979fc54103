#!/bin/sh
# The PEP end to end: what comes back (whole bodies, hop-by-hop headers dropped, encodings
# passed through, interim responses) and TLS (name checks, IP SANs, https hops).
# Data-driven: tests/pep/e2e/responses.json (cases run by tests/pep/corpus.py against the
# real `pexi pep` daemon and the recording loopback upstream tests/pep/upstream.py).
. "$(dirname "$0")/lib.sh"
require_programs python3 openssl
python3 "$PEXI_SRC/tests/pep/corpus.py" "$PEXI_SRC/tests/pep/e2e/responses.json"
