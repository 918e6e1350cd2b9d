"""Layering rule: RAW is read by staging models only, one source table each.

conventions.md: staging maps 1:1 to a source table and is the only layer that reads RAW. A mart
that reads RAW skips the renames, casts and deduplication staging does, so it silently disagrees
with every other mart.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp

from sqlmesh.core.linter.rule import Rule, RuleViolation
from sqlmesh.core.model import ExternalModel, Model

RAW_SCHEMA = "RAW"
STAGING_SCHEMA = "STAGING"


def _schema_of(table_name: str) -> str:
    return exp.to_table(table_name).db.upper()


class OnlyStagingReadsRaw(Rule):
    """Only staging models read RAW, and each staging model reads exactly one RAW table and no model."""

    def check_model(self, model: Model) -> t.Optional[RuleViolation]:
        if isinstance(model, ExternalModel) or model.kind.is_symbolic:
            return None

        raw_tables = sorted(
            dep
            for dep in model.depends_on
            if _schema_of(dep) == RAW_SCHEMA or isinstance(self.context.get_model(dep), ExternalModel)
        )
        # Seeds are reference data (units, code lists), not models of the business: a staging
        # model may look a unit up in one (the currency exponents), as it would cast a type.
        other_models = sorted(
            dep
            for dep in set(model.depends_on) - set(raw_tables)
            if not self.context.get_model(dep).kind.is_seed
        )
        is_staging = _schema_of(model.fqn) == STAGING_SCHEMA

        if not is_staging and raw_tables:
            return self.violation(
                f"{model.name} reads RAW ({', '.join(raw_tables)}); only staging models may. "
                "Read the staging model of that source instead."
            )
        if is_staging and (len(raw_tables) != 1 or other_models):
            return self.violation(
                f"Staging model {model.name} must read exactly one RAW table and no other model; "
                f"it reads RAW {raw_tables or 'none'} and models {other_models or 'none'}."
            )
        return None
