"""Offline and online drivers (§S8).

* offline (RL rollout): every agent starts at t = 0; the job completion time (JCT) is the end
  of the last request.
* online: agents arrive as a Poisson process at ``aps`` agents/s, each replaying its whole
  trajectory.  The run ends when the windowed mean TTFT exceeds the SLO, at steady state
  (mean TTFT over the last ``window_s`` within ``steady_tol`` of its value ``steady_lag_s``
  earlier), or at ``max_sim_s``.
"""
from __future__ import annotations

import bisect
import math

import numpy as np


class OfflineDriver:
    name = "offline"
    finishes_on_agent_done = True  # finished() changes only in agent_done: asked after each agent

    def __init__(self, sim, ecfg: dict):
        self.sim = sim
        self.remaining = len(sim.agents)

    def start(self) -> None:
        for a in self.sim.agents:
            self.sim.start_agent(a)

    def agent_done(self, agent) -> None:
        self.remaining -= 1

    def finished(self) -> bool:
        return self.remaining == 0

    def summary(self) -> dict:
        return {}


class OnlineDriver:
    name = "online"

    def __init__(self, sim, ecfg: dict):
        self.sim = sim
        self.aps = float(ecfg["aps"])
        if not self.aps > 0:
            raise ValueError(f"workload.aps (agents per second) must be > 0 for experiment=online "
                             f"(got {ecfg['aps']})")
        self.slo_ttft = float(ecfg["slo_ttft_s"])
        self.slo_tpot = float(ecfg["slo_tpot_s"])
        self.window = float(ecfg["window_s"])
        self.lag = float(ecfg["steady_lag_s"])
        self.tol = float(ecfg["steady_tol"])
        self.check_dt = float(ecfg["check_dt_s"])
        self.min_time = float(ecfg["min_sim_s"])
        self.rng = np.random.default_rng(int(ecfg["seed"]) + 7919)
        self.next_agent = 0
        self.stop_reason = ""
        self.stopped = False
        self.history: list = []  # (t, windowed mean TTFT)
        self.active = 0

    def start(self) -> None:
        self._arrive()
        self.sim.timer(self.check_dt, self._check)

    def _arrive(self, _ev=None) -> None:
        if self.stopped:
            return
        sim = self.sim
        if self.next_agent >= len(sim.agents):
            self.stop_reason = self.stop_reason or "agents exhausted (raise workload.agents)"
            return
        a = sim.agents[self.next_agent]
        self.next_agent += 1
        self.active += 1
        sim.start_agent(a)
        sim.timer(float(self.rng.exponential(1.0 / self.aps)), self._arrive)

    def agent_done(self, agent) -> None:
        self.active -= 1
        if self.stop_reason == "agents exhausted (raise workload.agents)" and self.active == 0:
            self._stop(self.stop_reason)

    def _window_ttft(self, t_end: float):
        """Mean TTFT of requests whose first token came in (t_end - window, t_end], counting
        requests still without a first token after longer than the SLO at their current age."""
        sim = self.sim
        ft = sim.first_token_times
        lo = bisect.bisect_right(ft, t_end - self.window)
        vals = sim.first_token_ttft[lo:]
        aw = sim.awaiting_first
        while aw and aw[0].t_first == aw[0].t_first:
            aw.popleft()
        now = sim.env.now
        late = []
        for r in aw:
            if now - r.arrival <= self.slo_ttft:
                break
            if r.t_first != r.t_first and r.stage != "failed":
                late.append(now - r.arrival)
        n = len(vals) + len(late)
        return (sum(vals) + sum(late)) / n if n else math.nan

    def _check(self, _ev=None) -> None:
        if self.stopped:
            return
        now = self.sim.env.now
        m = self._window_ttft(now)
        self.history.append((now, m))
        if now >= self.window and m == m and m > self.slo_ttft:
            self._stop(f"TTFT over the last {self.window:g}s = {m:.3g}s exceeds the SLO "
                       f"{self.slo_ttft:g}s")
            return
        if now >= max(self.lag + self.window, self.min_time):
            past = [h for (t, h) in self.history if abs(t - (now - self.lag)) < self.check_dt / 2]
            if past and past[0] == past[0] and m == m and past[0] > 0:
                if abs(m - past[0]) <= self.tol * past[0]:
                    self._stop(f"steady state: TTFT {m:.3g}s within {self.tol:.0%} of "
                               f"{past[0]:.3g}s {self.lag:g}s earlier")
                    return
        self.sim.timer(self.check_dt, self._check)

    def _stop(self, reason: str) -> None:
        self.stopped = True
        self.stop_reason = reason
        self.sim.end()

    def finished(self) -> bool:
        return self.stopped

    def summary(self) -> dict:
        return {"stop_reason": self.stop_reason, "agents_arrived": self.next_agent}


DRIVERS = {"offline": OfflineDriver, "online": OnlineDriver}
