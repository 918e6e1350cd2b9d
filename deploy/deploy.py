"""Deploy the Goodword SQLMesh CloudFormation layers (bucket, database, server) with change sets.

Called by deploy.sh; standalone on purpose (boto3 and PyYAML only, no meshctl import), so it runs
from any machine with the project's virtualenv or a bare `pip install boto3 pyyaml`. boto3 honours
AWS_ENDPOINT_URL, which is how the tests drive it against moto.

Every deploy is a change set: created, printed, then executed (or, with --dry-run, deleted
without executing). "No changes" is success, so running it twice is safe. Layers always run in
dependency order and the first failure stops the run, after printing the stack events that say
why.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

DEPLOY_DIR = Path(__file__).resolve().parent
LAYERS = ("bucket", "database", "server")  # dependency order: later layers import earlier ones
DEFAULT_STACK_PREFIX = "goodword-sqlmesh"
DEFAULT_REGION = "us-east-2"
# Keys of the env file that configure this script rather than a template parameter.
SETTINGS_KEYS = {"STACK_PREFIX", "AWS_REGION"}
STACK_TAGS = {"goodword:service": "sqlmesh"}

OK_STATUSES = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
FAILED_STATUSES = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
    "IMPORT_ROLLBACK_FAILED",
}
# A stack in one of these can take an UPDATE change set.
UPDATABLE_STATUSES = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}
NO_CHANGES_MARKERS = ("didn't contain changes", "No updates are to be performed")


class DeployError(Exception):
    """A failure the operator can act on; printed without a traceback."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored; optional surrounding quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise DeployError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: short-form intrinsics (!Ref, !Sub, ...) become plain data."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: object = loader.construct_scalar(node)
        if suffix == "GetAtt":  # !GetAtt Resource.Attribute.Path -> [Resource, Attribute.Path]
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@dataclass
class Layer:
    name: str
    template_path: Path
    stack_name: str
    body: str = ""
    parameters: dict[str, dict] = field(default_factory=dict)

    def load(self) -> None:
        if not self.template_path.is_file():
            raise DeployError(f"{self.name}: no template at {self.template_path}")
        self.body = self.template_path.read_text()
        template = yaml.load(self.body, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
        self.parameters = dict((template or {}).get("Parameters") or {})


@dataclass
class Plan:
    region: str
    stack_prefix: str
    values: dict[str, str]
    layers: list[Layer]

    def parameters_for(self, layer: Layer) -> list[dict[str, str]]:
        """The env file's values for this template's parameters, plus the stack names of the
        layers it imports (derived from the stack prefix unless the env file sets them)."""
        derived = {
            "BucketStackName": stack_name(self.stack_prefix, "bucket"),
            "DatabaseStackName": stack_name(self.stack_prefix, "database"),
        }
        params: dict[str, str] = {}
        for name, spec in layer.parameters.items():
            if name in self.values:
                params[name] = self.values[name]
            elif name in derived:
                params[name] = derived[name]
            elif "Default" not in spec:
                raise DeployError(
                    f"{layer.name}: template parameter {name} has no default; "
                    f"set {name}=... in the env file"
                )
        return [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]


def stack_name(prefix: str, layer: str) -> str:
    return f"{prefix}-{layer}"


def build_plan(args: argparse.Namespace) -> Plan:
    values: dict[str, str] = {}
    env_file = args.env_file
    if env_file is None and args.env:
        env_file = DEPLOY_DIR / "params" / f"{args.env}.env"
    if env_file is not None:
        env_file = Path(env_file)
        if not env_file.is_file():
            raise DeployError(
                f"no env file at {env_file} (copy deploy/params/example.env and fill it in)"
            )
        values = read_env_file(env_file)

    region = (
        args.region
        or values.get("AWS_REGION")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )
    prefix = args.stack_prefix or values.get("STACK_PREFIX") or DEFAULT_STACK_PREFIX
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,100}", prefix):
        raise DeployError(f"invalid stack prefix {prefix!r} (letters, digits, hyphens)")

    template_dir = Path(args.template_dir) if args.template_dir else DEPLOY_DIR
    layers = []
    for name in LAYERS:
        path = template_dir / f"{name}.yaml"
        if not path.exists() and (template_dir / f"{name}.json").exists():
            path = template_dir / f"{name}.json"
        layers.append(Layer(name, path, stack_name(prefix, name)))

    if not args.status:
        for layer in layers:
            layer.load()
        known = SETTINGS_KEYS | {p for layer in layers for p in layer.parameters}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DeployError(
                f"{env_file}: unknown keys {', '.join(unknown)} "
                "(neither a template parameter nor STACK_PREFIX/AWS_REGION)"
            )
    return Plan(region=region, stack_prefix=prefix, values=values, layers=layers)


