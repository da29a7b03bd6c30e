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

    from seedance_local.local_stack import LocalStack

    with LocalStack.start(api_key="k", parameters={"ReturnLastFrame": "true"}) as stack:
        env = stack.environment(api_base_url="http://127.0.0.1:8787")
        stack.client("s3").put_object(Bucket=stack.bucket, Key="uploads/cat.png", Body=b"...")

moto keeps its state in process-global backends: two stacks started in one process share them (their names never
collide), and a ``moto.mock_aws`` context exiting in the same process resets them.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

from seedance_local.intrinsics import LocalStackError, Resolver, Unresolved, param_str, pseudo_parameters
from seedance_local.lambda_services import LocalLambdaServices
from seedance_local.moto_resources import (
    BOTO3_CREATED,
    MOTO_CFN_TYPES,
    apply_bucket_policies,
    apply_unmodelled_properties,
    create_external_buckets,
    create_secret,
    moto_resource,
    resource_attributes,
    wait_for_stack,
)
from seedance_local.stack_template import (
    DEFAULT_REGION,
    DUMMY_ACCESS_KEY_ID,
    DUMMY_SECRET_ACCESS_KEY,
    load_template,
    resolve_parameters,
    translate_template,
)

__all__ = ["DEFAULT_API_KEY", "LocalStack", "LocalStackError", "port_is_free"]

DEFAULT_API_KEY = "local-api-key"


# The simulator's default address (`python -m seedance_simulator`), the ApiBaseUrl a local stack deploys with.
LOCAL_API_BASE_URL = "http://127.0.0.1:8787"


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
    lambda_services: LocalLambdaServices | None = field(default=None, repr=False)
    """The Function URLs and the Invoke API the stack serves (see lambda_services.py)."""
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

        from seedance_local.moto_atomic_writes import apply_atomic_writes
        from seedance_local.moto_kms_buckets import apply_kms_buckets

        apply_atomic_writes()
        apply_kms_buckets()
        if quiet:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        sam = load_template(template_path)
        # The functions' API_BASE_URL is set per run (the simulator's address); the template wants one at deploy.
        overrides = {"ApiKey": api_key, "ApiBaseUrl": LOCAL_API_BASE_URL, **dict(parameters or {})}
        values = resolve_parameters(sam, overrides)
        name = stack_name or f"seedance-local-{secrets.token_hex(3)}"

        server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        server.start()
        lambda_services = LocalLambdaServices(region)
        try:
            bound_host, bound_port = server.get_host_and_port()
            endpoint = f"http://{bound_host}:{bound_port}"
            stack = cls._build(sam, values, endpoint, region, name, lambda_services)
        except BaseException:
            lambda_services.stop()
            _stop_server(server)
            raise
        stack._server = server
        return stack

    @classmethod
    def _build(
        cls,
        sam: dict[str, Any],
        values: dict[str, str],
        endpoint: str,
        region: str,
        name: str,
        lambda_services: LocalLambdaServices | None = None,
    ) -> LocalStack:
        session: Any = _EndpointSession(endpoint, region)
        clients: dict[str, Any] = {}

        def client(service: str) -> Any:
            if service not in clients:
                clients[service] = session.client(service, config=Config(retries={"max_attempts": 2}))
            return clients[service]

        account_id = client("sts").get_caller_identity()["Account"]
        cfn = translate_template(sam, values, region)
        pseudo = pseudo_parameters(region, account_id, name)
        stack_id = pseudo["AWS::StackId"]
        resolver = Resolver(cfn, values, pseudo)
        all_resources: dict[str, dict[str, Any]] = cfn["Resources"]
        active = {
            logical: spec
            for logical, spec in all_resources.items()
            if "Condition" not in spec or resolver.condition(spec["Condition"])
        }
        moto_managed = {k: v for k, v in active.items() if v["Type"] in MOTO_CFN_TYPES}
        boto3_created = {k: v for k, v in active.items() if v["Type"] in BOTO3_CREATED}
        skipped = {k: v["Type"] for k, v in active.items() if k not in moto_managed and k not in boto3_created}
        # Function URLs and the Invoke API first: the functions' environment may name a URL.
        lambda_services = lambda_services or LocalLambdaServices(region)
        lambda_services.start(active, resolver, account_id)

        # 1. Secrets first: kept resources and the environment may refer to them.
        for logical, spec in boto3_created.items():
            if spec["Type"] == "AWS::SecretsManager::Secret":
                create_secret(client("secretsmanager"), logical, spec, resolver)

        # 2. Everything moto's CloudFormation can create, in one stack.
        body = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {
                logical: moto_resource(logical, spec, resolver, set(moto_managed))
                for logical, spec in moto_managed.items()
            },
        }
        cf = client("cloudformation")
        cf.create_stack(StackName=name, TemplateBody=json.dumps(body))
        status = wait_for_stack(cf, name)
        if status != "CREATE_COMPLETE":
            raise LocalStackError(f"moto could not create the local stack: {status}")
        for summary in cf.describe_stack_resources(StackName=name)["StackResources"]:
            resolver.refs[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
        for logical, spec in moto_managed.items():
            resolver.attributes.update(
                resource_attributes(client, logical, spec["Type"], resolver.refs[logical], region)
            )

        # 3. What moto's CloudFormation leaves out, from the same translated properties.
        for logical, spec in moto_managed.items():
            apply_unmodelled_properties(client, spec, resolver.refs[logical], resolver)
        deviations = apply_bucket_policies(client, boto3_created, resolver) + lambda_services.deviations

        # 4. The functions' environment, resolved exactly as CloudFormation would.
        environments: dict[str, dict[str, str]] = {}
        for logical, spec in active.items():
            if spec["Type"] == "AWS::Lambda::Function":
                variables = spec.get("Properties", {}).get("Environment", {}).get("Variables", {})
                try:
                    environments[logical] = {k: param_str(v) for k, v in resolver.resolve(variables).items()}
                except Unresolved as exc:
                    raise LocalStackError(
                        f"{logical}: environment refers to {exc.name}, which has no local stand-in"
                    ) from exc

        stack_buckets = {resolver.refs[k] for k, spec in moto_managed.items() if spec["Type"] == "AWS::S3::Bucket"}
        create_external_buckets(client("s3"), environments, stack_buckets)

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
            lambda_services=lambda_services,
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
        AWS_DEFAULT_REGION/AWS_REGION, dummy credentials; AWS_ENDPOINT_URL_LAMBDA (the local Invoke API);
        ALLOW_PRIVATE_DOWNLOADS=true (the simulator is on loopback) and POWERTOOLS_TRACE_DISABLED=true (no X-Ray
        daemon). ``api_base_url`` sets API_BASE_URL; ``overrides`` set any variable by name (None removes it).
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
        if self.lambda_services is not None:
            env.update(self.lambda_services.environment())
        if api_base_url is not None:
            env["API_BASE_URL"] = api_base_url
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = param_str(value)
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
        if self.lambda_services is not None:
            self.lambda_services.stop()
            self.lambda_services = None
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


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (a connection is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) != 0
