"""Each enumeration of accepted values (plans, event types, roles, statuses) is written once, in
config.yaml's `variables`, and every audit of it reads that list: a value added to one copy and
not another would make staging and the marts disagree about what is valid."""

from __future__ import annotations

from pathlib import Path

from sqlglot import exp
from sqlmesh import Context

REPO = Path(__file__).resolve().parents[2]


def test_every_accepted_values_audit_reads_a_list_defined_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path))  # nothing is opened; keep it off the demo
    context = Context(paths=[REPO], gateway="local")
    lists = {name: value for name, value in context.config.variables.items() if isinstance(value, list)}
    assert {"organization_plans", "event_types", "user_roles", "user_statuses", "invoice_statuses"} <= set(lists)
    assert len({tuple(v) for v in lists.values()}) == len(lists), "two variables hold the same list"

    by_list: dict[str, list[str]] = {}
    for model in context.models.values():
        for audit, args in model.audits:
            if not audit.startswith("accepted_values") or "is_in" not in args:
                continue
            written = args["is_in"]
            if isinstance(written, exp.Tuple):
                values = [e.name for e in written.expressions]
                assert values not in lists.values(), (
                    f"{model.name}: {audit} spells out {values}; use @VAR of the config.yaml list")
                continue
            # @VAR('name'): the one definition
            assert written.sql().upper().startswith("@VAR("), written.sql()
            name = written.sql().split("'")[1]
            assert name in lists, f"{model.name}: {audit} reads unknown variable {name!r}"
            by_list.setdefault(name, []).append(model.name)
            # and it renders to that list, in that order
            audit_obj, audit_args = next((a, kw) for a, kw in model.audits_with_args
                                         if a.name == audit and kw.get("column") == args.get("column"))
            query = model.render_audit_query(audit_obj, **audit_args).sql()
            assert ", ".join(f"'{v}'" for v in lists[name]) in query, query
    # Each shared list is read by staging and the mart alike.
    for name in ("organization_plans", "event_types", "user_roles", "user_statuses", "invoice_statuses"):
        layers = {m.split(".")[0] for m in by_list.get(name, [])}
        assert {"staging", "marts"} <= layers, (name, by_list.get(name))
