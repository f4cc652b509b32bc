"""A real nginx in front of the testbed, as the proxy/load balancer of the proxy faults.

The config is generated into a private temporary directory and nginx runs in the foreground
(``nginx -p DIR -c nginx.conf -g 'daemon off;'``), so no root and no system files are needed.
``strip_auth`` drops the ``Authorization`` header on the way in; ``idle_cut_s`` sets the idle
timeout after which nginx drops an upgraded connection without a close frame.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from uvs_analysis.errors import AnalysisError, DependencyMissingError

__all__ = ["NginxProxy", "nginx_config", "start_nginx"]


def nginx_config(*, listen_port: int, upstream_port: int, prefix: Path, strip_auth: bool,
                 idle_cut_s: float | None) -> str:
    """The nginx.conf text for a WebSocket-capable reverse proxy on 127.0.0.1."""
    timeout = f"{max(1, round(idle_cut_s * 1000))}ms" if idle_cut_s else "3600s"
    auth = '            proxy_set_header Authorization "";\n' if strip_auth else ""
    tmp = prefix / "tmp"
    return f"""worker_processes 1;
pid {prefix / 'nginx.pid'};
error_log {prefix / 'error.log'} crit;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp / 'body'};
    proxy_temp_path {tmp / 'proxy'};
    fastcgi_temp_path {tmp / 'fastcgi'};
    uwsgi_temp_path {tmp / 'uwsgi'};
    scgi_temp_path {tmp / 'scgi'};
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{listen_port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
{auth}            proxy_buffering off;
            proxy_read_timeout {timeout};
            proxy_send_timeout {timeout};
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class NginxProxy:
    """A running nginx; ``stop()`` ends it and removes its directory."""

    process: subprocess.Popen[bytes]
    port: int
    prefix: Path

    def stop(self) -> None:
        """Terminate nginx (then kill it) and delete its files; safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.prefix, ignore_errors=True)


def start_nginx(upstream_port: int, *, strip_auth: bool, idle_cut_s: float | None,
                timeout_s: float = 10.0, attempts: int = 3) -> NginxProxy:
    """Start nginx on a free 127.0.0.1 port in front of ``upstream_port``.

    Raises:
        DependencyMissingError: nginx is not installed.
        AnalysisError: nginx did not start listening.
    """
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)
    if binary is None:
        raise DependencyMissingError(
            "nginx is not installed (needed by the proxy fault profiles and proxy=True)",
            expected="the nginx binary on PATH or in /usr/sbin",
            hint="install the Debian package: apt-get install -y nginx-light")
    last_error = ""
    for _ in range(attempts):
        prefix = Path(tempfile.mkdtemp(prefix="uvs-nginx-"))
        prefix.chmod(0o755)  # nginx workers may run as another user
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "tmp" / sub).mkdir(parents=True)
        port = _free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_config(listen_port=port, upstream_port=upstream_port, prefix=prefix,
                                     strip_auth=strip_auth, idle_cut_s=idle_cut_s))
        process = subprocess.Popen(
            [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf),
             "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy = NginxProxy(process, port, prefix)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            if _listening(port):
                return proxy
            time.sleep(0.05)
        log = prefix / "error.log"
        last_error = log.read_text(errors="replace")[-300:] if log.exists() else ""
        proxy.stop()
    raise AnalysisError(
        f"nginx did not start listening in front of port {upstream_port}: {last_error.strip()}",
        hint="check that nginx runs (nginx -V) and that 127.0.0.1 ports are free")
