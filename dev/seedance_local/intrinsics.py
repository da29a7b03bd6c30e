"""A small evaluator for the CloudFormation intrinsic functions template.yaml uses, offline.

Parameters, pseudo parameters and conditions resolve here; references to resources resolve once the local stack
has created them (``Resolver.refs`` / ``Resolver.attributes``), and ``resolve_partially`` leaves the rest in place
for moto's CloudFormation. ``LocalStackError`` lives here, at the bottom of the local-stack modules, because the
evaluator is the first to raise it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

_PARAM_REF = re.compile(r"\$\{([^}!][^}]*)\}")
NO_VALUE = object()


class LocalStackError(RuntimeError):
    """The local stack could not be built (bad parameters, an unsupported template construct, a moto failure)."""


def param_str(value: Any) -> str:
    """A value as CloudFormation passes a parameter: booleans lower-case, lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(param_str(v) for v in value)
    return str(value)


def pseudo_parameters(region: str, account_id: str, stack_name: str) -> dict[str, str]:
    """AWS::Region, AWS::AccountId and the other pseudo parameters of a stack with this name."""
    return {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/{uuid.uuid4()}",
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }


class Unresolved(Exception):
    """A reference to something not (yet) known: a resource moto has not created, or one with no local stand-in."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Resolver:
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
        """Fully resolve ``value``; raises Unresolved naming the first unknown reference."""
        result = self._resolve(value)
        return None if result is NO_VALUE else result

    def resolve_partially(self, value: Any) -> Any:
        """Resolve what is known and leave references to unknown resources in place (for moto to resolve).

        Conditions are always decided here (moto gets no Conditions section), so Fn::If never survives.
        """
        if isinstance(value, list):
            return [r for r in (self.resolve_partially(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        try:
            return self._resolve(value)
        except Unresolved:
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
        return {k: r for k, r in ((k, self.resolve_partially(v)) for k, v in value.items()) if r is not NO_VALUE}

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
            return [r for r in (self._resolve(v) for v in value) if r is not NO_VALUE]
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
                return param_str(left) == param_str(right)
            if key == "Fn::Not":
                return not self.truth(arg[0])
            if key == "Fn::And":
                return all(self.truth(v) for v in arg)
            if key == "Fn::Or":
                return any(self.truth(v) for v in arg)
            if key == "Fn::Contains":
                items, item = (self._resolve(v) for v in arg)
                return param_str(item) in [param_str(i) for i in items]
            if key == "Fn::Select":
                index, items = (self._resolve(v) for v in arg)
                return items[int(index)]
            if key == "Fn::Split":
                delimiter, text = (self._resolve(v) for v in arg)
                return str(text).split(delimiter)
            if key == "Fn::Join":
                delimiter, items = (self._resolve(v) for v in arg)
                return str(delimiter).join(param_str(i) for i in items)
            if key.startswith("Fn::"):
                raise LocalStackError(f"intrinsic {key} is not supported by the local stack")
        return {k: r for k, r in ((k, self._resolve(v)) for k, v in value.items()) if r is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        for table in (self.parameters, self.pseudo, self.refs):
            if name in table:
                return table[name]
        raise Unresolved(name)

    def _getatt(self, resource: str, attribute: str) -> str:
        if (resource, attribute) in self.attributes:
            return self.attributes[(resource, attribute)]
        raise Unresolved(f"{resource}.{attribute}")

    def _sub_variables(self, arg: Any) -> tuple[str, dict[str, Any]]:
        if isinstance(arg, str):
            return arg, {}
        text, variables = arg
        return text, {name: self._resolve(v) for name, v in variables.items()}

    def _lookup(self, token: str, variables: Mapping[str, Any]) -> str:
        if token in variables:
            return param_str(variables[token])
        if "." in token:
            resource, attribute = token.split(".", 1)
            return self._getatt(resource, attribute)
        return param_str(self._ref(token))

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
            except Unresolved:
                unknown[name] = self.resolve_partially(v)

        def replace(match: re.Match[str]) -> str:
            token = match.group(1).strip()
            if token in unknown:
                return match.group(0)
            try:
                return self._lookup(token, known)
            except Unresolved:
                return match.group(0)

        out = _PARAM_REF.sub(replace, text)
        return [out, unknown] if unknown else out


def references(value: Any) -> Iterator[str]:
    """Logical ids referenced by Ref, Fn::GetAtt, Fn::Sub and DependsOn-free expressions inside ``value``."""
    if isinstance(value, list):
        for item in value:
            yield from references(item)
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
                yield from references(variables)
            else:
                yield from references(arg)
