"""The resources of the translated template in moto: what moto's CloudFormation creates, and what it leaves out.

moto's CloudFormation creates the buckets, tables, queues, topics and EventBridge rules; the Secrets Manager secret
and the bucket policy are created here through boto3, and so are the bucket and table settings moto's
CloudFormation ignores (encryption, public access block, lifecycle, TTL, point-in-time recovery), all from the
same translated properties.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from seedance_local.intrinsics import NO_VALUE, Resolver, references

# Resource types moto's CloudFormation can create; everything else is either created below with boto3
# (BOTO3_CREATED) or has no local stand-in (functions, roles, permissions, log groups, layers).
MOTO_CFN_TYPES = frozenset(
    {
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::SNS::Topic",
        "AWS::Events::Rule",
        "AWS::Events::EventBus",
    }
)
BOTO3_CREATED = frozenset({"AWS::SecretsManager::Secret", "AWS::S3::BucketPolicy"})

log = logging.getLogger(__name__)


def wait_for_stack(cf: Any, name: str, timeout: float = 30.0) -> str:
    """The stack's status once moto is done with it: CREATE_COMPLETE, or the failure and its reason."""
    deadline = time.monotonic() + timeout
    while True:
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        status: str = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            if status != "CREATE_COMPLETE":
                reason = stack.get("StackStatusReason", "")
                status = f"{status} {reason}".strip()
            return status
        time.sleep(0.05)


def moto_resource(logical: str, spec: Mapping[str, Any], resolver: Resolver, kept: set[str]) -> dict[str, Any]:
    """The resource as moto's CloudFormation gets it: intrinsics resolved where possible, and every property that
    refers to a resource with no local stand-in (a bucket's NotificationConfiguration, a rule's Lambda Targets)
    dropped."""
    known = kept | set(resolver.refs) | set(resolver.parameters) | set(resolver.pseudo)
    properties = {}
    for prop, value in (spec.get("Properties") or {}).items():
        missing = sorted({r for r in references(value) if r not in known and r != "AWS::NoValue"})
        if missing:
            log.debug("local stack: dropping %s.%s (refers to %s)", logical, prop, ", ".join(missing))
            continue
        resolved = resolver.resolve_partially(value)
        if resolved is not NO_VALUE:
            properties[prop] = resolved
    if spec["Type"] == "AWS::S3::Bucket" and not isinstance(properties.get("BucketName"), str):
        properties["BucketName"] = f"{resolver.pseudo['AWS::StackName']}-{logical}".lower()
    resource: dict[str, Any] = {"Type": spec["Type"], "Properties": properties}
    depends = spec.get("DependsOn", [])
    depends = [depends] if isinstance(depends, str) else depends
    if kept_depends := [d for d in depends if d in kept]:
        resource["DependsOn"] = kept_depends
    return resource


