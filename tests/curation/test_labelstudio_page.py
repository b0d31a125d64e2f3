"""The annotation page as a person sees it: logged in to the REAL Label Studio server as an
annotator, in headless Chromium (tests/support/labelstudio_page.py). Needs a `chromium` binary
(Debian package `chromium`); the screenshots in docs/annotation/ come from the same code."""

from __future__ import annotations

import pytest
from support.labelstudio_page import GOOD_CODE_LINES, chromium_binary, take_screenshots
from support.labelstudio_server import labelstudio  # noqa: F401  (the session-scoped server)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary (apt-get install -y chromium); "
                                 "the page test drives a real browser")]


def test_the_page_people_label_on(tmp_path, labelstudio):
    shots = take_screenshots(labelstudio, tmp_path)
    facts = shots.pop("facts")
    assert sorted(shots) == ["shot-code", "shot-long", "shot-multi"]
    assert all(path.stat().st_size > 20_000 for path in shots.values())  # a rendered page, not a blank one
    for pid, f in facts.items():
        assert f["pwned"] is None and f["foreign_tags"] == 0, pid  # data never runs or becomes markup
        assert len(f["responses"]) == 2, pid  # side by side
        assert f["guideline_blocks"] == 1 and f["instructions_modal"] == 0, pid  # guideline once, no pop-up
        assert "Ctrl+Enter" in f["keys_line"] and "2 = B is better" in f["keys_line"], pid  # shortcuts stated
        assert f["after_key_2"] == ["B is better[2]"], pid  # one key chooses
    code = facts["shot-code"]["responses"]
    assert sum(GOOD_CODE_LINES in r for r in code) == 1  # indentation kept: the two responses read differently
    assert any("<b>bold</b>" in r for r in facts["shot-multi"]["responses"])  # markup shown as typed
    assert any("<script>window.__pwned=2</script>" in r for r in facts["shot-long"]["responses"])
