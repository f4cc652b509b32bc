"""The real nginx in front of the testbed: header stripping and idle cuts."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError

from uvs_analysis.testbed.proxy import nginx_config

from .wire import Wire, recorder, recv_json, run_agent

needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx")
                                 .exists(), reason="nginx is not installed (apt-get install "
                                 "nginx-light)")


def test_config_strips_auth_and_sets_idle_timeout(tmp_path: Path) -> None:
    """The generated config drops Authorization and sets the idle timeouts in milliseconds."""
    text = nginx_config(listen_port=1111, upstream_port=2222, prefix=tmp_path, strip_auth=True,
                        idle_cut_s=0.75)
    assert "listen 127.0.0.1:1111;" in text and "proxy_pass http://127.0.0.1:2222;" in text
    assert 'proxy_set_header Authorization "";' in text
    assert "proxy_read_timeout 750ms;" in text and "access_log off;" in text
    plain = nginx_config(listen_port=1, upstream_port=2, prefix=tmp_path, strip_auth=False,
                         idle_cut_s=None)
    assert "Authorization" not in plain and "proxy_read_timeout 3600s;" in plain


@needs_nginx
def test_strip_auth_breaks_header_auth_but_not_subprotocol(testbed: Any) -> None:
    """proxy-strip-auth: through nginx, header auth gets 1008 while subprotocol auth works."""
    wire: Wire = testbed(("proxy-strip-auth",))
    assert wire.handle.proxied and wire.handle.ws_url != wire.handle.upstream_url

    async def scenario() -> tuple[dict[str, Any], Any, str, str]:
        async with wire.connect(headers={"Authorization": f"Bearer {wire.token}"}) as ws:
            error = await recv_json(ws)
            with pytest.raises(ConnectionClosedError) as info:
                await recv_json(ws)
        async with wire.connect(subprotocols=wire.auth()) as ws:
            first = (await recv_json(ws))["type"]
            last = (await run_agent(ws))[-1]["type"]
        return error, info.value, first, last

    error, closed, first, last = asyncio.run(scenario())
    assert error["error_code"] == "AUTH_FAILED"
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert (first, last) == ("connection_established", "agent_completed")
    proxy_pid = None
    for line in wire.handle.console().splitlines():
        if line.startswith("READY "):
            proxy_pid = json.loads(line[6:])["proxy_pid"]
    wire.handle.stop()
    assert proxy_pid is not None and not Path(f"/proc/{proxy_pid}").exists()


@needs_nginx
def test_idle_cut_drops_a_silent_step_without_close_frame(testbed: Any) -> None:
    """proxy-idle-cut: the long silent agent step is cut by nginx; the client sees 1006."""
    wire: Wire = testbed(("proxy-idle-cut",))

    async def scenario() -> tuple[Any, list[str], float]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        async with wire.connect(subprotocols=wire.auth()) as ws:
            await recv_json(ws)
            start = loop.time()
            with pytest.raises(ConnectionClosedError) as info:
                await run_agent(ws, until=recorder(seen, key=lambda f: f["type"]))
            return info.value, seen, loop.time() - start

    closed, seen, elapsed = asyncio.run(scenario())
    assert closed.rcvd is None and closed.sent is None
    assert seen[-1] == "tool_executing" and "tool_completed" in seen  # triage done, then silence
    assert elapsed >= 0.5 * 15 * 0.05  # about the idle cut (nginx timers are coarse)
