"""Wires settings to adapters once per cold start. Handlers ask for a Runtime; tests build one with fakes."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from seedance_pipeline.errors import SecretUnavailable
from seedance_pipeline.ports import (
    CallbackHandoffPort,
    CallbackReaderPort,
    EventPublisherPort,
    JobStorePort,
    ObjectStoragePort,
    ProviderPort,
    ResultDownloaderPort,
    SecretTextPort,
)
from seedance_pipeline.settings import Settings

if TYPE_CHECKING:
    from boto3.session import Session

# While the API key secret cannot be read, ask Secrets Manager again at most this often: a poll pass of many jobs
# must not turn one outage (often a throttle) into one GetSecretValue call per job.
SECRET_RETRY_SECONDS = 10.0
# After a rotation, a token may be signed with a key newer than the cached one: a token that fails makes the key be
# read afresh, at most this often per container, so a flood of forged tokens cannot drive Secrets Manager calls.
SIGNING_KEY_REFRESH_SECONDS = 60.0


@dataclass
class Runtime:
    settings: Settings
    store: JobStorePort
    storage: ObjectStoragePort
    downloader: ResultDownloaderPort
    # Called with force_fetch=True after the provider refused the key, to bypass the secret's cache.
    provider_factory: Callable[[bool], ProviderPort]
    events: EventPublisherPort
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    # Seconds the invocation has left (Lambda's remaining time), when the caller knows it; else leases bound calls.
    time_left: Callable[[], float] | None = None
    # Provider callbacks: the signing key's source (None when no CALLBACK_SIGNING_SECRET_ID), the dialect's reading
    # of a callback body, and the hand-off to an asynchronous run of the callback function.
    signing_key: SecretTextPort | None = None
    callback_reader: CallbackReaderPort | None = None
    handoff: CallbackHandoffPort | None = None
    _provider: ProviderPort | None = field(default=None, repr=False)
    _refetch_key: bool = field(default=False, repr=False)
    _secret_error: SecretUnavailable | None = field(default=None, repr=False)
    _secret_retry_at: float = field(default=0.0, repr=False)
    _signing_error: SecretUnavailable | None = field(default=None, repr=False)
    _signing_retry_at: float = field(default=0.0, repr=False)
    _signing_refresh_at: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _deliveries: threading.BoundedSemaphore | None = field(default=None, repr=False)

    def delivery_slot(self) -> threading.BoundedSemaphore:
        """Held for the length of one job's result transfer: memory is bounded per invocation, not only per video."""
        with self._lock:
            if self._deliveries is None:
                self._deliveries = threading.BoundedSemaphore(self.settings.delivery_concurrency)
            return self._deliveries

    def provider(self) -> ProviderPort:
        """The provider client, built with the key on first use. Raises SecretUnavailable while the key's secret
        cannot be read; the next call after SECRET_RETRY_SECONDS tries again, so work resumes on its own."""
        with self._lock:
            if self._provider is None:
                known = self._secret_error
                if known is not None and self.clock() < self._secret_retry_at:
                    raise SecretUnavailable(known.message, secret_id=known.secret_id, cause=known.cause)
                try:
                    self._provider = self.provider_factory(self._refetch_key)
                except SecretUnavailable as exc:
                    self._secret_error, self._secret_retry_at = exc, self.clock() + SECRET_RETRY_SECONDS
                    raise
                self._secret_error = None
                self._refetch_key = False
            return self._provider

    def callback_signing_key(self) -> str:
        """The key callback tokens are signed with (its source caches it). Raises SecretUnavailable while it cannot
        be read, asking again at most every SECRET_RETRY_SECONDS, as for the API key."""
        source = self.signing_key
        if source is None:
            raise SecretUnavailable(
                "no callback signing key is configured (CALLBACK_SIGNING_SECRET_ID is empty)",
                secret_id="",
                cause="NotConfigured",
            )
        with self._lock:
            known = self._signing_error
            if known is not None and self.clock() < self._signing_retry_at:
                raise SecretUnavailable(known.message, secret_id=known.secret_id, cause=known.cause)
            try:
                key = source.get()
            except SecretUnavailable as exc:
                self._signing_error, self._signing_retry_at = exc, self.clock() + SECRET_RETRY_SECONDS
                raise
            self._signing_error = None
            return key

    def other_signing_keys(self) -> list[str]:
        """For a well-formed token that failed the cached key: the keys it may still be signed with after a rotation.
        The current one read afresh (at most every SIGNING_KEY_REFRESH_SECONDS), for URLs signed by a submitter that
        saw the new value first; the one before it, for URLs handed out before the rotation. Never raises: a key that
        cannot be read now is simply not offered (the token is refused and the poll net finishes the job)."""
        source = self.signing_key
        if source is None:
            return []
        keys: list[str] = []
        with self._lock:
            if self.clock() >= self._signing_refresh_at:
                self._signing_refresh_at = self.clock() + SIGNING_KEY_REFRESH_SECONDS
                with contextlib.suppress(SecretUnavailable):
                    keys.append(source.get(force_fetch=True))
        previous = source.previous()
        return [*keys, previous] if previous else keys

    def provider_deadline(self, lease_until: float | None) -> float:
        """A time.monotonic() deadline for one provider call: it must end, with room to record its answer, before
        the job's lease runs out (another worker could take the job) and before the invocation is killed."""
        settings = self.settings
        budget = settings.provider_call_budget_seconds
        if lease_until is not None:
            budget = min(budget, lease_until - self.clock() - settings.provider_call_margin_seconds)
        if self.time_left is not None:
            budget = min(budget, self.time_left() - settings.provider_call_margin_seconds)
        return time.monotonic() + max(0.0, budget)

    def delivery_deadline(self) -> float | None:
        """A time.monotonic() deadline shared by one job's downloads (video, then last frame): they end, with room to
        record the outcome, before the invocation is killed. The poll lease (LEASE_SECONDS, 330 s) outlives the poll
        function's 300 s timeout, so this bound keeps the lease too. None: the adapter's own default."""
        if self.time_left is None:
            return None
        return time.monotonic() + max(0.0, self.time_left() - self.settings.provider_call_margin_seconds)

    def refresh_provider(self) -> None:
        """After a 401/403 the operator may be fixing the key: bypass the secret's cache on the next call."""
        with self._lock:
            self._provider = None
            self._refetch_key = True


