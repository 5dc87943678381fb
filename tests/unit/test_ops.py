#!/usr/bin/env python3
"""Checks the ops kit and the partitioning rules of topics/.

- topics/: the subject-scoped input topics all have the same partition
  count (co-partitioning: partition N of each holds the same subjects) and
  are keyed by a subject id; recs.members.v1 is compacted and keyed by
  instance_id;
- ops/recfresh.conf.example is exactly what `recfresh config --dump` prints
  with defaults (regenerate: build/recfresh config --dump >
  ops/recfresh.conf.example);
- ops/prometheus/recfresh-alerts.yml and ops/compose/docker-compose.yml
  parse as YAML, ops/grafana/recfresh.json as JSON; every alert has an
  expression, a severity and a runbook section that exists in
  ops/RUNBOOK.md; every recfresh_* metric they use is exported by the code;
- ops/recfresh.service is Type=notify and runs `recfresh run`.

Prints "N passed, M failed" and exits non-zero on any failure.
"""

import glob
import json
import os
import re
import subprocess
import sys

import yaml

SRC = os.environ.get("RF_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("RF_BUILD_DIR") or os.path.join(SRC, "build")

passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + msg)


def read(rel):
    with open(os.path.join(SRC, rel)) as f:
        return f.read()


# ---- topics/ partitioning ---------------------------------------------------
topics = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(SRC, "topics", "*.json")))]
subj = [t for t in topics if t["scope"] == "subject" and t["direction"] == "input"]
check(len(subj) >= 3, "expected lists, hides, consent as subject inputs")
counts = {t["name"]: t["partitions"] for t in subj}
check(len(set(counts.values())) == 1,
      "subject-scoped input topics must have one partition count: %s" % counts)
for t in subj:
    check(t["key"] in ("subject_id", "user_id"),
          "%s: subject topic keyed by %r, not a subject id" % (t["name"], t["key"]))
for t in topics:
    if t["scope"] == "subject" and t["direction"] == "output":
        check(t["partitions"] == next(iter(counts.values())),
              "%s: output keyed by subject should match the inputs' count"
              % t["name"])
members = [t for t in topics if t["id"] == "members"]
check(len(members) == 1 and members[0]["cleanup_policy"] == "compact" and
      members[0]["key"] == "instance_id", "recs.members.v1: compacted, keyed by instance_id")

# ---- generated example config -----------------------------------------------
exe = os.path.join(BUILD, "recfresh")
env = dict(os.environ)
env.pop("RECFRESH_CONFIG", None)
try:
    dump = subprocess.run([exe, "config", "--dump"], capture_output=True,
                          text=True, check=True, env=env, cwd="/").stdout
except (OSError, subprocess.CalledProcessError) as e:
    dump = None
    check(False, "cannot run %s config --dump: %s" % (exe, e))
if dump is not None:
    committed = read("ops/recfresh.conf.example")
    if committed != dump:
        a, b = committed.splitlines(), dump.splitlines()
        first = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]),
                     min(len(a), len(b)))
        check(False, "ops/recfresh.conf.example differs from `recfresh config "
              "--dump` at line %d (committed %r, generated %r); regenerate it: "
              "build/recfresh config --dump > ops/recfresh.conf.example"
              % (first + 1, a[first] if first < len(a) else None,
                 b[first] if first < len(b) else None))
    else:
        check(True, "")
    # every table option is in the example, with a doc comment above it
    names = re.findall(r"^([a-z_.]+) = ", dump, re.M)
    check(len(names) > 40, "dump lists the options")
    for n in ("http.advertise", "cluster.instance_id", "kafka.group_id"):
        check(n in names, "option %s in the example config" % n)

# ---- metric names exported ----------------------------------------------------
code = "".join(read(os.path.relpath(p, SRC)) for p in glob.glob(os.path.join(SRC, "src", "*.c")))


def exported(metric):
    base = re.sub(r"_(bucket|sum|count)$", "", metric)
    return '"%s' % metric in code or '"%s' % base in code


runbook = read("ops/RUNBOOK.md")
anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.+)$", runbook, re.M)}

# ---- Prometheus rules ---------------------------------------------------------
rules = yaml.safe_load(read("ops/prometheus/recfresh-alerts.yml"))
alerts = [r for g in rules["groups"] for r in g["rules"]]
check(len(alerts) >= 6, "alert rules present")
covered = " ".join(r["expr"] for r in alerts)
for m in ("recfresh_consumer_lag", "recfresh_dlq_records_total", "recfresh_ready",
          "recfresh_recompute_oldest_age_seconds", "recfresh_store_errors_total",
          "recfresh_fanout_jobs_pending", "recfresh_partition_ready"):
    check(m in covered, "an alert on %s" % m)
for r in alerts:
    check(r.get("alert") and r.get("expr") and r.get("labels", {}).get("severity"),
          "alert %r has alert, expr, severity" % r.get("alert"))
    rb = r.get("annotations", {}).get("runbook", "")
    check(rb.startswith("ops/RUNBOOK.md#") and rb.split("#", 1)[1] in anchors,
          "alert %s: runbook %r is a section of ops/RUNBOOK.md" % (r.get("alert"), rb))
    for m in set(re.findall(r"recfresh_[a-z0-9_]+", r["expr"])):
        check(exported(m), "alert %s uses %s, which no code exports" % (r["alert"], m))

# ---- Grafana dashboard --------------------------------------------------------
dash = json.loads(read("ops/grafana/recfresh.json"))
check(dash.get("panels") and dash.get("title"), "dashboard has panels")
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
check(len(exprs) >= 10, "dashboard queries")
for e in exprs:
    for m in set(re.findall(r"recfresh_[a-z0-9_]+", e)):
        check(exported(m), "dashboard uses %s, which no code exports" % m)

# ---- compose, systemd -----------------------------------------------------------
compose = yaml.safe_load(read("ops/compose/docker-compose.yml"))
svcs = compose.get("services", {})
check(sum(1 for s in svcs if s.startswith("kafka")) == 3, "3 Kafka brokers")
check(all("KAFKA_PROCESS_ROLES" in svcs[s]["environment"] for s in svcs
          if s.startswith("kafka")), "brokers run KRaft")
check("NOT EXERCISED BY CI" in read("ops/compose/docker-compose.yml") and
      "not exercised by CI" in runbook, "compose says CI does not run it")
unit = read("ops/recfresh.service")
check(re.search(r"^Type=notify$", unit, re.M) is not None, "Type=notify")
check(re.search(r"^ExecStart=\S*recfresh run\b", unit, re.M) is not None,
      "ExecStart runs recfresh run")
for sec in ("consumer-lag", "a-stuck-consumer", "a-bad-run-and-its-rollback",
            "replaying-an-incident", "rebuilding-a-partition",
            "consent-purge-audit"):
    check(sec in anchors, "runbook section %s" % sec)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
