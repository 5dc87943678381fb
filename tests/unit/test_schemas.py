#!/usr/bin/env python3
"""Checks topics/ and the fixtures against each other with a real JSON Schema
validator (Debian's python3-jsonschema).

- every topics/<name>.json has the fields the build reads, with sane values,
  and its file name is its "name" plus ".json";
- every value_schema is a valid Draft 2020-12 schema whose "required" fields
  are all declared properties;
- every fixture under tests/fixtures/<topic>/valid/ validates against the
  value_schema of topics/<topic>.json (date-time formats checked), and stops
  validating when any required field is removed;
- every input topic has fixtures.

The encoders' output (DLQ, invalidations) is checked against the output
schemas by tests/unit/test_codec_out.c, which builds those records.

Prints "N passed, M failed" and exits non-zero on any failure.
"""

import glob
import json
import os
import re
import sys

import jsonschema

SRC = os.environ.get("RF_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

REQUIRED_FIELDS = ("id", "name", "doc", "key", "direction", "scope",
                   "partitions", "cleanup_policy", "retention_ms",
                   "value_schema")

# RFC 3339 date-time, as rf_time_parse() accepts it.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?"
                     r"([Zz]|[+-]\d{2}:\d{2})$")

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what)


def format_checker():
    """Draft 2020-12 format checker; date-time falls back to a regex when the
    optional rfc3339-validator module is missing."""
    cls = jsonschema.Draft202012Validator
    checker = getattr(cls, "FORMAT_CHECKER", None)
    if checker is None:
        checker = jsonschema.FormatChecker()
    try:
        import rfc3339_validator  # noqa: F401  (what jsonschema uses)
        return checker
    except ImportError:
        pass

    @checker.checks("date-time")
    def is_date_time(value):
        return not isinstance(value, str) or bool(RFC3339.match(value))

    return checker


def validator(schema):
    return jsonschema.Draft202012Validator(schema,
                                           format_checker=format_checker())


def errors(v, doc):
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)",
                        e.message) for e in v.iter_errors(doc)]


def check_topic_file(path, t):
    where = os.path.relpath(path, SRC)
    for f in REQUIRED_FIELDS:
        check(f in t, "%s: missing field %r" % (where, f))
    if not all(f in t for f in REQUIRED_FIELDS):
        return
    check(os.path.basename(path) == t["name"] + ".json",
          "%s: file name is not name + '.json' (%r)" % (where, t["name"]))
    check(isinstance(t["id"], str) and re.match(r"^[a-z][a-z0-9_]*$", t["id"]),
          "%s: id %r is not a C identifier in lower case" % (where, t["id"]))
    check(isinstance(t["name"], str) and
          re.match(r"^recs\.[a-z0-9-]+\.v[0-9]+$", t["name"]),
          "%s: name %r is not recs.<noun>.v<N>" % (where, t["name"]))
    check(isinstance(t["doc"], str) and len(t["doc"]) >= 10,
          "%s: doc is empty" % where)
    check(isinstance(t["key"], str) and t["key"] != "",
          "%s: key is empty" % where)
    check(t["direction"] in ("input", "output"),
          "%s: direction %r" % (where, t["direction"]))
    check(t["scope"] in ("subject", "item"),
          "%s: scope %r" % (where, t["scope"]))
    check(type(t["partitions"]) is int and 1 <= t["partitions"] <= 1024,
          "%s: partitions %r" % (where, t["partitions"]))
    check(t["cleanup_policy"] in ("delete", "compact", "compact,delete"),
          "%s: cleanup_policy %r" % (where, t["cleanup_policy"]))
    check(type(t["retention_ms"]) is int and
          (t["retention_ms"] == -1 or t["retention_ms"] >= 60000),
          "%s: retention_ms %r" % (where, t["retention_ms"]))

    s = t["value_schema"]
    check(isinstance(s, dict), "%s: value_schema is not an object" % where)
    if not isinstance(s, dict):
        return
    try:
        jsonschema.Draft202012Validator.check_schema(s)
        check(True, "")
    except jsonschema.SchemaError as e:
        check(False, "%s: value_schema: %s" % (where, e.message))
    check(s.get("$schema") ==
          "https://json-schema.org/draft/2020-12/schema",
          "%s: value_schema $schema is not Draft 2020-12" % where)
    check(s.get("type") == "object",
          "%s: value_schema type is not object" % where)
    props = s.get("properties", {})
    for r in s.get("required", []):
        check(r in props, "%s: required %r is not a property" % (where, r))
    if t["direction"] == "input":
        check(t["key"] in s.get("required", []),
              "%s: key field %r is not required" % (where, t["key"]))
        check(props.get(t["key"], {}).get("type") == "string",
              "%s: key field %r is not a string" % (where, t["key"]))


def main():
    topics = {}
    ids = set()
    for path in sorted(glob.glob(os.path.join(SRC, "topics", "*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                t = json.load(f)
        except (OSError, ValueError) as e:
            check(False, "%s: %s" % (path, e))
            continue
        check(isinstance(t, dict), "%s: not an object" % path)
        if not isinstance(t, dict):
            continue
        check_topic_file(path, t)
        name = t.get("name")
        check(name not in topics, "%s: duplicate name %r" % (path, name))
        check(t.get("id") not in ids, "%s: duplicate id %r" % (path,
                                                               t.get("id")))
        ids.add(t.get("id"))
        topics[name] = t
    check(len(topics) > 0, "no topics in %s/topics" % SRC)

    fixture_dirs = sorted(glob.glob(os.path.join(SRC, "tests", "fixtures",
                                                 "*", "valid")))
    with_fixtures = set()
    for d in fixture_dirs:
        name = os.path.basename(os.path.dirname(d))
        check(name in topics, "%s: no topics/%s.json" % (d, name))
        if name not in topics:
            continue
        schema = topics[name]["value_schema"]
        v = validator(schema)
        files = sorted(glob.glob(os.path.join(d, "*.json")))
        check(len(files) > 0, "%s: no fixtures" % d)
        for path in files:
            where = os.path.relpath(path, SRC)
            try:
                with open(path, encoding="utf-8") as f:
                    doc = json.load(f)
            except (OSError, ValueError) as e:
                check(False, "%s: %s" % (where, e))
                continue
            errs = errors(v, doc)
            check(not errs, "%s: %s" % (where, "; ".join(errs)))
            with_fixtures.add(name)
            # The schema is not vacuous: each required field matters.
            for r in schema.get("required", []):
                if r not in doc:
                    continue
                broken = dict(doc)
                del broken[r]
                check(not v.is_valid(broken),
                      "%s: still valid without %r" % (where, r))

    for name, t in sorted(topics.items()):
        if t.get("direction") == "input":
            check(name in with_fixtures,
                  "input topic %s has no tests/fixtures/%s/valid/*.json" %
                  (name, name))

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
