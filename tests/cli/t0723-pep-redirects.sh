#!/bin/sh
# The PEP end to end: redirects followed by the PEP: every hop re-checked, method and credential rules.
# Data-driven: tests/pep/e2e/redirects.json (cases run by tests/pep/corpus.py against the real
# `pexi pep` daemon and the recording loopback upstream tests/pep/upstream.py).
. "$(dirname "$0")/lib.sh"
require_programs python3 openssl
python3 "$PEXI_SRC/tests/pep/corpus.py" "$PEXI_SRC/tests/pep/e2e/redirects.json"
