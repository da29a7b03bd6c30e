"""A local AWS stack for the tests and the demo, built from ``template.yaml`` itself.

moto runs in server mode on a free loopback port, so every client (the handlers, the simulator, the tests) talks
to it over real HTTP. The data resources are not described a second time here: the SAM template is translated to
CloudFormation with aws-sam-translator, the resources moto's CloudFormation can create (S3 buckets, DynamoDB
tables, SQS queues, SNS topics, EventBridge rules and buses) are created through moto's ``CreateStack``, and the few
things moto's CloudFormation leaves out (the Secrets Manager secret, the bucket policy, and bucket/table settings
such as TTL, point-in-time recovery, lifecycle and public access block) are applied with boto3 from the same
translated properties. Buckets the functions are told about but the template does not create (ExistingBucketName,
OutputBucketName: the user's own buckets in AWS) are created as plain buckets. Parameter defaults, the function
environment and the physical names all come from the template, so the local schema cannot drift from the deployed one.

    from seedance_local.stack import LocalStack

    with LocalStack.start(api_key="k", parameters={"ReturnLastFrame": "true"}) as stack:
        env = stack.environment(api_base_url="http://127.0.0.1:8787")
        stack.client("s3").put_object(Bucket=stack.bucket, Key="uploads/cat.png", Body=b"...")

moto keeps its state in process-global backends: two stacks started in one process share them (their names never
collide), and a ``moto.mock_aws`` context exiting in the same process resets them.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_REGION",
    "DUMMY_ACCESS_KEY_ID",
    "DUMMY_SECRET_ACCESS_KEY",
    "LocalStack",
    "LocalStackError",
    "find_template",
    "load_template",
    "parameter_defaults",
    "resolve_parameters",
    "resolve_template",
    "translate_template",
]

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account
DUMMY_ACCESS_KEY_ID = DUMMY_SECRET_ACCESS_KEY = "testing"  # noqa: S105 - moto accepts any credentials
DEFAULT_API_KEY = "local-api-key"

# Resource types moto's CloudFormation can create; everything else is either created below with boto3
# (_BOTO3_CREATED) or has no local stand-in (functions, roles, permissions, log groups, layers).
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
_BOTO3_CREATED = frozenset({"AWS::SecretsManager::Secret", "AWS::S3::BucketPolicy"})

_SAM_LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::Api": "DefinitionUri",
    "AWS::Serverless::HttpApi": "DefinitionUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}

# The AWS managed policies SAM may name; a static map, so translation needs no AWS account.
_MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, name in (
        ("service-role/", "AWSLambdaBasicExecutionRole"),
        ("service-role/", "AWSLambdaVPCAccessExecutionRole"),
        ("service-role/", "AWSLambdaRole"),
        ("", "AWSXrayWriteOnlyAccess"),
        ("", "AWSXRayDaemonWriteAccess"),
        ("", "CloudWatchLambdaInsightsExecutionRolePolicy"),
    )
}

_PARAM_REF = re.compile(r"\$\{([^}!][^}]*)\}")
_NO_VALUE = object()

log = logging.getLogger(__name__)


class LocalStackError(RuntimeError):
    """The local stack could not be built (bad parameters, an unsupported template construct, a moto failure)."""


# --------------------------------------------------------------------------------------------------------------------
# Template loading and translation
# --------------------------------------------------------------------------------------------------------------------


def find_template(start: Path | None = None) -> Path:
    """Return the project's template.yaml: the first one found walking up from this file (or ``start``)."""
    candidates = [start] if start is not None else [Path(__file__).resolve().parent, Path.cwd()]
    for base in candidates:
        for directory in (base, *base.parents):
            path = directory / "template.yaml"
            if path.is_file():
                return path
    raise LocalStackError("template.yaml not found; pass template_path=")


