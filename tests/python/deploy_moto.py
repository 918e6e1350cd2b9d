"""Helpers for tests/python/test_deploy.py: the deploy templates against moto, and moto's gaps.

moto (5.2.5) implements only part of CloudFormation. Where it cannot create a resource type, or
silently ignores a property, the tests check the template instead and *say so by name* through
a `MotoGap` warning (listed in pytest's warnings summary), never by passing silently.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import moto
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO / "deploy"
LAYERS = ("bucket", "database", "server")


class MotoGap(UserWarning):
    """moto cannot do what the real CloudFormation does; the test checked the template instead."""


def report_gap(resource_type: str, what: str, checked_instead: str) -> None:
    warnings.warn(
        MotoGap(
            f"moto {moto.__version__}: {resource_type}: {what}; "
            f"the test checks instead: {checked_instead}"
        ),
        stacklevel=2,
    )


def _load_deploy_module():
    spec = importlib.util.spec_from_file_location("goodword_deploy", DEPLOY_DIR / "deploy.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


deploy_module = _load_deploy_module()


def load_template(layer: str) -> dict[str, Any]:
    """A template as data, short-form intrinsics expanded (!Ref x -> {"Ref": "x"})."""
    text = (DEPLOY_DIR / f"{layer}.yaml").read_text()
    return yaml.load(text, Loader=deploy_module._CfnLoader)  # noqa: S506 - SafeLoader subclass


def moto_cannot_create(resource_type: str) -> bool:
    """True when moto's CloudFormation has no model for this resource type (it would skip it
    with a warning, or fail on a GetAtt of it)."""
    from moto.cloudformation.parsing import resource_class_from_type

    return resource_class_from_type(resource_type) is None


def _references(node: Any) -> set[str]:
    """Logical IDs a template fragment refers to (Ref, GetAtt, ${X} / ${X.Attr} in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if isinstance(value, list):
                    found |= _references(value[1])
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def moto_variant(layer: str) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The layer's template minus what moto cannot create.

    Returns (template, gaps, dependents): `gaps` maps logical ID -> type of the resources moto has
    no model for; `dependents` the resources (and outputs) dropped because they refer to one.
    Everything else is deployed for real and asserted live.
    """
    template = json.loads(json.dumps(load_template(layer)))
    resources = template["Resources"]
    gaps = {lid: r["Type"] for lid, r in resources.items() if moto_cannot_create(r["Type"])}
    dropped = set(gaps)
    dependents: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for lid, resource in resources.items():
            if lid not in dropped and _references(resource) & dropped:
                dropped.add(lid)
                dependents[lid] = resource["Type"]
                changed = True
    for lid in dropped:
        resources.pop(lid)
    for name, output in list(template.get("Outputs", {}).items()):
        if _references(output) & dropped:
            template["Outputs"].pop(name)
            dependents[f"Outputs.{name}"] = "Output"
    return template, gaps, dependents


def write_moto_templates(directory: Path) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Writes <layer>.json moto variants into `directory`; returns {layer: (gaps, dependents)}."""
    directory.mkdir(parents=True, exist_ok=True)
    found = {}
    for layer in LAYERS:
        template, gaps, dependents = moto_variant(layer)
        (directory / f"{layer}.json").write_text(json.dumps(template, indent=1))
        found[layer] = (gaps, dependents)
    return found


def policy_document(document: Any) -> dict[str, Any]:
    """An IAM policy document as returned by moto: a dict, JSON, or (for inline policies created
    through CloudFormation) the Python repr of a dict, which is how moto 5.2.5 stores them."""
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except json.JSONDecodeError:
        return ast.literal_eval(document)


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def grants(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(effect, action, resource) triples of a policy document, one per combination."""
    out = set()
    for statement in as_list(document["Statement"]):
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                out.add((statement["Effect"], action, resource))
    return out


def heredoc(script: str, marker: str) -> str:
    """The body of `<<'MARKER' ... MARKER` in a shell script."""
    match = re.search(rf"<<'{marker}'\n(.*?)\n{marker}\n", script, re.S)
    assert match, f"no heredoc {marker} in the script"
    return match.group(1) + "\n"


CHANGE_SET_GAP = (
    "AWS::CloudFormation::Stack (change sets)",
    "ExecuteChangeSet neither resolves Fn::ImportValue against existing exports nor publishes "
    "the stack's Outputs/Exports, nor records new parameter values (CreateStack/UpdateStack do)",
)


def patch_moto_change_sets(monkeypatch) -> None:
    """Makes moto's ExecuteChangeSet do what CloudFormation does and moto 5.2.5 does not:
    resolve imports from the region's exports, then publish the stack's outputs and exports and
    remember its parameters. The moto server runs in this process (ThreadedMotoServer), so
    patching its model patches the server. Reported as a MotoGap by the caller.

    Without it, deploy.py (which creates *and* updates through change sets, as CloudFormation
    recommends) could not deploy the server layer on moto: its Fn::ImportValue of the bucket and
    database exports would fail with "No export named ... found".
    """
    from moto.cloudformation import models

    original_apply = models.ChangeSet.apply

    def apply(self) -> None:
        stack = self.stack
        backend = models.cloudformation_backends[stack.account_id][stack.region_name]
        stack.resource_map.cross_stack_resources = backend.exports
        original_apply(self)
        stack.template = self.template
        stack._parse_template()
        stack.parameters = self.parameters
        stack.output_map = stack._create_output_map()
        for export in stack.exports:
            backend.exports[export.name] = export

    monkeypatch.setattr(models.ChangeSet, "apply", apply)


def user_data_parts(user_data: str) -> dict[str, str]:
    """The MIME parts of the server's user data, by content type (cloud-init reads it so)."""
    import email

    message = email.message_from_string(user_data)
    assert message.is_multipart(), "user data is not a MIME multipart document"
    return {part.get_content_type(): part.get_payload() for part in message.get_payload()}
