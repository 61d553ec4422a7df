"""The embedded token file, the secure default and the loud opt-out."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from services.monitor.__main__ import parse_args
from services.monitor.auth.service import INSECURE_WARNING
from services.monitor.auth.tokens import ensure_token, read_token
from services.monitor.service import MonitorService


def test_the_token_file_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "token"
    token = ensure_token(path)
    assert len(token) >= 40 and path.stat().st_mode & 0o777 == 0o600
    assert ensure_token(path) == token == read_token(path)
    assert read_token(tmp_path / "missing") is None and read_token(None) is None


def test_an_unconfigured_monitor_is_closed_not_open(tmp_path: Path) -> None:
    settings = parse_args(["--data-dir", str(tmp_path)])
    assert settings.auth.enabled
    service = MonitorService(settings)
    token_file = tmp_path / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert service.auth_headers == {"Authorization": f"Bearer {token_file.read_text()}"}


def test_turning_auth_off_is_explicit_and_loud(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = parse_args(["--data-dir", str(tmp_path), "--insecure-no-auth"])
    with caplog.at_level(logging.WARNING):
        service = MonitorService(settings)
    assert not service.auth.enabled and INSECURE_WARNING in caplog.text
    assert not (tmp_path / "token").exists()