def load_template(path: Path | str | None = None) -> dict[str, Any]:
    """Parse the SAM template (short-form intrinsics such as !Ref become their long form)."""
    from samtranslator.yaml_helper import yaml_parse

    template_path = Path(path) if path is not None else find_template()
    parsed: dict[str, Any] = yaml_parse(template_path.read_text(encoding="utf-8"))
    return parsed


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Each template parameter's default, as the string CloudFormation would pass ('' when it has none)."""
    return {name: _param_str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}


def resolve_parameters(template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Defaults from the template, updated with ``overrides``, checked as CloudFormation would check them.

    Raises LocalStackError naming every unknown parameter, every value outside AllowedValues / AllowedPattern /
    length / range constraints, and every failed template Rule assertion.
    """
    specs: dict[str, Any] = template.get("Parameters", {})
    values = parameter_defaults(template)
    problems: list[str] = []
    for name, value in (overrides or {}).items():
        if name not in specs:
            problems.append(f"unknown parameter {name!r} (template parameters: {', '.join(sorted(specs))})")
            continue
        values[name] = _param_str(value)
    for name, spec in specs.items():
        problems.extend(_check_parameter(name, spec, values[name]))
    if not problems:
        problems.extend(_check_rules(template, values))
    if problems:
        raise LocalStackError("invalid template parameters:\n  " + "\n  ".join(problems))
    return values


def translate_template(
    template: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    region: str = DEFAULT_REGION,
) -> dict[str, Any]:
    """Translate the SAM template into plain CloudFormation, offline (no AWS account, no network).

    Local CodeUri/ContentUri paths are swapped for placeholder S3 URIs first, as `sam validate` does; they only
    matter to `sam build`.
    """
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = copy.deepcopy(dict(template) if template is not None else load_template())
    for resource in sam.get("Resources", {}).values():
        prop = _SAM_LOCAL_URI_PROPERTIES.get(resource.get("Type", ""))
        props = resource.get("Properties") or {}
        if prop and isinstance(props.get(prop), str) and not props[prop].startswith("s3://"):
            props[prop] = f"s3://local-placeholder/{props[prop].strip('/')}"
    values = dict(parameter_defaults(sam))
    values.update({k: _param_str(v) for k, v in (parameters or {}).items()})
    translator = Translator(_MANAGED_POLICIES, Parser(), boto_session=_dummy_session(region))
    translated: dict[str, Any] = translator.translate(
        sam, parameter_values=values, get_managed_policy_map=lambda: _MANAGED_POLICIES
    )
    return translated


def resolve_template(
    template: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    *,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    stack_name: str = "seedance-local",
) -> dict[str, Any]:
    """The translated template as CloudFormation would deploy it with these parameter values, offline.

    Resources and outputs whose Condition is false are left out; parameters, pseudo parameters, conditions (Fn::If)
    and the functions over them are resolved. References to resources stay as they are (Ref, Fn::GetAtt, and the
    ${Resource} / ${Resource.Attribute} tokens of an Fn::Sub), since only a deployment knows their values.
    """
    values = parameter_defaults(template)
    values.update({k: _param_str(v) for k, v in (parameters or {}).items()})
    resolver = _Resolver(template, values, _pseudo_parameters(region, account_id, stack_name))

    def deployed(spec: Mapping[str, Any]) -> bool:
        return "Condition" not in spec or resolver.condition(spec["Condition"])

    resources = {
        logical: {**spec, "Properties": resolver.resolve_partially(spec.get("Properties") or {})}
        for logical, spec in template.get("Resources", {}).items()
        if deployed(spec)
    }
    outputs = {
        name: {**spec, "Value": resolver.resolve_partially(spec["Value"])}
        for name, spec in template.get("Outputs", {}).items()
        if deployed(spec)
    }
    return {"Parameters": values, "Resources": resources, "Outputs": outputs}


def _pseudo_parameters(region: str, account_id: str, stack_name: str) -> dict[str, str]:
    return {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/{uuid.uuid4()}",
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }


def _dummy_session(region: str) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY_ID, aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY, region_name=region
    )


def _param_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_param_str(v) for v in value)
    return str(value)


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> list[str]:
    problems = []
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [_param_str(v) for v in allowed]:
        problems.append(f"{name}={value!r} is not one of {', '.join(_param_str(v) for v in allowed)}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        problems.append(f"{name}={value!r} does not match {pattern}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        problems.append(f"{name} is shorter than {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        problems.append(f"{name} is longer than {spec['MaxLength']}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return [*problems, f"{name}={value!r} is not a number"]
        if "MinValue" in spec and number < float(spec["MinValue"]):
            problems.append(f"{name}={value} is below {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            problems.append(f"{name}={value} is above {spec['MaxValue']}")
    return problems


def _check_rules(template: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    resolver = _Resolver(template, values, pseudo={})
    problems = []
    for rule_name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not resolver.truth(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions", []):
            if not resolver.truth(assertion["Assert"]):
                problems.append(f"rule {rule_name}: {assertion.get('AssertDescription', 'assertion failed')}")
    return problems


# --------------------------------------------------------------------------------------------------------------------
# A small evaluator for the CloudFormation intrinsics the template uses
# --------------------------------------------------------------------------------------------------------------------


class _Unresolved(Exception):
    """A reference to something not (yet) known: a resource moto has not created, or one with no local stand-in."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Resolver:
    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str],
        pseudo: Mapping[str, str],
        refs: Mapping[str, str] | None = None,
        attributes: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.conditions: Mapping[str, Any] = template.get("Conditions", {})
        self.parameters = parameters
        self.pseudo = pseudo
        self.refs: dict[str, str] = dict(refs or {})
        self.attributes: dict[tuple[str, str], str] = dict(attributes or {})
        self._condition_cache: dict[str, bool] = {}

    # -- public ------------------------------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Fully resolve ``value``; raises _Unresolved naming the first unknown reference."""
        result = self._resolve(value)
        return None if result is _NO_VALUE else result

    def resolve_partially(self, value: Any) -> Any:
        """Resolve what is known and leave references to unknown resources in place (for moto to resolve).

        Conditions are always decided here (moto gets no Conditions section), so Fn::If never survives.
        """
        if isinstance(value, list):
            return [r for r in (self.resolve_partially(v) for v in value) if r is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        try:
            return self._resolve(value)
        except _Unresolved:
            pass
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve_partially(when_true if self.condition(name) else when_false)
            if key == "Fn::Sub":
                return {"Fn::Sub": self._partial_sub(arg)}
            if key in ("Ref", "Fn::GetAtt"):
                return value
            if key.startswith("Fn::"):
                return {key: self.resolve_partially(arg)}
        return {k: r for k, r in ((k, self.resolve_partially(v)) for k, v in value.items()) if r is not _NO_VALUE}

    def truth(self, value: Any) -> bool:
        result = self._resolve(value)
        if isinstance(result, bool):
            return result
        return str(result).lower() == "true"

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            if name not in self.conditions:
                raise LocalStackError(f"unknown condition {name!r}")
            self._condition_cache[name] = self.truth(self.conditions[name])
        return self._condition_cache[name]

    # -- evaluation --------------------------------------------------------------------------------------------------

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self._resolve(v) for v in value) if r is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                resource, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self._getatt(resource, self._resolve(attribute))
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self._resolve(when_true if self.condition(name) else when_false)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self._resolve(v) for v in arg)
                return _param_str(left) == _param_str(right)
            if key == "Fn::Not":
                return not self.truth(arg[0])
            if key == "Fn::And":
                return all(self.truth(v) for v in arg)
            if key == "Fn::Or":
                return any(self.truth(v) for v in arg)
            if key == "Fn::Contains":
                items, item = (self._resolve(v) for v in arg)
                return _param_str(item) in [_param_str(i) for i in items]
            if key == "Fn::Select":
                index, items = (self._resolve(v) for v in arg)
                return items[int(index)]
            if key == "Fn::Split":
                delimiter, text = (self._resolve(v) for v in arg)
                return str(text).split(delimiter)
            if key == "Fn::Join":
                delimiter, items = (self._resolve(v) for v in arg)
                return str(delimiter).join(_param_str(i) for i in items)
            if key.startswith("Fn::"):
                raise LocalStackError(f"intrinsic {key} is not supported by the local stack")
        return {k: r for k, r in ((k, self._resolve(v)) for k, v in value.items()) if r is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        for table in (self.parameters, self.pseudo, self.refs):
            if name in table:
                return table[name]
        raise _Unresolved(name)

    def _getatt(self, resource: str, attribute: str) -> str:
        if (resource, attribute) in self.attributes:
            return self.attributes[(resource, attribute)]
        raise _Unresolved(f"{resource}.{attribute}")

    def _sub_variables(self, arg: Any) -> tuple[str, dict[str, Any]]:
        if isinstance(arg, str):
            return arg, {}
        text, variables = arg
        return text, {name: self._resolve(v) for name, v in variables.items()}

    def _lookup(self, token: str, variables: Mapping[str, Any]) -> str:
        if token in variables:
            return _param_str(variables[token])
        if "." in token:
            resource, attribute = token.split(".", 1)
            return self._getatt(resource, attribute)
        return _param_str(self._ref(token))

    def _sub(self, arg: Any) -> str:
        text, variables = self._sub_variables(arg)
        out = _PARAM_REF.sub(lambda m: self._lookup(m.group(1).strip(), variables), text)
        return out.replace("${!", "${")

    def _partial_sub(self, arg: Any) -> Any:
        text, raw_vars = (arg, {}) if isinstance(arg, str) else arg
        known: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for name, v in raw_vars.items():
            try:
                known[name] = self._resolve(v)
            except _Unresolved:
                unknown[name] = self.resolve_partially(v)

        def replace(match: re.Match[str]) -> str:
            token = match.group(1).strip()
            if token in unknown:
                return match.group(0)
            try:
                return self._lookup(token, known)
            except _Unresolved:
                return match.group(0)

        out = _PARAM_REF.sub(replace, text)
        return [out, unknown] if unknown else out


def _references(value: Any) -> Iterator[str]:
    """Logical ids referenced by Ref, Fn::GetAtt, Fn::Sub and DependsOn-free expressions inside ``value``."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                yield (arg.split(".", 1)[0] if isinstance(arg, str) else arg[0])
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                for token in _PARAM_REF.findall(text):
                    if token not in variables:
                        yield token.split(".", 1)[0]
                yield from _references(variables)
            else:
                yield from _references(arg)


# --------------------------------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------------------------------


class _EndpointSession(boto3.Session):
    """A boto3 session whose clients and resources default to the moto endpoint."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        super().__init__(
            aws_access_key_id=DUMMY_ACCESS_KEY_ID, aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY, region_name=region
        )
        self.endpoint_url = endpoint_url

    def client(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("endpoint_url") is None:
            kwargs["endpoint_url"] = self.endpoint_url
        return super().client(*args, **kwargs)

    def resource(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("endpoint_url") is None:
            kwargs["endpoint_url"] = self.endpoint_url
        return super().resource(*args, **kwargs)


@dataclass
class LocalStack:
    """moto in server mode plus the template's data resources. Build it with :meth:`LocalStack.start`."""

    endpoint_url: str
    region: str
    account_id: str
    stack_name: str
    stack_id: str
    parameters: dict[str, str] = field(repr=False)  # holds ApiKey: keep it out of reprs and logs
    """Every template parameter's value (defaults from template.yaml, updated with the overrides)."""
    template: dict[str, Any] = field(repr=False)
    """The translated CloudFormation template."""
    resources: dict[str, str]
    """Logical id -> physical id of every resource created locally."""
    function_environments: dict[str, dict[str, str]] = field(repr=False)
    """Function logical id -> its environment variables exactly as the deployed stack would set them."""
    skipped_resources: dict[str, str] = field(default_factory=dict)
    """Logical id -> type of the translated resources with no local stand-in (functions, roles, ...)."""
    deviations: list[str] = field(default_factory=list)
    """Where the local resources knowingly differ from the deployed ones, and why."""
    _server: Any = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- construction ------------------------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        api_key: str = DEFAULT_API_KEY,
        parameters: Mapping[str, Any] | None = None,
        *,
        template_path: Path | str | None = None,
        region: str = DEFAULT_REGION,
        stack_name: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        quiet: bool = True,
    ) -> LocalStack:
        """Start a moto server on ``host:port`` (0: a free port) and create the template's resources in it.

        ``api_key`` becomes the ApiKey parameter (so the secret the template creates holds it) unless
        ``parameters`` sets ApiKey itself. ``parameters`` are template parameter values by name.
        """
        from moto.server import ThreadedMotoServer

        if quiet:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        sam = load_template(template_path)
        overrides = {"ApiKey": api_key, **dict(parameters or {})}
        values = resolve_parameters(sam, overrides)
        name = stack_name or f"seedance-local-{secrets.token_hex(3)}"

        server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        server.start()
        try:
            bound_host, bound_port = server.get_host_and_port()
            endpoint = f"http://{bound_host}:{bound_port}"
            stack = cls._build(sam, values, endpoint, region, name)
        except BaseException:
            _stop_server(server)
            raise
        stack._server = server
        return stack

    @classmethod
    def _build(cls, sam: dict[str, Any], values: dict[str, str], endpoint: str, region: str, name: str) -> LocalStack:
        session: Any = _EndpointSession(endpoint, region)
        clients: dict[str, Any] = {}

        def client(service: str) -> Any:
            if service not in clients:
                clients[service] = session.client(service, config=Config(retries={"max_attempts": 2}))
            return clients[service]

        account_id = client("sts").get_caller_identity()["Account"]
        cfn = translate_template(sam, values, region)
        pseudo = _pseudo_parameters(region, account_id, name)
        stack_id = pseudo["AWS::StackId"]
        resolver = _Resolver(cfn, values, pseudo)
        all_resources: dict[str, dict[str, Any]] = cfn["Resources"]
        active = {
            logical: spec
            for logical, spec in all_resources.items()
            if "Condition" not in spec or resolver.condition(spec["Condition"])
        }
        moto_managed = {k: v for k, v in active.items() if v["Type"] in MOTO_CFN_TYPES}
        boto3_created = {k: v for k, v in active.items() if v["Type"] in _BOTO3_CREATED}
        skipped = {k: v["Type"] for k, v in active.items() if k not in moto_managed and k not in boto3_created}

        # 1. Secrets first: kept resources and the environment may refer to them.
        for logical, spec in boto3_created.items():
            if spec["Type"] == "AWS::SecretsManager::Secret":
                _create_secret(client("secretsmanager"), logical, spec, resolver)

        # 2. Everything moto's CloudFormation can create, in one stack.
        body = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {
                logical: _moto_resource(logical, spec, resolver, set(moto_managed))
                for logical, spec in moto_managed.items()
            },
        }
        cf = client("cloudformation")
        cf.create_stack(StackName=name, TemplateBody=json.dumps(body))
        status = _wait_for_stack(cf, name)
        if status != "CREATE_COMPLETE":
            raise LocalStackError(f"moto could not create the local stack: {status}")
        for summary in cf.describe_stack_resources(StackName=name)["StackResources"]:
            resolver.refs[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
        for logical, spec in moto_managed.items():
            resolver.attributes.update(_attributes(client, logical, spec["Type"], resolver.refs[logical], region))

        # 3. What moto's CloudFormation leaves out, from the same translated properties.
        deviations: list[str] = []
        for logical, spec in moto_managed.items():
            _apply_unmodelled_properties(client, spec, resolver.refs[logical], resolver)
        for logical, spec in boto3_created.items():
            if spec["Type"] == "AWS::S3::BucketPolicy":
                props = resolver.resolve(spec["Properties"])
                policy, dropped = _local_bucket_policy(props["PolicyDocument"])
                for sid in dropped:
                    deviations.append(
                        f"{logical}: statement {sid} (deny unless aws:SecureTransport) is not applied: the local "
                        "endpoint is plain HTTP and moto enforces the condition, so it would deny every request"
                    )
                if policy["Statement"]:
                    client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(policy))
                resolver.refs[logical] = props["Bucket"]

        # 4. The functions' environment, resolved exactly as CloudFormation would.
        environments: dict[str, dict[str, str]] = {}
        for logical, spec in active.items():
            if spec["Type"] == "AWS::Lambda::Function":
                variables = spec.get("Properties", {}).get("Environment", {}).get("Variables", {})
                try:
                    environments[logical] = {k: _param_str(v) for k, v in resolver.resolve(variables).items()}
                except _Unresolved as exc:
                    raise LocalStackError(
                        f"{logical}: environment refers to {exc.name}, which has no local stand-in"
                    ) from exc

        # Buckets the functions name but the stack does not create (ExistingBucketName, OutputBucketName) are existing
        # buckets in AWS; create them locally. An existing input bucket also gets the one manual step its deployment
        # asks for (the ExistingBucketSetup output): EventBridge notifications on, so its "Object Created" events
        # reach the default bus, where the template's ExistingBucketUploadsRule filters them.
        s3 = client("s3")
        stack_buckets = {resolver.refs[k] for k, spec in moto_managed.items() if spec["Type"] == "AWS::S3::Bucket"}
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

        return cls(
            endpoint_url=endpoint,
            region=region,
            account_id=account_id,
            stack_name=name,
            stack_id=stack_id,
            parameters=dict(values),
            template=cfn,
            resources=dict(resolver.refs),
            function_environments=environments,
            skipped_resources=skipped,
            deviations=deviations,
            _clients=clients,
        )

    # -- the interface the tests and the demo use -------------------------------------------------------------------

    @property
    def bucket(self) -> str:
        """The input bucket: InputBucket, or the bucket ExistingBucketName names when the stack creates none."""
        if "InputBucket" in self.resources:
            return self.resources["InputBucket"]
        return self._any_env("INPUT_BUCKET")

    @property
    def output_bucket(self) -> str:
        return self._any_env("OUTPUT_BUCKET")

    @property
    def table_name(self) -> str:
        return self.resources["JobsTable"]

    @property
    def secret_id(self) -> str:
        """ARN of the secret holding the API key (what the functions get as API_KEY_SECRET_ID)."""
        return self._any_env("API_KEY_SECRET_ID")

    @property
    def failure_queue_url(self) -> str:
        return self.resources["SubmitFailureQueue"]

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def environment(
        self, api_base_url: str | None = None, *, function: str | None = None, **overrides: Any
    ) -> dict[str, str]:
        """Environment for running a handler against this stack.

        Every variable the template gives the functions (``function``: one function's logical id, default all of
        them), resolved from the parameter values, plus what a process needs to reach moto: AWS_ENDPOINT_URL,
        AWS_DEFAULT_REGION/AWS_REGION, dummy credentials; ALLOW_PRIVATE_DOWNLOADS=true (the simulator is on
        loopback) and POWERTOOLS_TRACE_DISABLED=true (no X-Ray daemon). ``api_base_url`` sets API_BASE_URL;
        ``overrides`` set any variable by name (a value of None removes it).
        """
        if function is not None:
            env = dict(self.function_environments[function])
        else:
            env = {}
            for variables in self.function_environments.values():
                env.update(variables)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
                "ALLOW_PRIVATE_DOWNLOADS": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        if api_base_url is not None:
            env["API_BASE_URL"] = api_base_url
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = _param_str(value)
        return env

    def boto3_session(self) -> boto3.Session:
        """A boto3 session with dummy credentials whose clients and resources default to the moto endpoint."""
        return _EndpointSession(self.endpoint_url, self.region)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client bound to the moto endpoint (cached per service when no kwargs are given)."""
        session: Any = self.boto3_session()
        if kwargs:
            return session.client(service, **kwargs)
        if service not in self._clients:
            self._clients[service] = session.client(service)
        return self._clients[service]

    def resource(self, service: str, **kwargs: Any) -> Any:
        """A boto3 resource bound to the moto endpoint."""
        session: Any = self.boto3_session()
        return session.resource(service, **kwargs)

    def stop(self) -> None:
        """Stop the moto server and free its port. Safe to call twice."""
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        if self._server is not None:
            _stop_server(self._server)
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _any_env(self, name: str) -> str:
        for variables in self.function_environments.values():
            if name in variables:
                return variables[name]
        raise KeyError(name)


# --------------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------------


def _stop_server(server: Any) -> None:
    server.stop()
    # ThreadedMotoServer.stop() shuts the serve loop down but leaves the listening socket open; close it so the
    # port is free again.
    inner = getattr(server, "_server", None)
    if inner is not None:
        inner.server_close()


def _wait_for_stack(cf: Any, name: str, timeout: float = 30.0) -> str:
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


def _moto_resource(logical: str, spec: Mapping[str, Any], resolver: _Resolver, kept: set[str]) -> dict[str, Any]:
    """The resource as moto's CloudFormation gets it: intrinsics resolved where possible, and every property that
    refers to a resource with no local stand-in (a bucket's NotificationConfiguration, a rule's Lambda Targets)
    dropped."""
    known = kept | set(resolver.refs) | set(resolver.parameters) | set(resolver.pseudo)
    properties = {}
    for prop, value in (spec.get("Properties") or {}).items():
        missing = sorted({r for r in _references(value) if r not in known and r != "AWS::NoValue"})
        if missing:
            log.debug("local stack: dropping %s.%s (refers to %s)", logical, prop, ", ".join(missing))
            continue
        resolved = resolver.resolve_partially(value)
        if resolved is not _NO_VALUE:
            properties[prop] = resolved
    if spec["Type"] == "AWS::S3::Bucket" and not isinstance(properties.get("BucketName"), str):
        properties["BucketName"] = f"{resolver.pseudo['AWS::StackName']}-{logical}".lower()
    resource: dict[str, Any] = {"Type": spec["Type"], "Properties": properties}
    depends = spec.get("DependsOn", [])
    depends = [depends] if isinstance(depends, str) else depends
    if kept_depends := [d for d in depends if d in kept]:
        resource["DependsOn"] = kept_depends
    return resource


def _local_bucket_policy(document: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
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


def _create_secret(sm: Any, logical: str, spec: Mapping[str, Any], resolver: _Resolver) -> None:
    props = resolver.resolve(spec.get("Properties") or {})
    kwargs: dict[str, Any] = {
        # CloudFormation names an unnamed secret "<LogicalId>-<random>"; do the same.
        "Name": props.get("Name") or f"{logical}-{secrets.token_hex(6)}",
        "SecretString": props.get("SecretString", ""),
    }
    if props.get("Description"):
        kwargs["Description"] = props["Description"]
    if props.get("Tags"):
        kwargs["Tags"] = props["Tags"]
    resolver.refs[logical] = sm.create_secret(**kwargs)["ARN"]


def _attributes(
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


def _apply_unmodelled_properties(
    client: Callable[[str], Any], spec: Mapping[str, Any], physical: str, resolver: _Resolver
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


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (a connection is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) != 0
