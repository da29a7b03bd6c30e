"""The one typed view of the environment, parsed once per cold start. Nothing else reads os.environ."""

from __future__ import annotations

import ipaddress
import math
import re
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from seedance_pipeline.models import Ratio, Resolution, VideoRequest
from seedance_pipeline.rules.model_catalogue import (
    BUILT_IN_CATALOGUE,
    ModelCatalogue,
    ModelSpec,
    Platform,
    ProviderApi,
    describe_durations,
    parse_extra_models,
)

ImageDelivery = Literal["presigned-url", "data-url"]
ServiceTier = Literal["default", "flex"]
DEFAULT_MODEL = "doubao-seedance-1-0-pro-250528"
# The native Ark v3 API's base URLs (docs/provider-api.md, "The native Ark v3 API"); a key works in its region only.
VOLCENGINE_ARK_BASE_URL = "https://ark.cn-beijing.volces.com/api/v3"
BYTEPLUS_ARK_BASE_URL = "https://ark.ap-southeast.bytepluses.com/api/v3"
# The bounds Ark puts on execution_expires_after (seconds).
ARK_MIN_EXPIRES_AFTER = 3600
ARK_MAX_EXPIRES_AFTER = 259_200
# Ark's own default for execution_expires_after: what a flex task, slow by design, is given unless a job may live
# longer (docs/provider-api.md, "The native Ark v3 API").
ARK_DEFAULT_EXPIRES_AFTER = 172_800
# The platform an Ark base URL belongs to, by host suffix: retirements are per platform.
_PLATFORM_HOSTS: tuple[tuple[str, Platform], ...] = (("bytepluses.com", "byteplus"), ("volces.com", "volcengine"))
# A unified gateway's request field that carries the callback URL: a plain JSON field name.
_CALLBACK_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# The fields the unified body already carries (rules/video_request.provider_body): a CALLBACK_FIELD naming one
# would overwrite the model, prompt or images with the callback URL and send a request nobody asked for.
_UNIFIED_BODY_FIELDS = frozenset(VideoRequest.model_fields) - {"prompt_truncated"} | {"images"}


