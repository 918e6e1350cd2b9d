"""Documentation rules: what marts.md promises every consumer-facing model declares.

marts.md: every mart has its grain declared and a description for every column. The model's own
grain, owner and description are required of every model so lineage and `sqlmesh ui` explain it.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp

from sqlmesh.core.linter.rule import Rule, RuleViolation
from sqlmesh.core.model import ExternalModel, Model

MARTS_SCHEMA = "MARTS"


class MartColumnsDocumented(Rule):
    """Every column of a mart has a non-empty description (column_descriptions or an inline comment)."""

    def check_model(self, model: Model) -> t.Optional[RuleViolation]:
        if isinstance(model, ExternalModel) or exp.to_table(model.fqn).db.upper() != MARTS_SCHEMA:
            return None
        descriptions = {name.upper(): text for name, text in (model.column_descriptions or {}).items()}
        columns = list(model.columns_to_types or {})
        missing = [c for c in columns if not (descriptions.get(c.upper()) or "").strip()]
        if missing:
            return self.violation(f"Mart {model.name} has columns without a description: {', '.join(missing)}.")
        return None


class ModelContractDeclared(Rule):
    """Every model declares its grain, owner and description."""

    def check_model(self, model: Model) -> t.Optional[RuleViolation]:
        if isinstance(model, ExternalModel) or model.kind.is_symbolic:
            return None
        missing = [
            name
            for name, present in (
                ("grain", bool(model.grains)),
                ("owner", bool(model.owner)),
                ("description", bool((model.description or "").strip())),
            )
            if not present
        ]
        if missing:
            return self.violation(f"Model {model.name} does not declare: {', '.join(missing)}.")
        return None
