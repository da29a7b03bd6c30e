"""Submit/query validation: every invalid request class gets the provider's status and error body."""

from __future__ import annotations

import io
import re
import socket
from typing import Any

import pytest
from PIL import Image

from seedance_simulator import SimulatorServer
from tests.support.simulator_client import API_KEY, Client, ImageHost, data_url, make_image


def error_of(response: Any, status: int, code: str) -> str:
    """Assert the documented nested error shape and return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "type"}
    assert body["error"]["code"] == code
    return str(body["error"]["message"])


def test_submit_answers_a_task_id_in_the_provider_format(client: Client) -> None:
    response = client.submit_raw()
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert re.fullmatch(r"cgt-\d{14}-[a-z]{5}", response.json()["task_id"])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": API_KEY}, {"Authorization": f"Basic {API_KEY}"}],
    ids=["missing", "wrong-key", "no-scheme", "basic-scheme"],
)
def test_submit_without_the_right_bearer_key_is_401(
    client: Client, server: SimulatorServer, headers: dict[str, str]
) -> None:
    error_of(client.submit_raw(headers=headers), 401, "AuthenticationError")
    assert server.counters.tasks_created == 0


def test_query_without_the_right_bearer_key_is_401(client: Client) -> None:
    task_id = client.submit()
    error_of(client.query_raw(task_id, headers={"Authorization": "Bearer nope"}), 401, "AuthenticationError")


def test_the_accepted_key_can_change_while_running(client: Client, server: SimulatorServer) -> None:
    server.knobs.api_key = "rotated"
    error_of(client.submit_raw(), 401, "AuthenticationError")
    assert client.submit_raw(headers={"Authorization": "Bearer rotated"}).status_code == 200


def test_unknown_model_is_404_model_not_open(client: Client) -> None:
    message = error_of(client.submit_raw(model="doubao-seedance-9-ultra"), 404, "ModelNotOpen")
    assert "doubao-seedance-9-ultra" in message


def test_text_only_model_with_images_is_400(client: Client) -> None:
    message = error_of(client.submit_raw(model="doubao-seedance-1-0-lite-t2v-250428"), 400, "InvalidParameter")
    assert "images" in message


@pytest.mark.usefixtures("no_render")
def test_lite_i2v_model_is_accepted(client: Client) -> None:
    assert client.submit_raw(model="doubao-seedance-1-0-lite-i2v-250428").status_code == 200


@pytest.mark.parametrize(
    ("overrides", "without", "field"),
    [
        ({}, ("model",), "model"),
        ({"model": 7}, (), "model"),
        ({}, ("prompt",), "prompt"),
        ({"prompt": ""}, (), "prompt"),
        ({"prompt": "   "}, (), "prompt"),
        ({"prompt": 42}, (), "prompt"),
        ({}, ("images",), "images"),
        ({"images": []}, (), "images"),
        ({"images": "data:image/png;base64,AAAA"}, (), "images"),
        ({"images": [17]}, (), "images[0]"),
        ({"duration": 7}, (), "duration"),
        ({"duration": "5"}, (), "duration"),
        ({"duration": True}, (), "duration"),
        ({"resolution": "4k"}, (), "resolution"),
        ({"resolution": "720P"}, (), "resolution"),
        ({"ratio": "2:1"}, (), "ratio"),
        ({"seed": -1}, (), "seed"),
        ({"seed": 2147483648}, (), "seed"),
        ({"seed": "12"}, (), "seed"),
        ({"seed": 1.5}, (), "seed"),
        ({"seed": False}, (), "seed"),
        ({"watermark": "true"}, (), "watermark"),
        ({"camerafixed": 1}, (), "camerafixed"),
        ({"return_last_frame": "yes"}, (), "return_last_frame"),
        ({"generate_audio": None}, (), "generate_audio"),
    ],
)
def test_each_invalid_field_is_400_naming_the_field(
    client: Client, server: SimulatorServer, overrides: dict[str, Any], without: tuple[str, ...], field: str
) -> None:
    message = error_of(client.submit_raw(without=without, **overrides), 400, "InvalidParameter")
    assert f"`{field}`" in message
    assert server.counters.tasks_created == 0


@pytest.mark.parametrize("seed", [0, 2147483647])
def test_seed_bounds_are_accepted(client: Client, seed: int) -> None:
    assert client.submit_raw(seed=seed).status_code == 200


@pytest.mark.parametrize("ratio", ["21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "9:21", "keep_ratio", "adaptive"])
@pytest.mark.usefixtures("no_render")
def test_every_documented_ratio_is_accepted(client: Client, ratio: str) -> None:
    assert client.submit_raw(ratio=ratio).status_code == 200


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b"\xff\xfe"], ids=["broken", "empty", "array", "binary"])
def test_malformed_submit_body_is_400(client: Client, raw: bytes) -> None:
    response = client.session.post(
        client.submit_url, data=raw, headers={**client.headers, "Content-Type": "application/json"}, timeout=10
    )
    error_of(response, 400, "InvalidParameter")


def test_prompts_over_800_characters_are_cut_not_rejected(client: Client, server: SimulatorServer) -> None:
    task_id = client.submit(prompt="x" * 1000)
    request = server.task(task_id).request
    assert len(request.prompt) == 800
    assert request.prompt_truncated


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 30, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image_url", "reason"),
    [
        (data_url(_png(299, 400)), "between 300 and 6000"),
        (data_url(_png(6001, 3000)), "between 300 and 6000"),
        (data_url(_png(1000, 300)), "width/height"),
        (data_url(_png(300, 800)), "width/height"),
        ("data:image/png;base64,aGVsbG8gd29ybGQ=", "not a decodable image"),
        ("data:image/png;base64,@@not-base64@@", "base64"),
        ("data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=", "data:image/<format>"),
        ("data:image/heic;base64,AAAA", "unsupported image format"),
        ("data:image/PNG;base64," + data_url(make_image()).split(",", 1)[1], "data:image/<format>"),
        ("ftp://example.com/image.png", "http(s) URL"),
    ],
    ids=[
        "too-narrow",
        "too-wide",
        "too-flat",
        "too-tall",
        "not-an-image",
        "bad-base64",
        "svg",
        "heic",
        "uppercase-fmt",
        "ftp",
    ],
)
def test_images_breaking_the_rules_are_400(client: Client, image_url: str, reason: str) -> None:
    message = error_of(client.submit_raw(images=[image_url]), 400, "InvalidParameter")
    assert "`images[0]`" in message
    assert reason in message


def test_image_in_an_unaccepted_format_is_400(client: Client) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 400)).save(buffer, format="PPM")
    message = error_of(client.submit_raw(images=[data_url(buffer.getvalue())]), 400, "InvalidParameter")
    assert "not supported" in message


def test_truncated_image_is_400(client: Client) -> None:
    data = make_image(fmt="PNG")
    message = error_of(client.submit_raw(images=[data_url(data[: len(data) // 2])]), 400, "InvalidParameter")
    assert "images[0]" in message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
@pytest.mark.usefixtures("no_render")
def test_every_accepted_image_format_passes(client: Client, fmt: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 200, 30)).save(buffer, format=fmt)
    assert client.submit_raw(images=[data_url(buffer.getvalue(), fmt.lower())]).status_code == 200


@pytest.mark.usefixtures("no_render")
def test_image_fetched_over_http(client: Client, server: SimulatorServer, image_host: ImageHost) -> None:
    url = image_host.serve_bytes("/uploads/cat.jpg", make_image(fmt="JPEG"), "image/jpeg")
    task_id = client.submit(images=[url + "?X-Amz-Signature=abc"])
    assert server.task(task_id).image_width == 640


def test_image_url_answering_404_is_400(client: Client, image_host: ImageHost) -> None:
    message = error_of(client.submit_raw(images=[image_host.url("/missing.png")]), 400, "InvalidParameter")
    assert "HTTP 404" in message


def test_unreachable_image_url_is_400(client: Client) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = error_of(client.submit_raw(images=[f"http://127.0.0.1:{port}/x.png"]), 400, "InvalidParameter")
    assert "could not be downloaded" in message


def test_slow_image_url_times_out_as_400(client: Client, server: SimulatorServer, image_host: ImageHost) -> None:
    server.image_fetch_timeout = 0.3
    url = image_host.serve_bytes("/slow.png", make_image(), delay=1.5)
    message = error_of(client.submit_raw(images=[url]), 400, "InvalidParameter")
    assert "within 0.3 s" in message


def test_image_of_30_mb_or_more_is_400(client: Client, image_host: ImageHost) -> None:
    url = image_host.serve_bytes("/huge.png", b"\x89PNG" + bytes(31 * 1024 * 1024))
    message = error_of(client.submit_raw(images=[url]), 400, "InvalidParameter")
    assert "30 MB" in message


@pytest.mark.usefixtures("no_render")
def test_image_from_a_presigned_moto_s3_url(client: Client, server: SimulatorServer) -> None:
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="inputs")
        s3.put_object(Bucket="inputs", Key="uploads/dog.png", Body=make_image(800, 600))
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "inputs", "Key": "uploads/dog.png"})
        task_id = client.submit(images=[url], ratio="adaptive")
        task = server.task(task_id)
        assert (task.image_width, task.image_height) == (800, 600)
        assert (task.width, task.height) == (736, 544)  # adaptive picks 4:3 for an 800x600 image
    finally:
        moto.stop()


def test_unknown_task_id_is_400_task_not_exist(client: Client) -> None:
    error_of(client.query_raw("cgt-20250101000000-nopee"), 400, "task_not_exist")


def test_flat_error_shape(client: Client, server: SimulatorServer) -> None:
    server.knobs.error_shape = "flat"
    response = client.query_raw("cgt-20250101000000-nopee")
    assert response.status_code == 400
    assert response.json() == {"code": "task_not_exist", "message": response.json()["message"]}
    response = client.submit_raw(duration=3)
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message"}
    assert response.json()["code"] == "InvalidParameter"


def test_queue_quota_answers_429_quota_exceeded_with_retry_after(client: Client, server: SimulatorServer) -> None:
    server.knobs.max_running = 1
    server.knobs.max_queued = 2
    server.knobs.never_finish = True
    server.knobs.retry_after = 3
    running = client.submit()
    waiting = [client.submit(), client.submit()]
    response = client.submit_raw()
    error_of(response, 429, "QuotaExceeded")
    assert response.headers["Retry-After"] == "3"
    assert server.counters.rate_limited == 1
    assert server.counters.tasks_created == 3
    assert server.task(running).status == "IN_PROGRESS"
    assert [server.task(t).status for t in waiting] == ["QUEUED", "QUEUED"]


def test_quota_429_carries_retry_after_even_without_the_knob(client: Client, server: SimulatorServer) -> None:
    server.knobs.max_queued = 0
    server.knobs.max_running = 0
    response = client.submit_raw()
    error_of(response, 429, "QuotaExceeded")
    assert response.headers["Retry-After"] == "1"


def test_unknown_route_is_404(client: Client) -> None:
    response = client.session.get(client.server.base_url + "/v1/whatever", headers=client.headers, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


def test_get_on_the_submit_path_is_405(client: Client) -> None:
    response = client.session.get(client.submit_url, headers=client.headers, timeout=10)
    assert response.status_code == 405