# --------------------------------------------------------------------------------------------
# CloudFormation
# --------------------------------------------------------------------------------------------


def _sleep(attempt: int) -> None:
    time.sleep(min(0.2 * (1.6**attempt), 10.0))


class Deployer:
    def __init__(self, region: str, timeout: float, out=sys.stdout) -> None:
        self.cfn = boto3.client(
            "cloudformation",
            region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        self.timeout = timeout
        self.out = out

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # -- reading -------------------------------------------------------------------------

    def describe(self, name: str) -> dict | None:
        try:
            return self.cfn.describe_stacks(StackName=name)["Stacks"][0]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationError" and "does not exist" in str(exc):
                return None
            raise

    def events(self, name: str, stop_at: str | None = None) -> list[dict]:
        """Stack events newest first, down to (not including) the event id `stop_at`."""
        found: list[dict] = []
        for page in self.cfn.get_paginator("describe_stack_events").paginate(StackName=name):
            for event in page["StackEvents"]:
                if stop_at and event["EventId"] == stop_at:
                    return found
                found.append(event)
        return found

    def newest_event_id(self, name: str) -> str | None:
        try:
            page = self.cfn.describe_stack_events(StackName=name)
        except ClientError:
            return None
        events = page.get("StackEvents") or []
        return events[0]["EventId"] if events else None

    def print_events(self, name: str, since: str | None, only_failures: bool = True) -> None:
        events = list(reversed(self.events(name, since)))
        failures = [e for e in events if e["ResourceStatus"].endswith("_FAILED")]
        shown = failures if (only_failures and failures) else events
        title = "failed resources" if (only_failures and failures) else "stack events"
        self.say(f"  {title} ({name}):")
        if not shown:
            self.say("    (no events recorded)")
        for event in shown:
            stamp = event["Timestamp"]
            stamp = stamp.strftime("%H:%M:%S") if hasattr(stamp, "strftime") else str(stamp)
            reason = event.get("ResourceStatusReason") or ""
            self.say(
                f"    {stamp}  {event['ResourceStatus']:<28} {event['LogicalResourceId']:<28} "
                f"{event.get('ResourceType', ''):<30} {reason}"
            )

    # -- change sets -----------------------------------------------------------------------

    def wait_change_set(self, stack: str, change_set: str) -> dict:
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            described = self.cfn.describe_change_set(StackName=stack, ChangeSetName=change_set)
            if described["Status"] in ("CREATE_COMPLETE", "FAILED", "DELETE_COMPLETE"):
                break
            if time.monotonic() > deadline:
                raise DeployError(f"{stack}: change set {change_set} still {described['Status']}")
            _sleep(attempt)
            attempt += 1
        changes = list(described.get("Changes") or [])
        token = described.get("NextToken")
        while token:
            page = self.cfn.describe_change_set(
                StackName=stack, ChangeSetName=change_set, NextToken=token
            )
            changes.extend(page.get("Changes") or [])
            token = page.get("NextToken")
        described["Changes"] = changes
        return described

    def print_change_set(self, described: dict, change_set_type: str) -> None:
        self.say(f"  change set {described['ChangeSetName']} ({change_set_type}):")
        if not described["Changes"]:
            self.say("    (no resource changes)")
        for change in described["Changes"]:
            rc = change.get("ResourceChange", {})
            replacement = rc.get("Replacement")
            extra = f"  replacement: {replacement}" if replacement not in (None, "False") else ""
            self.say(
                f"    {rc.get('Action', '?'):<8} {rc.get('LogicalResourceId', '?'):<28} "
                f"{rc.get('ResourceType', '?')}{extra}"
            )

    def wait_stack(self, name: str, since: str | None) -> dict:
        deadline = time.monotonic() + self.timeout
        attempt = 0
        seen: set[str] = set()
        while True:
            stack = self.describe(name)
            if stack is None:
                raise DeployError(f"{name}: stack disappeared while deploying")
            for event in reversed(self.events(name, since)):
                if event["EventId"] in seen:
                    continue
                seen.add(event["EventId"])
                if event.get("LogicalResourceId") != name:
                    self.say(
                        f"    {event['ResourceStatus']:<28} {event['LogicalResourceId']:<28} "
                        f"{event.get('ResourceStatusReason') or ''}".rstrip()
                    )
            status = stack["StackStatus"]
            if not status.endswith("_IN_PROGRESS"):
                return stack
            if time.monotonic() > deadline:
                raise DeployError(f"{name}: still {status} after {self.timeout:.0f}s")
            _sleep(attempt)
            attempt += 1

    def deploy(self, layer: Layer, plan: Plan, dry_run: bool) -> bool:
        """Create or update one layer's stack. Returns True on success (including no change)."""
        name = layer.stack_name
        self.say(f"== {layer.name}: stack {name} ({layer.template_path.name}, {plan.region})")
        parameters = plan.parameters_for(layer)
        existing = self.describe(name)
        status = existing["StackStatus"] if existing else None

        if status == "ROLLBACK_COMPLETE":
            # A first create that failed: the stack holds nothing and cannot be updated.
            if dry_run:
                self.say("  stack is ROLLBACK_COMPLETE (failed first create); a deploy deletes it first")
                self.print_events(name, None)
                return True
            self.say("  deleting the ROLLBACK_COMPLETE stack left by a failed first create")
            self.cfn.delete_stack(StackName=name)
            self._wait_deleted(name)
            existing, status = None, None

        if status is None or status == "REVIEW_IN_PROGRESS":
            change_set_type = "CREATE"
        elif status in UPDATABLE_STATUSES:
            change_set_type = "UPDATE"
        else:
            self.say(f"  FAILED: stack is {status}; wait for it or repair it, then rerun")
            if status.endswith("_FAILED"):
                self.print_events(name, None)
            return False

        change_set = f"{'dryrun' if dry_run else 'deploy'}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
        try:
            self.cfn.create_change_set(
                StackName=name,
                ChangeSetName=change_set,
                ChangeSetType=change_set_type,
                TemplateBody=layer.body,
                Parameters=parameters,
                Capabilities=["CAPABILITY_IAM"],
                Tags=[{"Key": k, "Value": v} for k, v in {**STACK_TAGS, "goodword:layer": layer.name}.items()],
                Description=f"meshctl deploy.py {'dry run' if dry_run else 'deploy'} of the {layer.name} layer",
            )
            described = self.wait_change_set(name, change_set)
        except ClientError as exc:
            self.say(f"  FAILED: could not create a change set: {exc}")
            return False

        reason = described.get("StatusReason") or ""
        if described["Status"] == "FAILED":
            self._discard(name, change_set, created_stack=change_set_type == "CREATE" and status is None)
            if any(marker in reason for marker in NO_CHANGES_MARKERS):
                self.say("  no changes: stack is up to date")
                return True
            self.say(f"  FAILED: change set failed: {reason}")
            return False

        self.print_change_set(described, change_set_type)
        if dry_run:
            self._discard(name, change_set, created_stack=change_set_type == "CREATE" and status is None)
            self.say("  dry run: change set deleted without executing")
            return True

        since = self.newest_event_id(name)
        try:
            self.cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
            final = self.wait_stack(name, since)
        except Exception as exc:  # noqa: BLE001 - any failure here must still print the events
            self.say(f"  FAILED: executing the change set: {type(exc).__name__}: {exc}")
            self.print_events(name, since, only_failures=False)
            return False

        final_status = final["StackStatus"]
        if final_status in OK_STATUSES:
            self.say(f"  {final_status}")
            for output in final.get("Outputs") or []:
                self.say(f"    {output['OutputKey']:<28} {output['OutputValue']}")
            return True
        self.say(f"  FAILED: stack ended {final_status}: {final.get('StackStatusReason') or ''}")
        self.print_events(name, since)
        return False

    def _discard(self, name: str, change_set: str, created_stack: bool) -> None:
        """Deletes a change set that will not run; and the empty REVIEW_IN_PROGRESS stack a
        CREATE change set leaves behind when this run is what created it."""
        try:
            self.cfn.delete_change_set(StackName=name, ChangeSetName=change_set)
        except ClientError as exc:
            self.say(f"  warning: could not delete change set {change_set}: {exc}")
        if created_stack:
            stack = self.describe(name)
            if stack and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
                self.cfn.delete_stack(StackName=name)

    def _wait_deleted(self, name: str) -> None:
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while (stack := self.describe(name)) and stack["StackStatus"] != "DELETE_COMPLETE":
            if stack["StackStatus"] == "DELETE_FAILED":
                raise DeployError(f"{name}: DELETE_FAILED; delete it by hand and rerun")
            if time.monotonic() > deadline:
                raise DeployError(f"{name}: still {stack['StackStatus']} after {self.timeout:.0f}s")
            _sleep(attempt)
            attempt += 1

    def status(self, layer: Layer) -> None:
        stack = self.describe(layer.stack_name)
        if stack is None:
            self.say(f"{layer.name:<9} {layer.stack_name:<40} NOT DEPLOYED")
            return
        when = (
            f"updated {stack['LastUpdatedTime']:%Y-%m-%d %H:%M:%S %Z}"
            if stack.get("LastUpdatedTime")
            else f"created {stack['CreationTime']:%Y-%m-%d %H:%M:%S %Z}"
        )
        self.say(f"{layer.name:<9} {layer.stack_name:<40} {stack['StackStatus']:<24} {when}")
        for output in stack.get("Outputs") or []:
            self.say(f"    {output['OutputKey']:<28} {output['OutputValue']}")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="deploy.sh",
        description=(
            "Deploy the Goodword SQLMesh stacks with CloudFormation change sets. Layers run in "
            "order bucket -> database -> server; the first failure stops the run."
        ),
    )
    what = parser.add_argument_group("what")
    what.add_argument("--bucket", action="store_true", help="the S3 artifacts bucket layer")
    what.add_argument("--database", action="store_true", help="the Aurora state database layer")
    what.add_argument("--server", action="store_true", help="the EC2 server layer")
    what.add_argument("--all", action="store_true", help="all three layers, in order")
    what.add_argument("--status", action="store_true", help="print each stack's status and outputs")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="create and print each change set, then delete it without executing",
    )
    parser.add_argument("--env", help="parameters from deploy/params/<ENV>.env")
    parser.add_argument("--env-file", help="parameters from this env file (overrides --env)")
    parser.add_argument("--region", help=f"AWS region (default: env file, AWS_REGION, {DEFAULT_REGION})")
    parser.add_argument("--stack-prefix", help=f"stack names <prefix>-<layer> (default {DEFAULT_STACK_PREFIX})")
    parser.add_argument("--template-dir", help="read <layer>.yaml templates from here (default: deploy/)")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for each layer (default 3600)"
    )
    args = parser.parse_args(argv)
    if not (args.bucket or args.database or args.server or args.all or args.status):
        parser.error("choose --bucket, --database, --server, --all or --status")
    if args.status and (args.bucket or args.database or args.server or args.all or args.dry_run):
        parser.error("--status reports only; use it on its own")
    if not args.status and not (args.env or args.env_file):
        parser.error("deploying needs parameters: --env <name> or --env-file <path>")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        plan = build_plan(args)
        deployer = Deployer(plan.region, args.timeout)
        if args.status:
            for layer in plan.layers:
                deployer.status(layer)
            return 0
        selected = [
            layer
            for layer in plan.layers
            if args.all or getattr(args, layer.name)
        ]
        for index, layer in enumerate(selected):
            if not deployer.deploy(layer, plan, dry_run=args.dry_run):
                skipped = [later.name for later in selected[index + 1 :]]
                if skipped:
                    deployer.say(f"stopped: {layer.name} failed; not run: {', '.join(skipped)}")
                return 1
        deployer.say("dry run complete: nothing was changed" if args.dry_run else "deploy complete")
        return 0
    except DeployError as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"deploy: AWS error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. an unparsable endpoint reply: one line, exit 1
        print(f"deploy: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
