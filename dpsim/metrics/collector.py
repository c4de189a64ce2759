"""Time series: every SNIC's and CNIC's throughput, the queue lengths and each PE's forward count
(for the attention balance over time, dpsim.metrics.balance), sampled every
``metrics.sample_dt`` simulated seconds from the links' O(1) byte counters."""
from __future__ import annotations

import math

import numpy as np

from ..net import sum_bytes


class Collector:
    def __init__(self, sim, mcfg: dict):
        self.sim = sim
        self.dt = float(mcfg["sample_dt"])
        if not self.dt > 0:
            raise ValueError(f"metrics.sample_dt must be > 0 (got {self.dt})")
        self.times: list = []
        self.rows: list = []
        self.queues: list = []
        self.forwards: list = []  # per sample: each PE's forward count (attention balance over time)
        self._links = []
        self.columns = []
        self._stopped = False
        self.samples = 0

    def start(self) -> None:
        sim = self.sim
        cl = sim.cluster
        cols = []
        links = []
        for n in cl.nodes:
            links.append([n.snic_rx])
            cols.append(f"snic_rx[{n.nid}]")
            if n.snic_tx is not n.snic_rx:
                links.append([n.snic_tx])
                cols.append(f"snic_tx[{n.nid}]")
            links.append([g.cnic_rd for g in n.gpus])
            cols.append(f"cnic_rd[{n.nid}]")
            links.append([g.cnic_wr for g in n.gpus])
            cols.append(f"cnic_wr[{n.nid}]")
            links.append([n.dram])
            cols.append(f"dram[{n.nid}]")
        self._links = links
        self.columns = cols
        self._tick()

    def _tick(self, _ev=None) -> None:
        self._record()
        clock = self.sim.clock
        # Keep sampling only while something else is scheduled: an empty queue then means the
        # simulation has stalled (or ended) and the loop reports it.
        if not self._stopped and clock.peek() < math.inf:
            clock.timer(self.dt, self._tick)

    def _record(self) -> None:
        self.samples += 1
        sim = self.sim
        now = sim.clock.now
        row = np.empty(len(self._links))
        sum_bytes(self._links, now, row)
        self.times.append(now)
        self.rows.append(row)
        cl = sim.cluster
        pq = 0
        for e in sim.pes:
            pq += len(e.queue)
        dq = 0
        for e in sim.des:
            dq += len(e.alloc_q)
        self.queues.append((now, sim.policy.waiting(), pq, dq,
                            sim.outstanding, *[n.read_q for n in cl.nodes]))
        self.forwards.append([len(e.attn_times) for e in sim.pes])

    def finish(self) -> None:
        self._stopped = True
        if not self.times or self.times[-1] < self.sim.clock.now:
            self._record()

    # ------------------------------------------------------------------ tables
    def link_series(self):
        """DataFrame: time_s, link, node, rate_Bps (mean over the preceding interval)."""
        import pandas as pd
        if len(self.times) < 2:
            return pd.DataFrame({"time_s": [], "series": [], "rate_Bps": []})
        t = np.asarray(self.times)
        b = np.vstack(self.rows)
        dt = np.diff(t)
        dt[dt <= 0] = np.nan
        rates = np.diff(b, axis=0) / dt[:, None]
        frames = []
        for j, c in enumerate(self.columns):
            frames.append(pd.DataFrame({"time_s": t[1:], "series": c, "rate_Bps": rates[:, j]}))
        df = pd.concat(frames, ignore_index=True)
        df["series"] = df["series"].astype("category")
        return df

    def queue_series(self):
        import pandas as pd
        nodes = [f"read_q[{n.nid}]" for n in self.sim.cluster.nodes]
        cols = ["time_s", "global_queue", "pe_ready_queue", "de_alloc_queue", "outstanding"] + nodes
        return pd.DataFrame(self.queues, columns=cols)

    def total_bytes(self) -> dict:
        """Cumulative bytes per sampled series at the end of the run."""
        if not self.rows:
            return {}
        return {c: float(v) for c, v in zip(self.columns, self.rows[-1])}
