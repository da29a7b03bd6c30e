import pytest

from seedance_pipeline.adapters.result_download import ResultDownloader
from seedance_pipeline.errors import DownloadRefused


def downloader(addresses, allow_private=False):
    return ResultDownloader(allow_private=allow_private, resolver=lambda host, port: addresses)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.5",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
    ],
)
def test_non_public_addresses_are_refused(address):
    with pytest.raises(DownloadRefused, match="non-public address"):
        downloader([address]).check_url("https://cdn.example.com/v.mp4")


def test_one_private_address_among_public_ones_is_enough_to_refuse():
    with pytest.raises(DownloadRefused):
        downloader(["93.184.216.34", "10.0.0.1"]).check_url("https://cdn.example.com/v.mp4")


@pytest.mark.parametrize(
    "url", ["http://cdn.example.com/v.mp4", "ftp://cdn.example.com/v.mp4", "file:///etc/passwd", "https:///nohost"]
)
def test_only_https_urls_with_a_host_are_followed(url):
    with pytest.raises(DownloadRefused):
        downloader(["93.184.216.34"]).check_url(url)


def test_a_public_https_url_passes():
    downloader(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]).check_url("https://cdn.example.com/v.mp4")


def test_allow_private_downloads_lets_the_local_stack_use_loopback_http():
    downloader(["127.0.0.1"], allow_private=True).check_url("http://127.0.0.1:8787/results/t.mp4")
