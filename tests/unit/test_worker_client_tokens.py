"""The operator's client-token CLI: issue prints a token once and stores its hash; revoke removes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.client_tokens import ClientTokens, main


def test_issue_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens"
    assert main(["issue", "flashdock", "--file", str(path)]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 40 and token not in path.read_text() and (path.stat().st_mode & 0o077) == 0
    assert ClientTokens(path).verify(token) == "flashdock"
    assert main(["issue", "flashdock", "--file", str(path)]) == 2  # one token per name
    assert main(["issue", "../evil", "--file", str(path)]) == 2
    assert main(["list", "--file", str(path)]) == 0 and capsys.readouterr().out.split() == ["flashdock"]
    assert main(["revoke", "flashdock", "--file", str(path)]) == 0
    assert ClientTokens(path).verify(token) is None
    assert main(["revoke", "flashdock", "--file", str(path)]) == 2
