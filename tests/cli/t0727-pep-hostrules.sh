#!/bin/sh
# The PEP end to end: host rules (*. and **. wildcards, ports, deny wins, IDN, case).
# Data-driven: tests/pep/e2e/hostrules.json (cases run by tests/pep/corpus.py against the real
# `pexi pep` daemon and the recording loopback upstream tests/pep/upstream.py).
. "$(dirname "$0")/lib.sh"
require_programs python3 openssl
python3 "$PEXI_SRC/tests/pep/corpus.py" "$PEXI_SRC/tests/pep/e2e/hostrules.json"
