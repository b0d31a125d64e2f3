"""Look at the annotation page as a person does: log in to the real Label Studio server as an
annotator and take headless-Chromium screenshots of tasks (Chrome DevTools Protocol over a
websocket; no browser-automation package). Used by tests/curation/test_labelstudio_page.py and
to make the screenshots in docs/annotation/:

    PYTHONPATH=src .venv/bin/python tests/support/labelstudio_page.py docs/annotation

Chromium: Debian's `chromium` (`apt-get install -y chromium`), or REWARDOPS_CHROMIUM.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio"]


def chromium_binary() -> str | None:
    return os.environ.get("REWARDOPS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def login(url: str, email: str, password: str) -> dict[str, str]:
    """The session cookies of `email` after the login form (as a person logs in)."""
    with httpx.Client(base_url=url, timeout=60, follow_redirects=False) as web:
        web.get("/user/login/")
        r = web.post("/user/login/", data={"email": email, "password": password,
                                           "csrfmiddlewaretoken": web.cookies.get("csrftoken", "")},
                     headers={"Referer": f"{url}/user/login/"})
        if r.status_code != 302:
            raise RuntimeError(f"login of {email} failed: HTTP {r.status_code}")
        return dict(web.cookies)


class Browser:
    """One headless Chromium with a fresh profile, driven over the DevTools protocol."""

    def __init__(self, width: int = 1440, height: int = 900) -> None:
        import websocket

        exe = chromium_binary()
        if exe is None:
            raise FileNotFoundError("chromium not found: apt-get install -y chromium (or set REWARDOPS_CHROMIUM)")
        self.profile = tempfile.mkdtemp(prefix="rewardops-chromium-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={self.profile}", f"--remote-debugging-port={port}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                page = next(p for p in pages if p.get("type") == "page")
                break
            except (httpx.HTTPError, StopIteration, ValueError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("chromium did not start its DevTools endpoint") from None
                time.sleep(0.3)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self._id = 0
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):  # noqa: ANN201
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def cookies(self, url: str, cookies: dict[str, str]) -> None:
        for name, value in cookies.items():
            self.call("Network.setCookie", name=name, value=value, url=url)

    def evaluate(self, js: str):  # noqa: ANN201
        return self.call("Runtime.evaluate", expression=js, returnByValue=True).get("result", {}).get("value")

    def open(self, url: str, ready_js: str = "document.readyState === 'complete'", timeout: float = 90) -> None:
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not self.evaluate(ready_js):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: the page did not get ready ({ready_js})")
            time.sleep(0.5)

    def key(self, key: str) -> None:
        """One key press, as a person types it."""
        code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=code, text=key if kind == "keyDown" else "",
                      windowsVirtualKeyCode=ord(key.upper()))

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


GOOD_CODE_LINES = "        s += x\n    return s"  # the correct answer's last two lines, as shown

# the labeling page is ready when our responses are on it
READY = "document.querySelectorAll('.ro-col .ro-p, .ro-col .ro-codeblock').length >= 2"


def page_pairs():  # noqa: ANN201 - the three pairs the screenshots show
    from rewardops.data.schema import Message, PreferencePair

    multi = PreferencePair(id="shot-multi", source="docs", conversation=[
        Message("user", "I have a list of prices and want the total with 8% tax. Can you help?"),
        Message("assistant", "Sure. Multiply the sum by 1.08. Do you want code?"),
        Message("user", "Yes, in Python please, and explain `round(x, 2)` vs `f\"{x:.2f}\"`. "
                        "Also: what does <b>bold</b> do here?")],
        chosen="```python\nprices = [3.50, 12.00, 7.25]\ntotal = sum(prices) * 1.08\nprint(f\"{total:.2f}\")\n```\n"
               "`round(x, 2)` returns a number; `f\"{x:.2f}\"` formats text. The `<b>bold</b>` is shown as typed.",
        rejected="Just add 8 to the total:\n\n    total = sum(prices) + 8\n\nThat is the tax.",
        task_category="code", objectivity="objective", controversiality="low",
        desired_attributes="Correct arithmetic, working code.",
        annotation_guideline="Check the arithmetic: 8% tax multiplies by 1.08.")
    code = PreferencePair(id="shot-code", source="docs",
                          conversation=[Message("user", "Fix my function; it should return the sum of a list.\n\n"
                                                        "```python\ndef total(xs):\n    s = 0\n    for x in xs:\n"
                                                        "        s += x\n```")],
                          chosen="def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s",
                          rejected="def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n        return s",
                          task_category="code", objectivity="objective", controversiality="low",
                          annotation_guideline="The two differ only in indentation: which one returns the sum?")
    para = ("Photosynthesis converts light energy into chemical energy. In the light-dependent reactions, "
            "chlorophyll absorbs photons and water is split, releasing oxygen. ")
    table = "| stage | where | output |\n|---|---|---|\n| light reactions | thylakoid | ATP, NADPH, O2 |\n" \
            "| Calvin cycle | stroma | G3P (sugar) |"
    long = PreferencePair(id="shot-long", source="docs",
                          conversation=[Message("user", "Explain photosynthesis in detail, with a table of its stages.")],
                          chosen="# Photosynthesis\n\n" + (para * 3 + "\n\n") * 4 + table + "\n\n**In short:** light in, sugar out.",
                          rejected="## Overview\n\n" + (para * 2 + "\n\n") * 6 + "It happens in the mitochondria."
                                   "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>",
                          task_category="factual", objectivity="objective", controversiality="low",
                          annotation_guideline="Long answers: check the facts, not the length (the Calvin cycle "
                                               "runs in the stroma, not the mitochondria).")
    for p in (multi, code, long):
        p.lineage.append("stage1:iter-01:retrieved(by=docs,p=0.5)")
    return [multi, code, long]


CHECKED = "Array.from(document.querySelectorAll('.ro-choices input:checked')).map(i => i.closest('label').innerText.trim())"
PAGE_FACTS = """({
  pwned: window.__pwned === undefined ? null : window.__pwned,
  foreign_tags: document.querySelectorAll('.ro img, .ro script, .ro iframe, .ro a').length,
  responses: Array.from(document.querySelectorAll('.ro-col')).map(c => c.innerText),
  guideline_blocks: document.querySelectorAll('.ro .ant-collapse-item').length,
  keys_line: (document.querySelector('.ro-keys') || {}).innerText || '',
  instructions_modal: document.querySelectorAll('.ant-modal-wrap:not([style*="display: none"])').length,
})"""


def take_screenshots(server, out_dir: Path, graded: bool = False) -> dict[str, Any]:  # noqa: ANN001
    """Open the three pairs as a project, log in as an annotator and screenshot each task. Returns
    {pair id: path} and, under "facts", what the page held ({pair id: PAGE_FACTS + the choice that
    key 2 made})."""
    from rewardops.curation.labelstudio import AnnotationsPending, LabelStudioAnnotator

    out_dir.mkdir(parents=True, exist_ok=True)
    email, password = "annotator@rewardops.test", "person-pass-12345"
    server.person(email, password)
    pairs = page_pairs()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            LabelStudioAnnotator(server.client(), Path(tmp), graded=graded).verify(pairs)
        except AnnotationsPending:
            pass
        led = json.loads((Path(tmp) / "iter-01.ledger.json").read_text())
    browser = Browser()
    shots = {}
    try:
        browser.cookies(server.url, login(server.url, email, password))
        for p in pairs:
            task = led["tasks"][p.id]["task"]
            browser.open(f"{server.url}/projects/{led['project']}/data?task={task}", READY)
            time.sleep(1.5)  # fonts and layout settle
            if p.id == "shot-code":  # show the guideline panel open once
                browser.evaluate("document.querySelector('.ant-collapse-header, [class*=collapse] [role=button]')?.click()")
                time.sleep(0.8)
            shots[p.id] = out_dir / f"{p.id.replace('shot-', '')}{'-graded' if graded else ''}.png"
            browser.screenshot(shots[p.id])
            facts = browser.evaluate(PAGE_FACTS)
            browser.key("2")  # one key chooses
            time.sleep(0.5)
            facts["after_key_2"] = browser.evaluate(CHECKED)
            shots.setdefault("facts", {})[p.id] = facts
    finally:
        browser.close()
    return shots


if __name__ == "__main__":  # PYTHONPATH=src:tests .venv/bin/python -m support.labelstudio_page docs/annotation
    from support.labelstudio_server import start_server, stop_server

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/annotation")
    with tempfile.TemporaryDirectory() as root:
        srv = start_server(Path(root))
        try:
            for name, path in take_screenshots(srv, out).items():
                if name == "facts":
                    print(json.dumps(path, indent=1)[:3000])
                    continue
                from PIL import Image  # small PNGs for the docs: a 64-colour palette

                Image.open(path).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
                print(name, path, path.stat().st_size)
        finally:
            stop_server(srv)