def build_runtime(settings: Settings, session: Session | None = None) -> Runtime:
    import boto3  # deferred: keeps the import of handler modules cheap for cold starts

    from seedance_pipeline.adapters.api_key import ApiKeySource
    from seedance_pipeline.adapters.ark_dialect import ArkDialect
    from seedance_pipeline.adapters.callback_handoff import LambdaHandoff
    from seedance_pipeline.adapters.job_events import JobEventPublisher, NoEvents
    from seedance_pipeline.adapters.job_store import JobStore
    from seedance_pipeline.adapters.object_storage import ObjectStorage
    from seedance_pipeline.adapters.provider_client import ProviderClient
    from seedance_pipeline.adapters.result_download import ResultDownloader
    from seedance_pipeline.adapters.signing_key import SigningKeySource
    from seedance_pipeline.adapters.unified_dialect import UnifiedDialect

    session = session or boto3.session.Session()
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from botocore.config import Config

    pool = Config(max_pool_connections=max(10, settings.poll_concurrency + settings.multipart_concurrency))
    # SigV4 presigned URLs: S3 refuses SigV2 signatures on buckets made since mid-2020.
    s3_config = pool.merge(Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))
    secrets = SecretsProvider(boto3_client=session.client("secretsmanager"))
    key_source = ApiKeySource(settings.api_key_secret_id, secrets)
    dialect = ArkDialect() if settings.provider_api == "ark" else UnifiedDialect()

    def provider_factory(force_fetch: bool) -> ProviderPort:
        return ProviderClient(
            settings.api_base_url,
            key_source.get(force_fetch=force_fetch),
            dialect=dialect,
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
            retries=settings.http_retries,
            max_retry_after=settings.max_retry_after_seconds,
            pool_size=settings.poll_concurrency,
        )

    events: EventPublisherPort = (
        JobEventPublisher(session.client("events"), settings.event_bus_name) if settings.publish_events else NoEvents()
    )
    return Runtime(
        settings=settings,
        store=JobStore(
            settings.jobs_table_name,
            session.client("dynamodb", config=pool),
            due_shards=settings.due_index_shards,
            # A paid job never answered lives twice MaxJobAgeMinutes from its submission (polling.check_job): its
            # slot must outlive that, or another job takes it while the first is still live at the provider.
            slot_lifetime_seconds=2 * settings.max_job_age_seconds + settings.lease_seconds + 3600,
            bookkeeping_lifetime_seconds=settings.max_job_age_seconds + settings.retention_seconds,
        ),
        storage=ObjectStorage(
            session.client("s3", config=s3_config),
            chunk_bytes=settings.multipart_chunk_bytes,
            concurrency=settings.multipart_concurrency,
            output_kms_key_id=settings.output_kms_key_arn,
        ),
        downloader=ResultDownloader(
            allow_private=settings.allow_private_downloads,
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
        ),
        provider_factory=provider_factory,
        events=events,
        signing_key=(
            SigningKeySource(settings.callback_signing_secret_id, secrets)
            if settings.callback_signing_secret_id
            else None
        ),
        callback_reader=dialect,
        handoff=LambdaHandoff(lambda: session.client("lambda")),
    )


_shared: Runtime | None = None


def shared_runtime() -> Runtime:
    """The cold-start Runtime of this Lambda container, built on first use and reused by warm invocations."""
    global _shared
    if _shared is None:
        from seedance_pipeline.settings import get_settings

        _shared = build_runtime(get_settings())
    return _shared


def reset_shared_runtime() -> None:
    """For the local stack and tests, which run many 'cold starts' in one process."""
    global _shared
    from seedance_pipeline.settings import get_settings

    _shared = None
    get_settings.cache_clear()
