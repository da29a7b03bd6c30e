"""The Lambda runtime provides botocore. One older than S3's conditional writes (If-Match on PutObject, late 2024)
would refuse the conditional sidecar switch with a ParamValidationError on every delivery, and every paid video
would end FAILED: the adapter detects the fields in the client's own service model and then switches the sidecar
with an unconditional PUT, as before conditional writes existed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from seedance_pipeline.adapters.object_storage import ObjectStorage


def _client() -> Any:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="stub-only",
        aws_secret_access_key="stub-only",
    )


def test_the_botocore_under_test_has_conditional_writes_and_the_switch_sends_them() -> None:
    client = _client()
    storage = ObjectStorage(client)
    assert storage.conditional_writes
    with Stubber(client) as stub:
        stub.add_response("put_object", {}, {"Bucket": "b", "Key": "v/a.jpg.json", "Body": ANY,
                                             "ContentType": "application/json", "IfMatch": '"e1"'})  # fmt: skip
        stub.add_response("put_object", {}, {"Bucket": "b", "Key": "v/a.jpg.json", "Body": ANY,
                                             "ContentType": "application/json", "IfNoneMatch": "*"})  # fmt: skip
        assert storage.replace_json("b", "v/a.jpg.json", {"job_id": "j"}, etag='"e1"')
        assert storage.replace_json("b", "v/a.jpg.json", {"job_id": "j"}, etag=None)
        stub.assert_no_pending_responses()


def test_a_botocore_without_conditional_writes_switches_the_sidecar_unconditionally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client()
    model = client.meta.service_model
    real = model.operation_model("PutObject")
    older = {name: shape for name, shape in real.input_shape.members.items() if name not in ("IfMatch", "IfNoneMatch")}
    monkeypatch.setattr(
        model, "operation_model", lambda name: SimpleNamespace(input_shape=SimpleNamespace(members=older))
    )
    storage = ObjectStorage(client)
    assert not storage.conditional_writes
    monkeypatch.undo()  # the client itself still speaks the real model: the stub checks what is sent
    with Stubber(client) as stub:
        stub.add_response(
            "put_object", {}, {"Bucket": "b", "Key": "v/a.jpg.json", "Body": ANY, "ContentType": "application/json"}
        )
        assert storage.replace_json("b", "v/a.jpg.json", {"job_id": "j"}, etag='"e1"')
        stub.assert_no_pending_responses()
