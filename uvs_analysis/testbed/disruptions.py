"""Events that hit every open session at once: SIGTERM mid-run and a rolling deploy."""

from __future__ import annotations

import asyncio
import os

from uvs_analysis.testbed.state import TestbedState

__all__ = ["rolling_deploy", "schedule_disruption"]

DEPLOYMENT_START = ("Starting new instance. Reason: DEPLOYMENT - Instance started due to traffic "
                    "shifting between revisions due to deployment, traffic split adjustment, or "
                    "deployment health check.")
PROBE_OK = ('Default STARTUP TCP probe succeeded after 1 attempt for container "{container}" on '
            "port 8080.")


def schedule_disruption(state: TestbedState) -> None:
    """Arm the shutdown or deploy profile once, a fixed delay after the first run starts."""
    settings = state.settings
    if state.disrupted or not (settings.has("shutdown-mid-run") or settings.has("rolling-deploy")):
        return
    state.disrupted = True
    loop = asyncio.get_running_loop()
    if settings.has("shutdown-mid-run"):
        loop.call_later(state.timings.disruption_after_s, state.terminate)
    else:
        loop.call_later(state.timings.disruption_after_s,
                        lambda: loop.create_task(rolling_deploy(state)))


async def rolling_deploy(state: TestbedState) -> None:
    """A new revision takes the traffic; the old instance is shut down (uvicorn sends 1012)."""
    writer = state.writer
    old = state.deploy()
    container = f"{state.settings.service}-1"
    writer.system(DEPLOYMENT_START, instance=state.instance, container=container)
    writer.system(PROBE_OK.format(container=container), instance=state.instance,
                  container=container)
    writer.text("run.googleapis.com/stderr", "INFO:     Shutting down", instance=old)
    victims = [s for s in state.sessions if s.instance == old]
    for session in victims:
        session.open = False
        try:
            await session.ws.close(code=1012)
        except (RuntimeError, OSError):
            continue
    await asyncio.sleep(0)
    for line in ("INFO:     Waiting for application shutdown.",
                 "INFO:     Application shutdown complete.",
                 f"INFO:     Finished server process [{os.getpid()}]"):
        writer.text("run.googleapis.com/stderr", line, instance=old)
    writer.system("Container called exit(0).", severity="WARNING", instance=old,
                  container=container)