class Settings(BaseSettings):
    """Template parameters as the functions see them (see template.yaml for the descriptions)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    jobs_table_name: str
    input_bucket: str = ""
    output_bucket: str = ""
    # The output bucket's customer managed KMS key (OutputBucketKmsKeyArn): results are written with it. Empty: the
    # bucket's default encryption applies.
    output_kms_key_arn: str = ""
    # Empty: the ark dialect takes Volcengine's URL; the unified dialect has no default (a gateway is the user's).
    api_base_url: str = ""
    api_key_secret_id: str = ""

    # Checked per job against the catalogue (not here): a bad default then rejects each upload with a reason
    # instead of failing every cold start and losing the uploads Lambda gives up retrying.
    model: str = DEFAULT_MODEL
    # Operator-declared models merged over the built-in catalogue (rules/model_catalogue.py), as JSON.
    extra_models: Annotated[tuple[ModelSpec, ...], NoDecode] = ()
    provider_api: ProviderApi = "unified"
    service_tier: ServiceTier = "default"
    default_prompt: str = "A slow, cinematic camera move that brings the picture to life."
    resolution: Resolution = "720p"
    ratio: Ratio = "adaptive"
    duration: int = 5
    watermark: bool = False
    camera_fixed: bool = False
    return_last_frame: bool = False
    generate_audio: bool = False
    # One new task (a new seed, or silent) when the provider's moderation flagged only the output: never an input.
    resubmit_on_output_moderation: bool = False

    input_prefix: str = "uploads/"
    output_prefix: str = "videos/"
    max_in_flight: int = Field(default=10, ge=1, le=5000)
    # A float so the local stack and tests can use seconds-long ages; the template asks for whole minutes.
    max_job_age_minutes: float = Field(default=120, gt=0)
    allow_private_downloads: bool = False
    image_delivery: ImageDelivery = "presigned-url"
    job_retention_days: int = Field(default=30, ge=1)
    poll_concurrency: int = Field(default=32, ge=1, le=256)
    due_index_shards: int = Field(default=4, ge=1, le=64)
    # Provider tokens the stack may commit per UTC day (estimates of the jobs sent); 0 means no cap.
    daily_token_budget: int = Field(default=0, ge=0)
    # Provider callbacks (docs/callbacks.md): the CallbackFunction's URL, the secret its per-job tokens are
    # signed with, and (unified dialect only) the request field the gateway reads the URL from.
    callback_url: str = ""
    callback_signing_secret_id: str = ""
    callback_field: str = ""
    # The function that checks and delivers what a callback announces (CallbackWorkerFunction): the public intake
    # hands each accepted callback to it with an asynchronous Invoke, and holds no other right.
    callback_worker_function: str = ""

    # Tunables with defaults chosen by measurement (docs/performance.md).
    event_bus_name: str = "default"
    publish_events: bool = True
    # A poll lease outlives the poll function's 300 s timeout, so a live invocation never loses its job.
    lease_seconds: int = 330
    claim_lease_seconds: int = 120
    poll_window_seconds: float = 50.0
    max_delivery_attempts: int = 5
    max_video_bytes: int = 2 * 1024**3
    max_last_frame_bytes: int = 64 * 1024**2
    multipart_chunk_bytes: int = 8 * 1024**2
    multipart_concurrency: int = 4
    # Lambda sets this; deliveries at once are derived from it (delivery_concurrency). Unset off Lambda.
    aws_lambda_function_memory_size: int | None = Field(default=None, ge=128)
    # What one poll invocation may use for result transfers, as a share of the function's memory, after the
    # process itself (Python, boto3, Powertools: about 150 MiB measured).
    delivery_memory_share: float = Field(default=0.6, gt=0, le=0.9)
    process_baseline_mib: int = 150
    presigned_url_seconds: int = 3600
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    http_retries: int = 3
    max_retry_after_seconds: float = 20.0
    poll_deadline_margin_seconds: float = 20.0
    # One provider call, retries and Retry-After waits included, never takes longer than this, nor than the job's
    # lease and the invocation's remaining time less the margin (the room left to record the answer). It must
    # stay below claim_lease_seconds and SubmitFunction's Timeout (template.yaml), or a POST outlives its guards.
    provider_call_budget_seconds: float = Field(default=45.0, gt=0)
    provider_call_margin_seconds: float = Field(default=10.0, ge=0)
    # 1.0 fits Seedance's timings; the local simulator renders in seconds, so the demo uses about 0.1.
    check_schedule_scale: float = Field(default=1.0, gt=0, le=10)

    @field_validator("input_prefix", "output_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        value = value.lstrip("/")
        return value if not value or value.endswith("/") else value + "/"

    @field_validator("daily_token_budget", mode="before")
    @classmethod
    def _empty_budget_is_no_cap(cls, value: Any) -> Any:
        return 0 if value is None or (isinstance(value, str) and not value.strip()) else value

    @field_validator("duration")
    @classmethod
    def _duration_is_offered(cls, value: int) -> int:
        # Which lengths a model and dialect offer is the catalogue's call, per job (as for Model): here only shape.
        if value != -1 and not 1 <= value <= 600:
            raise ValueError("Duration must be a whole number of seconds (5 or 10 with a gateway), or -1")
        return value

    @field_validator("extra_models", mode="before")
    @classmethod
    def _extra_models_from_json(cls, value: Any) -> tuple[ModelSpec, ...]:
        return parse_extra_models(value)

    @model_validator(mode="after")
    def _extra_models_fit_the_dialect(self) -> Settings:
        for spec in self.extra_models:
            if not spec.text_only and not spec.durations_for(self.provider_api):
                raise ValueError(
                    f"EXTRA_MODELS: model {spec.id} declares durations {describe_durations(spec.durations)} s, none "
                    f"of which the {self.provider_api} provider API offers (5 or 10)"
                )
        return self

    @field_validator("api_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _base_url_fits_the_dialect(self) -> Settings:
        if self.api_base_url:
            return self
        if self.provider_api == "ark":
            object.__setattr__(self, "api_base_url", VOLCENGINE_ARK_BASE_URL)
            return self
        raise ValueError(
            "API_BASE_URL (the ApiBaseUrl parameter) is empty: set it to your gateway's base URL (without /v2/...) "
            f"for PROVIDER_API=unified, or set PROVIDER_API=ark for a Volcengine Ark key ({VOLCENGINE_ARK_BASE_URL}) "
            f"or a BytePlus ModelArk key (with API_BASE_URL={BYTEPLUS_ARK_BASE_URL})"
        )

    @model_validator(mode="after")
    def _output_bucket_defaults_to_input(self) -> Settings:
        if not self.output_bucket and self.input_bucket:
            object.__setattr__(self, "output_bucket", self.input_bucket)
        return self

    @model_validator(mode="after")
    def _prefixes_do_not_contain_each_other(self) -> Settings:
        # Every key under the inner prefix is also under the outer one: either every upload would be ignored as an
        # output, or every output would trigger the submit function again. An empty prefix contains everything.
        inner, outer = self.input_prefix, self.output_prefix
        if inner.startswith(outer) or outer.startswith(inner):
            raise ValueError(
                f"InputPrefix {inner!r} and OutputPrefix {outer!r} must be non-empty and neither may start with "
                "the other (for example uploads/ and videos/)"
            )
        return self

    @field_validator("callback_url", "callback_signing_secret_id", "callback_field")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _callback_settings_are_usable(self) -> Settings:
        if self.callback_field and not _CALLBACK_FIELD.fullmatch(self.callback_field):
            raise ValueError(f"CALLBACK_FIELD {self.callback_field!r} is not a plain request field name")
        if self.callback_field in _UNIFIED_BODY_FIELDS:
            raise ValueError(
                f"CALLBACK_FIELD {self.callback_field!r} is a field of the request itself (one of "
                f"{', '.join(sorted(_UNIFIED_BODY_FIELDS))}): name the field your gateway reads the callback URL from"
            )
        if not self.callback_url:
            return self
        # The URL carries each job's token: plain http would hand it to anyone on the path.
        parts = urlsplit(self.callback_url)
        loopback = _is_loopback(parts.hostname or "")
        if not parts.hostname or not (
            parts.scheme == "https" or (parts.scheme == "http" and loopback and self.allow_private_downloads)
        ):
            raise ValueError(
                "CALLBACK_URL must be an https URL (plain http only on a loopback address, with "
                "ALLOW_PRIVATE_DOWNLOADS on: the local stack)"
            )
        if "#" in self.callback_url or {"job", "token"} & set(parse_qs(parts.query, keep_blank_values=True)):
            # A fragment would swallow each job's query (never sent); a job or token of its own would be joined to
            # the job's by Lambda ("a,b"): either way every callback would be refused.
            raise ValueError("CALLBACK_URL may carry neither a #fragment nor `job` or `token` query parameters")
        if not self.callback_signing_secret_id:
            raise ValueError("CALLBACK_URL is set but CALLBACK_SIGNING_SECRET_ID is empty: tokens cannot be signed")
        return self

    @property
    def sends_callbacks(self) -> bool:
        """Whether submissions carry a per-job callback URL: ark always reads `callback_url`; a unified gateway
        only when the operator named the field it reads (CALLBACK_FIELD)."""
        return bool(self.callback_url) and (self.provider_api == "ark" or bool(self.callback_field))

    @property
    def model_catalogue(self) -> ModelCatalogue:
        return BUILT_IN_CATALOGUE.merged(self.extra_models)

    @property
    def delivery_concurrency(self) -> int:
        """Deliveries one poll invocation runs at once: each buffers up to (multipart_concurrency + 1) parts, so
        status checks may run PollConcurrency-wide while transfers stay inside the function's memory."""
        if self.aws_lambda_function_memory_size is None:
            return self.poll_concurrency
        per_delivery = self.multipart_chunk_bytes * (self.multipart_concurrency + 1)
        budget = self.aws_lambda_function_memory_size * 1024**2 * self.delivery_memory_share
        budget -= self.process_baseline_mib * 1024**2
        return max(1, min(self.poll_concurrency, int(budget // per_delivery)))

    @property
    def flex(self) -> bool:
        """Whether tasks go to Ark's flex (offline) tier: the tier is sent only in the ark dialect."""
        return self.provider_api == "ark" and self.service_tier == "flex"

    @property
    def max_job_age_seconds(self) -> float:
        """The job's age limit. With flex it is at least Ark's own 48 h: a flex task waits for spare capacity by
        design, and a job given up on at 2 h would leave a running task to finish, be billed and never be fetched."""
        configured = self.max_job_age_minutes * 60
        return max(configured, ARK_DEFAULT_EXPIRES_AFTER) if self.flex else configured

    @property
    def ark_expires_after_seconds(self) -> int:
        """Ark's execution_expires_after: the task ends `expired` when the job's own age limit does, within Ark's
        bounds, so a job timed out here is not left to run (and be billed) on. With flex: 48 h or the longer age."""
        return int(min(ARK_MAX_EXPIRES_AFTER, max(ARK_MIN_EXPIRES_AFTER, math.ceil(self.max_job_age_seconds))))

    @property
    def platform(self) -> Platform | None:
        """The Ark platform the stack talks to, where its base URL tells; None for a gateway (the model id's own
        spelling then says which platform's retirements apply)."""
        if self.provider_api != "ark":
            return None
        host = (urlsplit(self.api_base_url).hostname or "").lower()
        return next((platform for suffix, platform in _PLATFORM_HOSTS if host.endswith(suffix)), None)

    @property
    def retention_seconds(self) -> int:
        return self.job_retention_days * 86400


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()  # filled from the environment
