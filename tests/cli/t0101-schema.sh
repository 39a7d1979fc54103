#!/bin/sh
# pexi.schema.json: a valid draft 2020-12 schema, closed (additionalProperties: false) on
# every object, that accepts the shipped example and recipes and rejects typos. Checked
# with Python's jsonschema and PyYAML, independent of pexi's own parser.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || skip_all "needs /usr/bin/python3 (Debian python3), which is not installed"
"$PY" -c 'import jsonschema, yaml' 2>/dev/null ||
	skip_all "needs python3-jsonschema and python3-yaml (apt-get install python3-jsonschema python3-yaml)"

SCHEMA=$PEXI_SRC/pexi.schema.json
export SCHEMA

# Validates YAML file $1 against the schema; $2 = "recipe" drops the manifest's required
# keys, because a recipe is a partial manifest.
schema_check() {
	"$PY" - "$@" <<-\PYEOF
	import json, os, sys, yaml, jsonschema
	schema = json.load(open(os.environ["SCHEMA"]))
	if len(sys.argv) > 2 and sys.argv[2] == "recipe":
	    schema.pop("required", None)
	doc = yaml.safe_load(open(sys.argv[1]))
	errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
	for e in errors:
	    print("%s: %s" % ("/".join(map(str, e.absolute_path)), e.message), file=sys.stderr)
	sys.exit(1 if errors else 0)
	PYEOF
}

test_expect_success 'the schema is a valid draft 2020-12 schema' '
	"$PY" -c "import json, jsonschema, os; s = json.load(open(os.environ[\"SCHEMA\"])); jsonschema.Draft202012Validator.check_schema(s); assert s[\"\$schema\"].endswith(\"2020-12/schema\")"
'
test_expect_success 'every object in the schema is closed and every property described' '
	"$PY" - <<-\PYEOF
	import json, os
	def walk(node, path):
	    if isinstance(node, dict):
	        if "properties" in node:
	            assert node.get("additionalProperties") is False, path
	            for k, v in node["properties"].items():
	                assert v.get("description"), path + "/" + k
	        for k, v in node.items():
	            walk(v, path + "/" + k)
	    elif isinstance(node, list):
	        for i, v in enumerate(node):
	            walk(v, "%s/%d" % (path, i))
	walk(json.load(open(os.environ["SCHEMA"])), "")
	PYEOF
'
test_expect_success 'pexi.yml.example satisfies the schema' 'schema_check "$PEXI_SRC/pexi.yml.example"'
test_expect_success 'recipes/alpine-minimal.yml satisfies the schema' \
	'schema_check "$PEXI_SRC/recipes/alpine-minimal.yml" recipe'
test_expect_success 'recipes/alpine-firefox.yml satisfies the schema' \
	'schema_check "$PEXI_SRC/recipes/alpine-firefox.yml" recipe'
test_expect_success 'a manifest using every section satisfies both the schema and pexi' '
	schema_check "$PEXI_SRC/tests/fuzz/corpus/manifest/full.yml" &&
	"$PEXI" validate -f "$PEXI_SRC/tests/fuzz/corpus/manifest/full.yml" >/dev/null
'
test_expect_success 'the schema rejects an unknown key, as pexi does' '
	! schema_check "$PEXI_SRC/tests/fuzz/corpus/manifest/bad-unknown-key.yml" 2>err &&
	grep -q "pakages" err &&
	! "$PEXI" validate -f "$PEXI_SRC/tests/fuzz/corpus/manifest/bad-unknown-key.yml" 2>/dev/null
'
test_expect_success 'the schema rejects a bad URL, a short digest and a bad size' '
	! schema_check "$PEXI_SRC/tests/fuzz/corpus/manifest/bad-values.yml" 2>err &&
	grep -q "base/url" err && grep -q "base/sha256" err && grep -q "disk/size" err
'
test_expect_success 'the schema requires base.url and base.sha256' '
	printf "name: x\nbase: {url: https://example.org/a}\n" >nosha.yml &&
	! schema_check nosha.yml 2>err && grep -q "sha256" err
'
test_done