def local_bucket_policy(document: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The bucket policy without its TLS-only statements (the local endpoint is plain HTTP)."""
    kept, dropped = [], []
    statements = document.get("Statement", [])
    for index, statement in enumerate([statements] if isinstance(statements, dict) else statements):
        condition_keys = {key for test in (statement.get("Condition") or {}).values() for key in test}
        if statement.get("Effect") == "Deny" and "aws:SecureTransport" in condition_keys:
            dropped.append(str(statement.get("Sid", index)))
        else:
            kept.append(statement)
    return {**document, "Statement": kept}, dropped


# GenerateSecretString's properties that are also GetRandomPassword's parameters (CloudFormation makes that call).
_RANDOM_PASSWORD_OPTIONS = (
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeLowercase",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "IncludeSpace",
    "RequireEachIncludedType",
)


def generated_secret_string(sm: Any, generate: Mapping[str, Any]) -> str:
    """The SecretString CloudFormation makes from GenerateSecretString: a random password with the declared length
    and exclusions, or a JSON template with that password under GenerateStringKey."""
    options = {name: generate[name] for name in _RANDOM_PASSWORD_OPTIONS if name in generate}
    for name, value in options.items():
        if name == "PasswordLength":
            options[name] = int(value)
        elif name != "ExcludeCharacters":
            options[name] = value in (True, "true", "True")
    password: str = sm.get_random_password(**options)["RandomPassword"]
    if "SecretStringTemplate" not in generate:
        return password
    document = json.loads(generate["SecretStringTemplate"])
    document[generate["GenerateStringKey"]] = password
    return json.dumps(document)


def create_secret(sm: Any, logical: str, spec: Mapping[str, Any], resolver: Resolver) -> None:
    props = resolver.resolve(spec.get("Properties") or {})
    if "GenerateSecretString" in props:
        secret_string = generated_secret_string(sm, props["GenerateSecretString"])
    else:
        secret_string = props.get("SecretString", "")
    kwargs: dict[str, Any] = {
        # CloudFormation names an unnamed secret "<LogicalId>-<random>"; do the same.
        "Name": props.get("Name") or f"{logical}-{secrets.token_hex(6)}",
        "SecretString": secret_string,
    }
    if props.get("Description"):
        kwargs["Description"] = props["Description"]
    if props.get("Tags"):
        kwargs["Tags"] = props["Tags"]
    resolver.refs[logical] = sm.create_secret(**kwargs)["ARN"]


def resource_attributes(
    client: Callable[[str], Any], logical: str, rtype: str, physical: str, region: str
) -> dict[tuple[str, str], str]:
    if rtype == "AWS::S3::Bucket":
        return {
            (logical, "Arn"): f"arn:aws:s3:::{physical}",
            (logical, "DomainName"): f"{physical}.s3.amazonaws.com",
            (logical, "RegionalDomainName"): f"{physical}.s3.{region}.amazonaws.com",
        }
    if rtype == "AWS::DynamoDB::Table":
        table = client("dynamodb").describe_table(TableName=physical)["Table"]
        attrs = {(logical, "Arn"): table["TableArn"]}
        if "LatestStreamArn" in table:
            attrs[(logical, "StreamArn")] = table["LatestStreamArn"]
        return attrs
    if rtype == "AWS::SQS::Queue":
        arn = client("sqs").get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"]
        return {
            (logical, "Arn"): arn["QueueArn"],
            (logical, "QueueUrl"): physical,
            (logical, "QueueName"): physical.rsplit("/", 1)[-1],
        }
    if rtype == "AWS::SNS::Topic":
        return {(logical, "TopicArn"): physical, (logical, "TopicName"): physical.rsplit(":", 1)[-1]}
    if rtype == "AWS::Events::Rule":
        rule = client("events").describe_rule(Name=physical.rsplit("/", 1)[-1])
        return {(logical, "Arn"): rule["Arn"]}
    if rtype == "AWS::Events::EventBus":
        bus = client("events").describe_event_bus(Name=physical.rsplit("/", 1)[-1])
        return {(logical, "Arn"): bus["Arn"], (logical, "Name"): bus["Name"]}
    return {}


def apply_unmodelled_properties(
    client: Callable[[str], Any], spec: Mapping[str, Any], physical: str, resolver: Resolver
) -> None:
    """Apply the properties moto's CloudFormation ignores, through the service APIs."""
    wanted = {
        "AWS::S3::Bucket": (
            "BucketEncryption",
            "PublicAccessBlockConfiguration",
            "OwnershipControls",
            "VersioningConfiguration",
            "LifecycleConfiguration",
        ),
        "AWS::DynamoDB::Table": ("TimeToLiveSpecification", "PointInTimeRecoverySpecification"),
    }.get(spec["Type"], ())
    raw = spec.get("Properties") or {}
    props = {name: resolver.resolve(raw[name]) for name in wanted if name in raw}
    if spec["Type"] == "AWS::S3::Bucket":
        s3 = client("s3")
        if "BucketEncryption" in props:  # moto's CloudFormation drops BucketKeyEnabled
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                    **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=physical, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=physical, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if "OwnershipControls" in props:
            s3.put_bucket_ownership_controls(Bucket=physical, OwnershipControls=props["OwnershipControls"])
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=physical, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
            )
        if "LifecycleConfiguration" in props:
            rules = [_lifecycle_rule(rule) for rule in props["LifecycleConfiguration"]["Rules"]]
            s3.put_bucket_lifecycle_configuration(Bucket=physical, LifecycleConfiguration={"Rules": rules})
    elif spec["Type"] == "AWS::DynamoDB::Table":
        ddb = client("dynamodb")
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled", False) in (True, "true"):
            ddb.update_time_to_live(
                TableName=physical,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and pitr.get("PointInTimeRecoveryEnabled", False) in (True, "true"):
            ddb.update_continuous_backups(
                TableName=physical,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the shape of the S3 API (the subset the template uses and a bit more)."""
    out: dict[str, Any] = {"Status": rule["Status"]}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    unknown = set(rule) - {"Id", "Status", "Prefix", "AbortIncompleteMultipartUpload", "ExpirationInDays",
                           "NoncurrentVersionExpiration"}  # fmt: skip
    if unknown:
        log.warning("local stack: lifecycle rule %s: ignoring %s", rule.get("Id"), ", ".join(sorted(unknown)))
    return out


def apply_bucket_policies(
    client: Callable[[str], Any], boto3_created: Mapping[str, Mapping[str, Any]], resolver: Resolver
) -> list[str]:
    """Put each AWS::S3::BucketPolicy (without its TLS-only statements); returns the deviations that makes."""
    deviations: list[str] = []
    for logical, spec in boto3_created.items():
        if spec["Type"] != "AWS::S3::BucketPolicy":
            continue
        props = resolver.resolve(spec["Properties"])
        policy, dropped = local_bucket_policy(props["PolicyDocument"])
        for sid in dropped:
            deviations.append(
                f"{logical}: statement {sid} (deny unless aws:SecureTransport) is not applied: the local "
                "endpoint is plain HTTP and moto enforces the condition, so it would deny every request"
            )
        if policy["Statement"]:
            client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(policy))
        resolver.refs[logical] = props["Bucket"]
    return deviations


def create_external_buckets(s3: Any, environments: Mapping[str, Mapping[str, str]], stack_buckets: set[str]) -> None:
    """Create the buckets the functions name but the stack does not (ExistingBucketName, OutputBucketName).

    They are existing buckets in AWS. An existing input bucket also gets the one manual step its deployment asks
    for (the ExistingBucketSetup output): EventBridge notifications on, so its "Object Created" events reach the
    default bus, where the template's ExistingBucketUploadsRule filters them.
    """
    for env in environments.values():
        for variable in ("INPUT_BUCKET", "OUTPUT_BUCKET"):
            bucket = env.get(variable)
            if not bucket or bucket in stack_buckets:
                continue
            if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
                s3.create_bucket(Bucket=bucket)
            if variable == "INPUT_BUCKET":
                s3.put_bucket_notification_configuration(
                    Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
                )
