"""Deployment as code (issue 6): deploy/*.yaml through deploy/deploy.sh, against moto over HTTP.

The three layers are deployed with deploy.sh (change sets, exactly as in production) into a VPC
and subnets created in moto, then the created resources are read back through the AWS APIs.
moto 5.2.5 cannot create some resource types and ignores some properties; every such place is
checked against the template instead and reported by name as a `MotoGap` warning (see the
warnings summary), never skipped and never passed silently.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from deploy_moto import (
    CHANGE_SET_GAP,
    DEPLOY_DIR,
    REPO,
    as_list,
    grants,
    heredoc,
    load_template,
    moto_cannot_create,
    patch_moto_change_sets,
    policy_document,
    report_gap,
    user_data_parts,
    write_moto_templates,
)

pytestmark = pytest.mark.filterwarnings("always::deploy_moto.MotoGap")

REGION = "us-east-2"
DEPLOY_SH = DEPLOY_DIR / "deploy.sh"
TAILSCALE_CIDR = "100.101.0.0/16"  # not the template default: proves the parameter is used
VPC_CIDR = "172.22.0.0/16"
ACCOUNT = "123456789012"  # moto's default account

# What moto 5.2.5's CloudFormation has no model for, per layer (logical ID -> type).
EXPECTED_MOTO_GAPS = {
    "bucket": {"ArtifactsBucketPolicy": "AWS::S3::BucketPolicy"},
    "database": {"DbCluster": "AWS::RDS::DBCluster"},
    "server": {},
}


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@dataclass
class Network:
    vpc_id: str
    private_subnet_id: str
    data_subnet_a_id: str
    data_subnet_b_id: str


@dataclass
class Deployment:
    prefix: str
    env_file: Path
    template_dir: Path
    bucket_name: str
    log_group: str
    output: str
    gaps: dict


@pytest.fixture(scope="module")
def deploy_env(moto_endpoint: str) -> dict[str, str]:
    """The aws_env fixture's variables, for this module's module-scoped deployment."""
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        # CloudFormation change sets in moto lack imports/exports (reported in the test below).
        patch_moto_change_sets(mp)
        yield env


def client(service: str, env: dict[str, str]):
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def network(deploy_env) -> Network:
    """The Operations VPC as the templates expect it: private subnet 172.22.2.0/24 and two data
    subnets in two AZs."""
    ec2 = client("ec2", deploy_env)
    vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]

    def subnet(cidr: str, az: str) -> str:
        return ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az)["Subnet"][
            "SubnetId"
        ]

    return Network(
        vpc_id=vpc_id,
        private_subnet_id=subnet("172.22.2.0/24", f"{REGION}a"),
        data_subnet_a_id=subnet("172.22.20.0/24", f"{REGION}a"),
        data_subnet_b_id=subnet("172.22.21.0/24", f"{REGION}b"),
    )


def write_env_file(path: Path, network: Network, token: str, **extra: str) -> Path:
    values = {
        "AWS_REGION": REGION,
        "VpcId": network.vpc_id,
        "PrivateSubnetId": network.private_subnet_id,
        "DataSubnetAId": network.data_subnet_a_id,
        "DataSubnetBId": network.data_subnet_b_id,
        "UiIngressCidrVpc": VPC_CIDR,
        "UiIngressCidrTailscale": TAILSCALE_CIDR,
        "BucketName": f"goodword-sqlmesh-test-{token}",
        "ImageUri": "ghcr.io/goodword/sqlmesh:test",
        "LogGroupName": f"/goodword/sqlmesh/test-{token}",
        **extra,
    }
    path.write_text("# written by tests/python/test_deploy.py\n" + "".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def run_deploy(env: dict[str, str], *args: str, check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(DEPLOY_SH), *args],
        env={**os.environ, **env, "DEPLOY_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"deploy.sh {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return result


@pytest.fixture(scope="module")
def deployed(deploy_env, network, tmp_path_factory) -> Deployment:
    """All three layers deployed once with `deploy.sh --all` (moto variants of the templates)."""
    token = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp("deploy")
    template_dir = work / "templates"
    gaps = write_moto_templates(template_dir)
    env_file = write_env_file(work / "test.env", network, token)
    prefix = f"gs-{token}"
    result = run_deploy(
        deploy_env,
        "--all",
        "--env-file", str(env_file),
        "--stack-prefix", prefix,
        "--template-dir", str(template_dir),
        check=True,
    )
    return Deployment(
        prefix=prefix,
        env_file=env_file,
        template_dir=template_dir,
        bucket_name=f"goodword-sqlmesh-test-{token}",
        log_group=f"/goodword/sqlmesh/test-{token}",
        output=result.stdout,
        gaps=gaps,
    )


def stack_resources(env, stack: str) -> dict[str, str]:
    cfn = client("cloudformation", env)
    summaries = cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in summaries if r["LogicalResourceId"]}


def stack_outputs(env, stack: str) -> dict[str, str]:
    cfn = client("cloudformation", env)
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs") or []}


def pending_change_sets(env, stack: str) -> list[str]:
    """Change sets of `stack` left behind un-executed (moto also lists executed ones)."""
    summaries = client("cloudformation", env).list_change_sets(StackName=stack)["Summaries"]
    return [
        s["ChangeSetName"] for s in summaries
        if s["StackName"] == stack and s.get("ExecutionStatus") != "EXECUTE_COMPLETE"
    ]


# --------------------------------------------------------------------------------------------
# Static checks (no AWS)
# --------------------------------------------------------------------------------------------


def test_cfn_lint_is_clean():
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    assert cfn_lint, "cfn-lint is not installed (pip install -e '.[dev]')"
    templates = sorted(str(p) for p in DEPLOY_DIR.glob("*.yaml"))
    assert len(templates) == 3, templates
    result = subprocess.run(
        [cfn_lint, "--regions", REGION, "--", *templates], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_templates_hard_code_no_ids():
    pattern = re.compile(r"\b(vpc|subnet|sg|ami|i)-[0-9a-f]{8,17}\b|\b\d{12}\b")

    def without_descriptions(node):
        if isinstance(node, dict):
            return {k: without_descriptions(v) for k, v in node.items() if k != "Description"}
        if isinstance(node, list):
            return [without_descriptions(v) for v in node]
        return node

    for layer in ("bucket", "database", "server"):
        # Descriptions may show an example account id; values may not.
        body = json.dumps(without_descriptions(load_template(layer)))
        match = pattern.search(body)
        assert not match, f"{layer}.yaml: hard-coded ID {match.group(0)}"


def test_layers_are_chained_by_exports_without_cycles():
    bucket, database, server = (load_template(n) for n in ("bucket", "database", "server"))
    exported = {
        layer: {out["Export"]["Name"]["Fn::Sub"].split("-", 1)[1] for out in t["Outputs"].values() if "Export" in out}
        for layer, t in (("bucket", bucket), ("database", database), ("server", server))
    }
    assert {"BucketName", "ArtifactsPrefix"} <= exported["bucket"]
    assert {"DbClientSecurityGroupId", "DbSecurityGroupId"} <= exported["database"]
    server_text = (DEPLOY_DIR / "server.yaml").read_text()
    assert "${BucketStackName}-BucketName" in server_text
    assert "${DatabaseStackName}-DbClientSecurityGroupId" in server_text
    # The database layer imports nothing: the server depends on it, never the other way round.
    assert "ImportValue" not in (DEPLOY_DIR / "database.yaml").read_text()
    assert "ImportValue" not in (DEPLOY_DIR / "bucket.yaml").read_text()


def test_deploy_sh_is_strict_bash_and_has_the_flags():
    text = DEPLOY_SH.read_text()
    assert "set -euo pipefail" in text
    assert subprocess.run(["bash", "-n", str(DEPLOY_SH)]).returncode == 0
    assert os.access(DEPLOY_SH, os.X_OK)
    usage = subprocess.run(
        [str(DEPLOY_SH), "--help"], capture_output=True, text=True,
        env={**os.environ, "DEPLOY_PYTHON": sys.executable},
    ).stdout
    for flag in ("--bucket", "--database", "--server", "--all", "--status", "--dry-run", "--region", "--stack-prefix", "--env"):
        assert flag in usage


def test_example_env_covers_every_required_parameter():
    example = (DEPLOY_DIR / "params" / "example.env").read_text()
    keys = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    for layer in ("bucket", "database", "server"):
        for name, spec in load_template(layer)["Parameters"].items():
            if "Default" not in spec:
                assert name in keys, f"{layer}: required parameter {name} missing from example.env"
    ignore = (DEPLOY_DIR / "params" / ".gitignore").read_text()
    assert "*.env" in ignore and "!example.env" in ignore


def test_moto_gaps_are_the_known_ones():
    """Names every resource type moto cannot create; fails if moto gains or loses one, so the
    static checks below get replaced by live ones when moto catches up."""
    found = {}
    for layer in ("bucket", "database", "server"):
        resources = load_template(layer)["Resources"]
        found[layer] = {lid: r["Type"] for lid, r in resources.items() if moto_cannot_create(r["Type"])}
        for lid, rtype in found[layer].items():
            report_gap(rtype, f"no CloudFormation model ({layer} layer, {lid})", "the template (this layer's tests)")
    assert found == EXPECTED_MOTO_GAPS
    report_gap(*CHANGE_SET_GAP, "deploy_moto.patch_moto_change_sets adds it, so imports resolve as in AWS")


# --------------------------------------------------------------------------------------------
# Bucket layer
# --------------------------------------------------------------------------------------------


def test_bucket_encryption_is_on(deployed, deploy_env):
    s3 = client("s3", deploy_env)
    rules = s3.get_bucket_encryption(Bucket=deployed.bucket_name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # With a KMS key parameter, the template switches to SSE-KMS with a bucket key.
    sse = load_template("bucket")["Resources"]["ArtifactsBucket"]["Properties"]["BucketEncryption"]
    by_default = sse["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["Fn::If"]
    assert by_default[0] == "UseKms"
    assert by_default[1] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Ref": "KmsKeyArn"}}


def test_bucket_versioning_and_public_access_block(deployed, deploy_env):
    s3 = client("s3", deploy_env)
    props = load_template("bucket")["Resources"]["ArtifactsBucket"]["Properties"]
    expected_block = {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["PublicAccessBlockConfiguration"] == expected_block
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}

    versioning = s3.get_bucket_versioning(Bucket=deployed.bucket_name).get("Status")
    if versioning is None:
        report_gap("AWS::S3::Bucket", "VersioningConfiguration is ignored by moto's CloudFormation",
                   "VersioningConfiguration.Status == Enabled")
    else:
        assert versioning == "Enabled"
    try:
        live_block = s3.get_public_access_block(Bucket=deployed.bucket_name)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
        report_gap("AWS::S3::Bucket", "PublicAccessBlockConfiguration is ignored by moto's CloudFormation",
                   "all four PublicAccessBlockConfiguration flags true")
    else:
        assert live_block == expected_block


def test_bucket_lifecycle_matches_runtime_retention(deployed, deploy_env):
    template = load_template("bucket")
    params = template["Parameters"]
    assert params["RunRecordRetentionDays"]["Default"] == 90
    assert params["StateBackupRetentionDays"]["Default"] == 30
    assert params["ArtifactsPrefix"]["Default"] == "sqlmesh"
    rules = {
        r["Id"]: r for r in template["Resources"]["ArtifactsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    assert rules["expire-run-records"]["Prefix"] == {"Fn::Sub": "${ArtifactsPrefix}/runs/"}
    assert rules["expire-run-records"]["ExpirationInDays"] == {"Ref": "RunRecordRetentionDays"}
    assert rules["expire-state-backups"]["Prefix"] == {"Fn::Sub": "${ArtifactsPrefix}/state-backups/"}
    assert rules["expire-state-backups"]["ExpirationInDays"] == {"Ref": "StateBackupRetentionDays"}
    assert all(r["Status"] == "Enabled" for r in rules.values())

    s3 = client("s3", deploy_env)
    try:
        live = s3.get_bucket_lifecycle_configuration(Bucket=deployed.bucket_name)["Rules"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        report_gap("AWS::S3::Bucket", "LifecycleConfiguration is ignored by moto's CloudFormation",
                   "rules for <prefix>/runs/ (RunRecordRetentionDays) and <prefix>/state-backups/ "
                   "(StateBackupRetentionDays)")
    else:
        by_prefix = {r.get("Filter", {}).get("Prefix", r.get("Prefix")): r for r in live}
        assert by_prefix["sqlmesh/runs/"]["Expiration"]["Days"] == 90
        assert by_prefix["sqlmesh/state-backups/"]["Expiration"]["Days"] == 30


def test_bucket_policy_denies_insecure_transport(deployed, deploy_env):
    policy = load_template("bucket")["Resources"]["ArtifactsBucketPolicy"]
    assert policy["Properties"]["Bucket"] == {"Ref": "ArtifactsBucket"}
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [
        {"Fn::GetAtt": ["ArtifactsBucket", "Arn"]},
        {"Fn::Sub": "${ArtifactsBucket.Arn}/*"},
    ]
    s3 = client("s3", deploy_env)
    try:
        live = s3.get_bucket_policy(Bucket=deployed.bucket_name)["Policy"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchBucketPolicy"
        assert "ArtifactsBucketPolicy" in deployed.gaps["bucket"][0]
        report_gap("AWS::S3::BucketPolicy", "not created by moto's CloudFormation",
                   "Deny s3:* on the bucket and its objects when aws:SecureTransport is false")
    else:
        assert "aws:SecureTransport" in live


def test_bucket_outputs_are_exported(deployed, deploy_env):
    outputs = stack_outputs(deploy_env, f"{deployed.prefix}-bucket")
    assert outputs["BucketName"] == deployed.bucket_name
    assert outputs["ArtifactsPrefix"] == "sqlmesh"
    exports = {e["Name"]: e["Value"] for e in client("cloudformation", deploy_env).list_exports()["Exports"]}
    assert exports[f"{deployed.prefix}-bucket-BucketName"] == deployed.bucket_name


# --------------------------------------------------------------------------------------------
# Database layer
# --------------------------------------------------------------------------------------------


def test_db_subnet_group_spans_the_two_data_subnets(deployed, deploy_env, network):
    rds = client("rds", deploy_env)
    stack = f"{deployed.prefix}-database"
    groups = [
        g for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]
        if g["DBSubnetGroupDescription"] == f"SQLMesh state database ({stack})"
    ]
    assert len(groups) == 1, groups
    subnets = groups[0]["Subnets"]
    assert {s["SubnetIdentifier"] for s in subnets} == {network.data_subnet_a_id, network.data_subnet_b_id}
    assert len({s["SubnetAvailabilityZone"]["Name"] for s in subnets}) == 2
    assert groups[0]["VpcId"] == network.vpc_id


def test_db_security_group_admits_only_the_client_group(deployed, deploy_env, network):
    ec2 = client("ec2", deploy_env)
    resources = stack_resources(deploy_env, f"{deployed.prefix}-database")
    db_sg, client_sg = resources["DbSecurityGroup"], resources["DbClientSecurityGroup"]
    groups = {g["GroupId"]: g for g in ec2.describe_security_groups(GroupIds=[db_sg, client_sg])["SecurityGroups"]}
    assert groups[db_sg]["VpcId"] == network.vpc_id
    [rule] = groups[db_sg]["IpPermissions"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 5432, 5432)
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [client_sg]
    assert rule["IpRanges"] == [] and rule.get("Ipv6Ranges", []) == []
    assert groups[client_sg]["IpPermissions"] == []


def test_aurora_serverless_v2_cluster_checked_statically(deployed):
    """moto has no CloudFormation model for AWS::RDS::DBCluster, so the cluster (and the
    db.serverless instance that references it) are checked in the template; reported by name."""
    gaps, dependents = deployed.gaps["database"]
    assert gaps == {"DbCluster": "AWS::RDS::DBCluster"}
    assert dependents.get("DbInstance") == "AWS::RDS::DBInstance"
    template = load_template("database")
    cluster = template["Resources"]["DbCluster"]
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert props["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": {"Ref": "MinCapacity"},
        "MaxCapacity": {"Ref": "MaxCapacity"},
    }
    assert props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props
    assert not any("password" in name.lower() for name in template["Parameters"])
    assert props["StorageEncrypted"] is True
    assert props["DeletionProtection"] is True
    assert props["BackupRetentionPeriod"] == {"Ref": "BackupRetentionDays"}
    assert template["Parameters"]["BackupRetentionDays"]["MinValue"] >= 1
    assert props["DBSubnetGroupName"] == {"Ref": "DbSubnetGroup"}
    assert props["VpcSecurityGroupIds"] == [{"Ref": "DbSecurityGroup"}]
    assert cluster["DeletionPolicy"] == "Snapshot"
    instance = template["Resources"]["DbInstance"]["Properties"]
    assert instance["DBInstanceClass"] == "db.serverless"
    assert instance["Engine"] == "aurora-postgresql"
    assert instance["DBClusterIdentifier"] == {"Ref": "DbCluster"}
    assert instance["PubliclyAccessible"] is False
    report_gap("AWS::RDS::DBCluster", "no CloudFormation model (stack outputs that GetAtt it make "
               "moto answer HTTP 500)", "Serverless v2 scaling, managed master password, "
               "encryption, deletion protection, backups, subnet group, security group")
    report_gap("AWS::RDS::DBInstance", "not deployed on moto because it references the DBCluster",
               "db.serverless, aurora-postgresql, in the cluster, not public")


# --------------------------------------------------------------------------------------------
# Server layer
# --------------------------------------------------------------------------------------------


def _role_documents(env, role_name: str) -> dict[str, dict]:
    iam = client("iam", env)
    names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    return {
        name: policy_document(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
        for name in names
    }


def test_instance_role_allows_exactly_what_the_service_needs(deployed, deploy_env):
    resources = stack_resources(deploy_env, f"{deployed.prefix}-server")
    role_name = resources["InstanceRole"]
    iam = client("iam", deploy_env)
    role = iam.get_role(RoleName=role_name)["Role"]
    trust = policy_document(role["AssumeRolePolicyDocument"])
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []

    documents = _role_documents(deploy_env, role_name)
    # The optional KMS / ECR policies exist only when their parameters are set.
    assert set(documents) == {"artifacts", "secrets", "logs", "session-manager"}
    bucket, prefix = deployed.bucket_name, "sqlmesh"
    obj = f"arn:aws:s3:::{bucket}/{prefix}"
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret"
    expected = {
        ("Allow", "s3:ListBucket", f"arn:aws:s3:::{bucket}"),
        ("Allow", "s3:GetObject", f"{obj}/bundles/*"),
        ("Allow", "s3:GetObject", f"{obj}/runs/*"),
        ("Allow", "s3:GetObject", f"{obj}/state-backups/*"),
        ("Allow", "s3:PutObject", f"{obj}/runs/*"),
        ("Allow", "s3:PutObject", f"{obj}/state-backups/*"),
        ("Allow", "s3:AbortMultipartUpload", f"{obj}/runs/*"),
        ("Allow", "s3:AbortMultipartUpload", f"{obj}/state-backups/*"),
        # `meshctl doctor` writes and deletes a probe object; backup retention deletes backups.
        ("Allow", "s3:PutObject", f"{obj}/_doctor/*"),
        ("Allow", "s3:AbortMultipartUpload", f"{obj}/_doctor/*"),
        ("Allow", "s3:DeleteObject", f"{obj}/_doctor/*"),
        ("Allow", "s3:DeleteObject", f"{obj}/state-backups/*"),
        ("Allow", "secretsmanager:GetSecretValue", f"{secret}:snowflake-warehouse-??????"),
        ("Allow", "secretsmanager:DescribeSecret", f"{secret}:snowflake-warehouse-??????"),
        ("Allow", "secretsmanager:GetSecretValue", f"{secret}:aurora-data-operations-??????"),
        ("Allow", "secretsmanager:DescribeSecret", f"{secret}:aurora-data-operations-??????"),
        # The UI's HTTP Basic credentials, read by the host's deploy-app (see server.yaml).
        ("Allow", "secretsmanager:GetSecretValue", f"{secret}:sqlmesh-ui-??????"),
        *(
            ("Allow", action, f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{deployed.log_group}:*")
            for action in ("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")
        ),
        ("Allow", "ssm:UpdateInstanceInformation", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"),
        *(
            ("Allow", f"ssmmessages:{action}", "*")
            for action in ("CreateControlChannel", "CreateDataChannel", "OpenControlChannel", "OpenDataChannel")
        ),
    }
    actual = set().union(*(grants(d) for d in documents.values()))
    assert actual == expected, {"unexpected": actual - expected, "missing": expected - actual}

    statements = [s for d in documents.values() for s in as_list(d["Statement"])]
    assert all(s["Effect"] == "Allow" for s in statements)
    for statement in statements:
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"wildcard action {action}"
        if "*" in as_list(statement["Resource"]):
            # Only where AWS offers no resource-level permission.
            assert all(a.startswith("ssmmessages:") for a in as_list(statement["Action"])), statement
    [listing] = [s for s in statements if "s3:ListBucket" in as_list(s["Action"])]
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": [f"{prefix}/bundles/*", f"{prefix}/runs/*", f"{prefix}/state-backups/*",
                                     f"{prefix}/_doctor/*"]}
    }


def test_optional_kms_and_ecr_grants_are_scoped(deployed, deploy_env, network, tmp_path):
    """A second server stack, importing the same bucket/database stacks, with a KMS key and a
    private ECR repository: each extra grant names its resource."""
    token = uuid.uuid4().hex[:8]
    kms_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b1c2d3e-0000-4000-8000-000000000001"
    repo_arn = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/goodword-sqlmesh"
    env_file = write_env_file(
        tmp_path / "ecr.env", network, token,
        BucketStackName=f"{deployed.prefix}-bucket",
        DatabaseStackName=f"{deployed.prefix}-database",
        ArtifactsKmsKeyArn=kms_arn,
        EcrRepositoryArn=repo_arn,
        ImageUri=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/goodword-sqlmesh:1.0.0",
    )
    prefix = f"gs-ecr-{token}"
    run_deploy(deploy_env, "--server", "--env-file", str(env_file), "--stack-prefix", prefix,
               "--template-dir", str(deployed.template_dir), check=True)
    role_name = stack_resources(deploy_env, f"{prefix}-server")["InstanceRole"]
    documents = _role_documents(deploy_env, role_name)
    assert set(documents) == {"artifacts", "secrets", "logs", "session-manager", "artifacts-kms", "image-pull"}
    assert grants(documents["artifacts-kms"]) == {
        ("Allow", "kms:Decrypt", kms_arn), ("Allow", "kms:GenerateDataKey", kms_arn)
    }
    assert as_list(documents["artifacts-kms"]["Statement"])[0]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    }
    assert grants(documents["image-pull"]) == {
        ("Allow", "ecr:GetAuthorizationToken", "*"),  # AWS has no resource-level form of it
        ("Allow", "ecr:BatchGetImage", repo_arn),
        ("Allow", "ecr:GetDownloadUrlForLayer", repo_arn),
        ("Allow", "ecr:BatchCheckLayerAvailability", repo_arn),
    }


def test_server_security_group_admits_8000_from_the_parameters_only(deployed, deploy_env, network):
    ec2 = client("ec2", deploy_env)
    sg_id = stack_resources(deploy_env, f"{deployed.prefix}-server")["ServerSecurityGroup"]
    [group] = ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"]
    assert group["VpcId"] == network.vpc_id
    [rule] = group["IpPermissions"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 8000, 8000)
    assert sorted(r["CidrIp"] for r in rule["IpRanges"]) == sorted([VPC_CIDR, TAILSCALE_CIDR])
    assert rule["UserIdGroupPairs"] == [] and rule.get("Ipv6Ranges", []) == []

    egress = load_template("server")["Resources"]["ServerSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in egress] == [("tcp", 443, 443), ("tcp", 5432, 5432)]
    assert egress[1]["DestinationSecurityGroupId"] == {
        "Fn::ImportValue": {"Fn::Sub": "${DatabaseStackName}-DbSecurityGroupId"}
    }
    live_egress = group["IpPermissionsEgress"]
    if any(e["IpProtocol"] == "-1" for e in live_egress):
        report_gap("AWS::EC2::SecurityGroup", "SecurityGroupEgress is ignored by moto's CloudFormation "
                   "(the default allow-all egress stays)", "egress 443 anywhere, 5432 to the DB group only")
    else:
        assert {e["FromPort"] for e in live_egress} == {443, 5432}


def test_server_instance(deployed, deploy_env, network):
    ec2, ssm = client("ec2", deploy_env), client("ssm", deploy_env)
    resources = stack_resources(deploy_env, f"{deployed.prefix}-server")
    [reservation] = ec2.describe_instances(InstanceIds=[resources["Server"]])["Reservations"]
    [instance] = reservation["Instances"]
    assert instance["InstanceType"] == "t3.medium"
    ami = ssm.get_parameter(Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
    assert instance["ImageId"] == ami["Parameter"]["Value"]
    profile_name = resources["InstanceProfile"]
    assert instance["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{profile_name}")
    profile = client("iam", deploy_env).get_instance_profile(InstanceProfileName=profile_name)
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [resources["InstanceRole"]]
    assert load_template("server")["Parameters"]["LatestAmiId"]["Type"] == (
        "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    )

    props = load_template("server")["Resources"]["Server"]["Properties"]
    [nic] = props["NetworkInterfaces"]
    assert nic["SubnetId"] == {"Ref": "PrivateSubnetId"}
    assert nic["AssociatePublicIpAddress"] is False
    assert nic["GroupSet"] == [
        {"Ref": "ServerSecurityGroup"},
        {"Fn::ImportValue": {"Fn::Sub": "${DatabaseStackName}-DbClientSecurityGroupId"}},
    ]
    assert props["MetadataOptions"]["HttpTokens"] == "required"
    assert all(d["Ebs"]["Encrypted"] is True for d in props["BlockDeviceMappings"])
    server_sg = resources["ServerSecurityGroup"]
    live_sgs = {g["GroupId"] for g in instance.get("SecurityGroups", [])}
    client_sg = stack_outputs(deploy_env, f"{deployed.prefix}-database")["DbClientSecurityGroupId"]
    placed = (
        instance.get("SubnetId") == network.private_subnet_id
        and live_sgs == {server_sg, client_sg}
        and not instance.get("PublicIpAddress")
    )
    if not placed:
        report_gap("AWS::EC2::Instance", "NetworkInterfaces and MetadataOptions are ignored by moto's "
                   f"CloudFormation (instance landed in {instance.get('SubnetId')} with groups "
                   f"{sorted(live_sgs)} and public IP {instance.get('PublicIpAddress')})",
                   "one interface in PrivateSubnetId, AssociatePublicIpAddress false, the server and "
                   "db-client groups, IMDSv2 required")


def test_user_data_bootstraps_docker_compose_from_the_bundle(deployed, deploy_env, tmp_path):
    ec2 = client("ec2", deploy_env)
    instance_id = stack_resources(deploy_env, f"{deployed.prefix}-server")["Server"]
    encoded = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    raw = base64.b64decode(encoded)
    assert len(raw) < 16 * 1024, f"user data is {len(raw)} bytes; EC2 takes at most 16 KiB"
    parts = user_data_parts(raw.decode())
    assert set(parts) == {"text/cloud-config", "text/x-shellscript"}
    cloud_config = yaml.safe_load(parts["text/cloud-config"])
    # Every boot, so a UserData update (stop/start by CloudFormation) takes effect.
    assert cloud_config == {"cloud_final_modules": [["scripts-user", "always"]]}
    assert parts["text/cloud-config"].startswith("#cloud-config\n")
    script = parts["text/x-shellscript"]
    assert script.startswith("#!/bin/bash\n")
    assert "set -Eeuo pipefail" in script
    # Rendered by CloudFormation with this stack's values, no ${...} left for bash to trip on.
    assert f"ARTIFACTS_BUCKET={deployed.bucket_name}\n" in script
    assert "ARTIFACTS_PREFIX=sqlmesh\n" in script
    assert "MESHCTL_GATEWAY=snowflake\n" in script
    assert f'"awslogs-group": "{deployed.log_group}"' in script
    assert f'"awslogs-region": "{REGION}"' in script
    assert "IMAGE_URI='ghcr.io/goodword/sqlmesh:test'" in script
    assert "MESHCTL_IMAGE=ghcr.io/goodword/sqlmesh:test\n" in script
    # The image's entry point is meshctl: the command is `meshctl artifacts pull --dest /project`.
    assert "PULL_COMMAND='artifacts pull --dest /project'" in script
    assert "MESHCTL_SECRETS=aws\n" in script
    assert "SNOWFLAKE_SECRET_NAME=snowflake-warehouse\n" in script
    assert "STATE_DB_SECRET_NAME=aurora-data-operations\n" in script
    assert "UI_SECRET_NAME='sqlmesh-ui'" in script
    assert "MESHCTL_ENV_FILE=/etc/goodword/sqlmesh.env\n" in script
    assert "MESHCTL_BUNDLE=latest\n" in script
    assert "# ARTIFACTS_KMS_KEY_ID unset: SSE-S3\n" in script
    assert "dnf install -y docker" in script
    assert "/usr/local/lib/docker/cli-plugins" in script and "sha256sum -c" in script
    assert "--resource Server" in script
    assert not re.search(r"\$\{(AWS::|[A-Z][A-Za-z]+\})", script), "unrendered CloudFormation variable"
    (tmp_path / "user-data.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "user-data.sh")]).returncode == 0

    deploy_app = heredoc(script, "SCRIPT")
    assert "$PULL_COMMAND" in deploy_app and "docker compose" in deploy_app
    assert "up -d --no-build --pull never" in deploy_app
    assert "logging: !override" in deploy_app and "driver: awslogs" in deploy_app
    (tmp_path / "deploy-app.sh").write_text(deploy_app)
    assert subprocess.run(["bash", "-n", str(tmp_path / "deploy-app.sh")]).returncode == 0
    assert "/opt/goodword/bin/deploy-app 2>&1 | tee" in script
    assert 'signal 0 "image pulled, bundle verified, compose services started"' in script


def test_log_group_exists_with_retention(deployed, deploy_env):
    logs = client("logs", deploy_env)
    groups = logs.describe_log_groups(logGroupNamePrefix=deployed.log_group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [deployed.log_group]
    assert groups[0].get("retentionInDays") == 30


# --------------------------------------------------------------------------------------------
# deploy.sh behaviour
# --------------------------------------------------------------------------------------------


def test_first_deploy_printed_change_sets_and_outputs(deployed):
    out = deployed.output
    for layer in ("bucket", "database", "server"):
        assert f"== {layer}: stack {deployed.prefix}-{layer}" in out
    assert out.count("(CREATE):") == 3
    assert "Add      ArtifactsBucket" in out
    assert "Add      Server" in out
    assert out.count("CREATE_COMPLETE") == 3
    assert "deploy complete" in out


def test_second_deploy_is_idempotent(deployed, deploy_env):
    before = {layer: stack_resources(deploy_env, f"{deployed.prefix}-{layer}") for layer in ("bucket", "database", "server")}
    result = run_deploy(
        deploy_env, "--all", "--env-file", str(deployed.env_file), "--stack-prefix", deployed.prefix,
        "--template-dir", str(deployed.template_dir), check=True,
    )
    assert result.stdout.count("no changes: stack is up to date") == 3, result.stdout
    assert "change set deploy-" not in result.stdout
    after = {layer: stack_resources(deploy_env, f"{deployed.prefix}-{layer}") for layer in ("bucket", "database", "server")}
    assert after == before
    for layer in ("bucket", "database", "server"):
        assert pending_change_sets(deploy_env, f"{deployed.prefix}-{layer}") == []


def test_dry_run_on_a_new_stack_prints_the_change_set_and_creates_nothing(deploy_env, network, tmp_path):
    token = uuid.uuid4().hex[:8]
    env_file = write_env_file(tmp_path / "dry.env", network, token)
    prefix = f"gs-dry-{token}"
    result = run_deploy(deploy_env, "--bucket", "--dry-run", "--env-file", str(env_file),
                        "--stack-prefix", prefix, check=True)
    out = result.stdout
    assert re.search(r"change set dryrun-\d{8}T\d{6}Z \(CREATE\):", out), out
    assert re.search(r"Add\s+ArtifactsBucket\s+AWS::S3::Bucket", out), out
    assert re.search(r"Add\s+ArtifactsBucketPolicy\s+AWS::S3::BucketPolicy", out), out
    assert "dry run: change set deleted without executing" in out
    cfn = client("cloudformation", deploy_env)
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName=f"{prefix}-bucket")
    buckets = [b["Name"] for b in client("s3", deploy_env).list_buckets()["Buckets"]]
    assert f"goodword-sqlmesh-test-{token}" not in buckets


def test_dry_run_on_a_deployed_stack_changes_nothing(deployed, deploy_env, tmp_path):
    changed = tmp_path / "changed.env"
    changed.write_text(deployed.env_file.read_text() + "RunRecordRetentionDays=45\n")
    result = run_deploy(deploy_env, "--bucket", "--dry-run", "--env-file", str(changed),
                        "--stack-prefix", deployed.prefix, "--template-dir", str(deployed.template_dir), check=True)
    assert re.search(r"change set dryrun-\d{8}T\d{6}Z \(UPDATE\):", result.stdout), result.stdout
    assert "dry run: change set deleted without executing" in result.stdout
    cfn = client("cloudformation", deploy_env)
    stack = cfn.describe_stacks(StackName=f"{deployed.prefix}-bucket")["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    assert params.get("RunRecordRetentionDays", "90") == "90"
    assert pending_change_sets(deploy_env, f"{deployed.prefix}-bucket") == []


def test_status_lists_every_layer(deployed, deploy_env):
    result = run_deploy(deploy_env, "--status", "--stack-prefix", deployed.prefix, check=True)
    for layer in ("bucket", "database", "server"):
        assert re.search(rf"^{layer}\s+{deployed.prefix}-{layer}\s+(CREATE|UPDATE)_COMPLETE", result.stdout, re.M)
    assert deployed.bucket_name in result.stdout
    missing = run_deploy(deploy_env, "--status", "--stack-prefix", f"gs-none-{uuid.uuid4().hex[:6]}", check=True)
    assert missing.stdout.count("NOT DEPLOYED") == 3


def test_a_failed_layer_stops_the_run_and_prints_its_events(deploy_env, network, tmp_path):
    token = uuid.uuid4().hex[:8]
    env_file = write_env_file(tmp_path / "bad.env", network, token, DataSubnetBId="subnet-0000000000000dead")
    prefix = f"gs-bad-{token}"
    template_dir = tmp_path / "templates"
    write_moto_templates(template_dir)
    result = run_deploy(deploy_env, "--all", "--env-file", str(env_file), "--stack-prefix", prefix,
                        "--template-dir", str(template_dir))
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "CREATE_COMPLETE" in out.split("== database")[0]  # the bucket layer went through
    assert "FAILED" in out.split("== database")[1]
    assert "subnet-0000000000000dead" in out  # the reason, from the API error / stack events
    assert f"stack events ({prefix}-database)" in out or f"failed resources ({prefix}-database)" in out
    assert "stopped: database failed; not run: server" in out
    assert "== server" not in out
    with pytest.raises(ClientError, match="does not exist"):
        client("cloudformation", deploy_env).describe_stacks(StackName=f"{prefix}-server")


def test_unmodified_database_layer_cannot_deploy_on_moto(deploy_env, network, tmp_path):
    """Names the gap the database tests work around: the real database.yaml, deployed as-is,
    fails on moto because moto has no AWS::RDS::DBCluster; deploy.sh reports it and stops."""
    assert moto_cannot_create("AWS::RDS::DBCluster"), (
        "moto now models AWS::RDS::DBCluster: deploy database.yaml as-is and assert it live"
    )
    token = uuid.uuid4().hex[:8]
    env_file = write_env_file(tmp_path / "real.env", network, token)
    prefix = f"gs-real-{token}"
    result = run_deploy(deploy_env, "--database", "--server", "--env-file", str(env_file),
                        "--stack-prefix", prefix)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: executing the change set" in result.stdout
    assert "stopped: database failed; not run: server" in result.stdout
    report_gap("AWS::RDS::DBCluster", "deploying the unmodified database.yaml fails on moto "
               "(ExecuteChangeSet answers HTTP 500)", "the template, in test_aurora_serverless_v2_cluster_checked_statically")


def test_unknown_env_file_keys_are_rejected(deploy_env, network, tmp_path):
    env_file = write_env_file(tmp_path / "typo.env", network, "typo", BuckettName="oops")
    result = run_deploy(deploy_env, "--bucket", "--dry-run", "--env-file", str(env_file))
    assert result.returncode == 2
    assert "unknown keys BuckettName" in result.stderr


# --------------------------------------------------------------------------------------------
# The host's deploy-app script, run against stand-ins for docker and aws
# --------------------------------------------------------------------------------------------

FAKE_DOCKER = r"""#!/bin/bash
# Stand-in for docker: logs each call; answers `compose config --services` from the compose
# file; `run ... artifacts pull` puts the compose file into the mounted project directory.
echo "docker $*" >> "$STUB_LOG"
if [ "$1" = compose ]; then
  case " $* " in
    *" config --services "*)
      "$STUB_PYTHON" -c 'import sys, yaml
