"""template.yaml as CloudFormation would see it: loading, SAM translation, parameter checks, resolution.

Everything here runs offline (no AWS account, no network): aws-sam-translator turns the SAM template into plain
CloudFormation, and the parameter values are checked the way CloudFormation checks them before a deployment.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3

from seedance_local.intrinsics import LocalStackError, Resolver, param_str, pseudo_parameters

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_REGION",
    "DUMMY_ACCESS_KEY_ID",
    "DUMMY_SECRET_ACCESS_KEY",
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
    """Parse the SAM template (short-form intrinsics such as !Ref become their long form). Each caller gets its
    own copy; the parse (about a quarter of a second) is done once per text of the file."""
    template_path = Path(path) if path is not None else find_template()
    return copy.deepcopy(_parsed_template(template_path.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=8)
def _parsed_template(text: str) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    parsed: dict[str, Any] = yaml_parse(text)
    return parsed


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Each template parameter's default, as the string CloudFormation would pass ('' when it has none)."""
    return {name: param_str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}


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
        values[name] = param_str(value)
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
    values.update({k: param_str(v) for k, v in (parameters or {}).items()})
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
    values.update({k: param_str(v) for k, v in (parameters or {}).items()})
    resolver = Resolver(template, values, pseudo_parameters(region, account_id, stack_name))

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


def _dummy_session(region: str) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY_ID, aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY, region_name=region
    )


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> list[str]:
    problems = []
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [param_str(v) for v in allowed]:
        problems.append(f"{name}={value!r} is not one of {', '.join(param_str(v) for v in allowed)}")
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
    resolver = Resolver(template, values, pseudo={})
    problems = []
    for rule_name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not resolver.truth(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions", []):
            if not resolver.truth(assertion["Assert"]):
                problems.append(f"rule {rule_name}: {assertion.get('AssertDescription', 'assertion failed')}")
    return problems
