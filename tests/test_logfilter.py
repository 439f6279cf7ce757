"""Server log lines carry no kiosk token or API token, and a blocked address's flood of 429s
writes no log lines (each block is audited once instead)."""

from __future__ import annotations

import io
import logging
import logging.config
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings

from dashvault.kiosk.actions import do_create_kiosk_link, do_revoke_kiosk_link
from dashvault.lib.logfilter import redact
from tests.conftest import make_client


@pytest.fixture
def server_log() -> Iterator[io.StringIO]:
    """The console handler exactly as settings.LOGGING configures it, writing to a buffer."""
    logging.config.dictConfig(settings.LOGGING)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    yield buffer
    handler.setStream(sys.stderr)


def test_redact_removes_kiosk_paths_and_tokens():
    token = "dvk_" + "A" * 43
    assert token not in redact(f"Not Found: /kiosk/{token}")
    assert redact(f"Not Found: /kiosk/{token}/") == "Not Found: /kiosk/[redacted]/"
    assert "dvp_" not in redact("token dvp_abcDEF123-_x leaked")
    assert redact("Not Found: /dashboards/x/") == "Not Found: /dashboards/x/"


def test_a_revoked_links_404_is_logged_without_its_token(admin_a, dashboards_a, server_log):
    link, token = do_create_kiosk_link(
        admin_a.org, name="TV", dashboards=[dashboards_a["sales"]], acting=admin_a
    )
    do_revoke_kiosk_link(link, acting=admin_a, ip=None)
    assert make_client().get(f"/kiosk/{token}").status_code == 404
    text = server_log.getvalue()
    assert "Not Found: /kiosk/[redacted]" in text
    assert token not in text and token[4:20] not in text


def test_refusals_of_a_blocked_address_write_no_log_lines(db, server_log):
    client = make_client()
    statuses = [client.get(f"/kiosk/dvk_guess{i}").status_code for i in range(30)]
    assert statuses[:10] == [404] * 10 and set(statuses[10:]) == {429}
    text = server_log.getvalue()
    assert text.count("Not Found: /kiosk/[redacted]") == 10
    assert "Too Many Requests" not in text


def test_a_traceback_is_redacted_too(server_log):
    token = "dvk_" + "B" * 43
    try:
        raise RuntimeError(f"failed on /kiosk/{token}")
    except RuntimeError:
        logging.getLogger("django.request").exception("Internal Server Error: /kiosk/%s", token)
    text = server_log.getvalue()
    assert "Traceback" in text and "RuntimeError" in text
    assert token not in text and "B" * 20 not in text


def test_djangos_own_handlers_are_replaced_by_the_filtered_console():
    logging.config.dictConfig(settings.LOGGING)
    django_logger = logging.getLogger("django")
    assert [type(h).__name__ for h in django_logger.handlers] == ["StreamHandler"]
    assert not django_logger.propagate
    assert {type(f).__name__ for f in django_logger.handlers[0].filters} == {
        "RedactSecrets",
        "DropRefusals",
    }


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (
            "signin failed for alice.o'hara+tv@sub.example.co.uk",
            "alice.o'hara+tv@sub.example.co.uk",
        ),
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("POST body password=hunter2hunter2&next=/", "hunter2hunter2"),
        ('{"client_secret": "s3cr3t-value", "x": 1}', "s3cr3t-value"),
        ("api_key: k-123456789", "k-123456789"),
        ("token=dvp_abcdefABCDEF0123456789", "dvp_abcdefABCDEF0123456789"),
    ],
)
def test_personal_data_and_secrets_never_reach_a_log_line(server_log, line, secret):
    logging.getLogger("dashvault.some.module").warning("%s", line)
    text = server_log.getvalue()
    assert text.strip(), "the line itself is still logged"
    assert secret not in text


def test_an_ordinary_line_is_left_alone(server_log):
    logging.getLogger("dashvault.live").warning("live: update of dashboard %s failed", "d-1")
    assert "live: update of dashboard d-1 failed" in server_log.getvalue()