for name, svc in yaml.safe_load(open(sys.argv[1]))["services"].items():
    if not svc.get("profiles"):
        print(name)' "$STUB_COMPOSE" ;;
  esac
  exit 0
fi
if [ "$1" = run ]; then
  host="$(echo "$*" | sed -n 's/.* -v \([^ ]*\):\/project .*/\1/p')"
  cp "$STUB_COMPOSE" "$host/docker-compose.yml"
fi
"""

FAKE_AWS = r"""#!/bin/bash
echo "aws $*" >> "$STUB_LOG"
if [ "$1" = secretsmanager ]; then echo '{"username": "ops", "password": "pa55-w0rd"}'; fi
"""

MINIMAL_COMPOSE = """services:
  ui: {image: x, command: [ui], logging: {driver: json-file, options: {max-size: 20m}}}
  scheduler: {image: x, command: [scheduler]}
  postgres: {image: postgres, profiles: [local]}
"""


class _ComposeLoader(yaml.SafeLoader):
    """Reads compose YAML with its `!override` / `!reset` tags."""


_ComposeLoader.add_constructor("!override", lambda loader, node: loader.construct_mapping(node, deep=True))
_ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def test_deploy_app_script_with_stand_in_docker_and_aws(deployed, deploy_env, tmp_path):
    ec2 = client("ec2", deploy_env)
    instance_id = stack_resources(deploy_env, f"{deployed.prefix}-server")["Server"]
    encoded = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    script = user_data_parts(base64.b64decode(encoded).decode())["text/x-shellscript"]

    root = tmp_path / "host"
    etc, opt = root / "etc" / "goodword", root / "opt" / "goodword"
    (opt / "project").mkdir(parents=True)
    etc.mkdir(parents=True)

    def relocate(text: str) -> str:
        return text.replace("/etc/goodword", str(etc)).replace("/opt/goodword", str(opt))

    # The heredocs the user data writes, in order: sqlmesh.env and compose.env share the ENV marker.
    envs = re.findall(r"<<'ENV'\n(.*?)\nENV\n", script, re.S)
    assert len(envs) == 2
    (etc / "sqlmesh.env").write_text(envs[0] + "\n")
    (etc / "compose.env").write_text(envs[1] + "\n")
    (etc / "deploy.conf").write_text(heredoc(script, "CONF"))
    deploy_app = tmp_path / "deploy-app"
    deploy_app.write_text(relocate(heredoc(script, "SCRIPT")))

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "aws").write_text(FAKE_AWS)
    for tool in ("docker", "aws"):
        (bin_dir / tool).chmod(0o755)
    compose_file = REPO / "docker-compose.yml"
    if not compose_file.exists():  # the service's compose file is another area's; fall back
        compose_file = tmp_path / "docker-compose.yml"
        compose_file.write_text(MINIMAL_COMPOSE)
    log = tmp_path / "calls.log"
    result = subprocess.run(
        ["bash", str(deploy_app)],
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "STUB_LOG": str(log),
            "STUB_COMPOSE": str(compose_file),
            "STUB_PYTHON": sys.executable,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = log.read_text().splitlines()
    image = "ghcr.io/goodword/sqlmesh:test"
    assert calls[0] == f"docker pull {image}"
    assert calls[1] == (
        f"docker run --rm --user 0:0 --env-file {etc}/sqlmesh.env -v {opt}/project:/project "
        f"{image} artifacts pull --dest /project"
    )
    assert calls[2].startswith("aws secretsmanager get-secret-value --region us-east-2 --secret-id sqlmesh-ui")
    assert calls[-2].endswith("up -d --no-build --pull never --remove-orphans")
    assert f"--env-file {etc}/compose.env" in calls[-2] and f"-f {etc}/compose.prod.yml" in calls[-2]
    assert not any("pa55-w0rd" in c for c in calls)

    ui_env = etc / "ui.env"
    assert ui_env.read_text() == "MESHCTL_UI_USERNAME=ops\nMESHCTL_UI_PASSWORD=pa55-w0rd\n"
    assert ui_env.stat().st_mode & 0o777 == 0o600

    override = yaml.load((etc / "compose.prod.yml").read_text(), Loader=_ComposeLoader)  # noqa: S506
    assert set(override["services"]) == {"ui", "scheduler"}  # not the local-only postgres
    for name, service in override["services"].items():
        assert service["logging"] == {
            "driver": "awslogs",
            "options": {"awslogs-region": REGION, "awslogs-group": deployed.log_group, "tag": name},
        }
    assert override["services"]["ui"]["env_file"] == [
        {"path": f"{etc}/sqlmesh.env"},
        {"path": f"{etc}/ui.env"},
    ]
    assert "env_file" not in override["services"]["scheduler"]
