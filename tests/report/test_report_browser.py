"""The report in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run)
loads it without console errors or network requests, every image decodes to a non-zero size,
and the toggle swaps prediction for truth. Driven over the DevTools protocol with the standard
library only; skipped, saying why, when no browser can be started."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
START_SECONDS = 30


class DevTools:
    """A minimal DevTools-protocol client over one websocket (RFC 6455, text frames)."""

    def __init__(self, url: str) -> None:
        match = re.match(r"ws://([^:/]+):(\d+)(/.*)", url)
        assert match, url
        host, port, path = match.group(1), int(match.group(2)), match.group(3)
        self.socket = socket.create_connection((host, port), timeout=START_SECONDS)
        key = base64.b64encode(os.urandom(16)).decode()
        self.socket.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.socket.recv(1)
        assert b" 101 " in response.split(b"\r\n")[0], response
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.socket.recv(count - len(data))
            if not chunk:
                raise ConnectionError("the browser closed the connection")
            data += chunk
        return data

    def _send(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.socket.sendall(header + mask + masked)

    def _receive(self) -> dict[str, Any]:
        message = b""
        while True:
            first, second = self._exactly(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._exactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._exactly(8))[0]
            payload = self._exactly(length)
            if first & 0x0F in (0x1, 0x0):
                message += payload
                if first & 0x80:
                    return dict(json.loads(message))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self._send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self._receive()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def wait_for(self, method: str, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {seconds} s")
            self.events.append(self._receive())

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    binary = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if binary is None:
        pytest.skip(f"no browser: none of {', '.join(BROWSERS)} is on PATH (apt install chromium)")
    command = [
        binary,
        "--headless",
        "--no-sandbox",  # root in containers; the page is our own file
        "--disable-gpu",
        "--no-first-run",
        "--remote-debugging-port=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        "about:blank",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        url = _devtools_url(process)
        if url is None:
            pytest.skip(f"{binary} did not start a DevTools endpoint within {START_SECONDS} s")
        port = int(url.split(":")[2].split("/")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            pages = [t for t in json.load(reply) if t.get("type") == "page"]
        client = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield client
        client.socket.close()
    finally:
        process.kill()
        process.wait()


def _devtools_url(process: subprocess.Popen[bytes]) -> str | None:
    assert process.stderr is not None
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        line = process.stderr.readline().decode(errors="replace")
        if not line and process.poll() is not None:
            return None
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1)
    return None


def test_the_report_loads_cleanly_and_its_toggle_swaps_the_image(
    browser: DevTools, full_report: Path
) -> None:
    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.call(f"{domain}.enable")
    browser.call("Page.navigate", url=full_report.as_uri())
    browser.wait_for("Page.loadEventFired")

    images = browser.evaluate(
        "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(images) >= 10
    assert all(complete and width > 0 and height > 0 for complete, width, height in images)

    shown = """(() => {
        const figure = document.querySelector("figure.toggle");
        return Array.from(figure.querySelectorAll("img"))
            .filter(i => i.getBoundingClientRect().height > 0).map(i => [i.className, i.src]);
    })()"""
    before = browser.evaluate(shown)
    browser.evaluate('document.querySelector("figure.toggle button").click()')
    after = browser.evaluate(shown)
    assert [c for c, _ in before] == ["prediction"] and [c for c, _ in after] == ["truth"]
    assert before[0][1] != after[0][1]
    browser.evaluate('document.getElementById("toggle-all").click()')
    assert browser.evaluate(
        'Array.from(document.querySelectorAll("figure.toggle")).map(f => f.dataset.showing)'
    ) == ["truth", "truth"]

    errors = [
        e
        for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
    requested = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
