"""The Lambda pieces a local stack serves itself: each function's Function URL and the Invoke API.

moto's Lambda would run functions in Docker; the harness runs the real handlers in-process instead, so the stack
only has to give them what AWS gives them: an HTTPS endpoint per ``AWS::Lambda::Url`` (here plain HTTP on loopback,
its base URL what ``!GetAtt <Url>.FunctionUrl`` resolves to) and an Invoke endpoint the handlers' boto3 clients
reach through ``AWS_ENDPOINT_URL_LAMBDA``. Both exist from the start of the stack; a handler is attached later with
:meth:`LocalLambdaServices.serve`, when a pipeline loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from seedance_local.function_url import FunctionUrlServer
from seedance_local.intrinsics import Resolver, references
from seedance_local.lambda_invoke import Handler, LambdaInvokeEmulator

# Lambda's default when a function sets no Timeout (SAM Globals usually do).
DEFAULT_TIMEOUT_SECONDS = 3.0


class LocalLambdaServices:
    """Made before the stack's resources and started once conditions are known, so any failure can stop it."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.invoke: LambdaInvokeEmulator | None = None
        self.urls: dict[str, FunctionUrlServer] = {}
        """Function logical id -> the server standing in for its Function URL."""
        self.timeouts: dict[str, float] = {}
        """Function logical id -> its Timeout from the template, in seconds."""
        self.deviations: list[str] = []

    def start(self, resources: Mapping[str, Mapping[str, Any]], resolver: Resolver, account_id: str) -> None:
        """Start the Invoke API and one server per Function URL among ``resources`` (those kept after conditions),
        and teach ``resolver`` the URLs' and their functions' attributes."""
        self.invoke = LambdaInvokeEmulator(region=self.region, account_id=account_id).start()
        for logical, spec in resources.items():
            if spec["Type"] == "AWS::Lambda::Function":
                timeout = (spec.get("Properties") or {}).get("Timeout", DEFAULT_TIMEOUT_SECONDS)
                self.timeouts[logical] = float(timeout)
        for spec in resources.values():
            if spec["Type"] == "AWS::Lambda::Function":
                # A function that hands work to another names it in its environment (`!Ref Fn`; its role names its
                # Arn): locally, a function's name is its logical id, which Invoke serves. Only those: what else
                # names a function (a schedule's target, a permission) has no local stand-in and stays unresolved.
                environment = (spec.get("Properties") or {}).get("Environment")
                for named in set(references(environment)) & set(self.timeouts):
                    resolver.refs.setdefault(named, named)
                    resolver.attributes[(named, "Arn")] = self.emulator.function_arn(named)
        for logical, spec in resources.items():
            if spec["Type"] == "AWS::Lambda::Url":
                self._serve_url(logical, spec, resolver)

    @property
    def emulator(self) -> LambdaInvokeEmulator:
        if self.invoke is None:
            raise RuntimeError("the local Lambda services are not started")
        return self.invoke

    def _serve_url(self, logical: str, spec: Mapping[str, Any], resolver: Resolver) -> None:
        props = spec.get("Properties") or {}
        (function,) = {r for r in references(props.get("TargetFunctionArn")) if r in self.timeouts}
        server = FunctionUrlServer(
            function_name=function, region=self.region, timeout_seconds=self.timeouts[function]
        ).start()
        self.urls[function] = server
        arn = self.emulator.function_arn(function)
        # The function's name locally is its logical id, so its context's ARN ends in :function:<LogicalId>.
        resolver.refs.setdefault(function, function)
        resolver.attributes[(function, "Arn")] = arn
        resolver.refs[logical] = arn  # Ref of an AWS::Lambda::Url is its function's ARN
        resolver.attributes[(logical, "FunctionArn")] = arn
        resolver.attributes[(logical, "FunctionUrl")] = server.base_url
        self.deviations.append(
            f"{logical}: served over plain HTTP on loopback ({server.base_url}), not HTTPS on lambda-url.on.aws"
        )

    def function_url(self, function: str) -> FunctionUrlServer | None:
        return self.urls.get(function)

    def serve(self, function: str, handler: Handler) -> None:
        """Run ``handler`` for ``function``: its Function URL's requests and its Invoke calls."""
        self.emulator.register(function, handler, timeout_seconds=self.timeouts.get(function, DEFAULT_TIMEOUT_SECONDS))
        server = self.urls.get(function)
        if server is not None:
            server.route_to(handler, context_factory=lambda: self.emulator.context_for(function))

    def withdraw(self, function: str, *, wait_seconds: float = 30.0) -> bool:
        """Stop routing to ``function`` and wait for its background runs; False if some still ran at the end."""
        server = self.urls.get(function)
        if server is not None:
            server.unroute()
        idle = self.emulator.wait_idle(wait_seconds)
        self.emulator.unregister(function)
        return idle

    def environment(self) -> dict[str, str]:
        """What a handler's process needs to reach these services (botocore's service-specific endpoint)."""
        return {"AWS_ENDPOINT_URL_LAMBDA": self.emulator.endpoint_url}

    def stop(self) -> None:
        """Stop every server. Safe to call twice, and on services that never started."""
        for server in self.urls.values():
            server.stop()
        self.urls.clear()
        if self.invoke is not None:
            self.invoke.stop()
            self.invoke = None
