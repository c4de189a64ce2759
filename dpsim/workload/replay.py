"""Replay semantics: turn a list of trajectories into the agents a simulation runs (§S8).

:func:`build_agents` applies, in this order:

1. **Scaling** (§S8 scaling studies): every round's ``append`` is multiplied by ``append_scale`` and
   every ``gen`` by ``gen_scale`` (rounded; a non-zero append stays >= 1, gen >= 1).  The context
   is rebuilt round by round.  Let ``kept = prompt - append`` be the context a round carries over
   and ``D`` the extra context the agent has accumulated so far (its prefix plus what scaling
   added).  A round carries the extra along: ``kept' = kept + D`` -- except a compaction round
   (its prompt is shorter than the previous prompt; real traces only), which keeps its carried
   context plus the agent's synthetic prefix but not what scaling added before it:
   ``kept' = kept + min(D + gap, P)`` with ``gap = previous context - kept`` and ``P`` the
   prefix length.  Then ``prompt' = kept' +
   append'``; the tokens of the carried context that were *not* hit stay not hit
   (``hit' = kept' - (kept - hit)``, clamped to the format's bounds).  For §S8 trajectories
   (``hit = previous context``) this is exactly "hit = all earlier tokens" again.
2. **Truncation at the MAL** (``mal`` tokens, optional): a trajectory ends before its first round
   with ``prompt + gen > mal`` (later rounds are dropped even if a compaction would make them fit).
   Trajectories left with no round are dropped; if none is left, ValueError.
3. **Agents**: the first ``min(n_agents, len(trajs))`` agents replay the usable trajectories in
   order (ids unchanged).  Each further agent samples a usable trajectory uniformly (seeded) and
   prepends a synthetic round (``append`` uniform in ``prefix_tokens`` = [64, 512] by default --
   an assumption, the paper says only "random tokens" -- ``gen`` = 1, hit 0), so agents share no
   prefix; its id is ``<trajectory id>@a<agent index>`` and ``meta.prefix_tokens`` records the
   length.  The prefix is shortened if needed so that the first real round still fits the MAL;
   trajectories whose first round leaves no room for a prefix are not sampled.
4. **Think time**: ``think="zero"`` (§S8: think/tool time between turns is 0), ``"trace"`` (as in
   the trace) or a number ``f`` (every ``think_s`` multiplied by ``f``).  The synthetic round's
   ``think_s`` is 0.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .trajectory import Trajectory

PREFIX_TOKENS = (64, 512)  # assumption: range of the synthetic first round's append (inclusive)


def check_think(think) -> str | float:
    """``"zero"``, ``"trace"`` or a scale factor >= 0 (numbers given as strings are accepted)."""
    if isinstance(think, str):
        s = think.strip().lower()
        if s in ("zero", "trace"):
            return s
        try:
            think = float(s)
        except ValueError:
            raise ValueError(f"think: expected 'zero', 'trace' or a scale factor >= 0, got {think!r}") from None
    if isinstance(think, bool) or not isinstance(think, (int, float)) or not math.isfinite(think) or think < 0:
        raise ValueError(f"think: expected 'zero', 'trace' or a scale factor >= 0, got {think!r}")
    return float(think)


def _check_scale(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a number > 0 (1.0 = as recorded), got {v!r}")
    return float(v)


def build_agents(trajs: Sequence[Trajectory], n_agents: int | None, *, seed: int = 0,
                 append_scale: float = 1.0, gen_scale: float = 1.0, mal: int | None = None,
                 think: str | float = "zero",
                 prefix_tokens: tuple[int, int] = PREFIX_TOKENS) -> list[Trajectory]:
    """The agents' trajectories (see the module docstring).  ``n_agents=None``: one per usable
    trajectory.  Deterministic in ``seed``."""
    if not trajs:
        raise ValueError("trajs: no trajectories to replay")
    append_scale = _check_scale(append_scale, "append_scale")
    gen_scale = _check_scale(gen_scale, "gen_scale")
    think = check_think(think)
    if mal is not None:
        from .synthetic import parse_mal

        mal = parse_mal(mal)
    lo, hi = (int(x) for x in prefix_tokens)
    if not 1 <= lo <= hi:
        raise ValueError(f"prefix_tokens: expected (lo, hi) with 1 <= lo <= hi, got {prefix_tokens!r}")

    prepared = [_Prepared(t, append_scale, gen_scale, think) for t in trajs]
    usable = [p for p in prepared if p.fits(0, mal) > 0]
    if not usable:
        raise ValueError(f"mal: no trajectory's first round fits in {mal} tokens "
                         f"(after scaling append x{append_scale}, gen x{gen_scale}); raise mal or lower the scales")
    if n_agents is None:
        n_agents = len(usable)
    if isinstance(n_agents, bool) or not isinstance(n_agents, (int, np.integer)) or n_agents < 1:
        raise ValueError(f"agents: expected an integer >= 1 or null (one per trajectory), got {n_agents!r}")
    n_agents = int(n_agents)

    agents = [p.agent(0, mal, p.src.id, None) for p in usable[:n_agents]]
    extra = n_agents - len(agents)
    if extra > 0:
        cands = usable if mal is None else [p for p in usable if p.first_ctx(0) <= mal - 2]
        if not cands:
            raise ValueError(f"mal: {mal} tokens leave no room for a synthetic first round in any "
                             f"trajectory; raise mal or set agents <= {len(usable)}")
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, len(cands), extra)
        pre = rng.integers(lo, hi + 1, extra)
        for j in range(extra):
            p = cands[int(pick[j])]
            a = int(pre[j])
            if mal is not None:
                a = max(1, min(a, mal - 1 - p.first_ctx(0)))
            agents.append(p.agent(a, mal, f"{p.src.id}@a{len(agents)}", a))
    return agents


class _Prepared:
    """A scaled trajectory, computed once for prefix P = 0; a prefix P shifts prompt and hit by P
    exactly when every compaction round keeps the whole prefix (checked), else it is recomputed."""

    def __init__(self, t: Trajectory, sa: float, sg: float, think):
        self.src = t
        self.sa, self.sg = sa, sg
        a = t.append
        self.a2 = np.where(a > 0, np.maximum(1, np.rint(a * sa)), 0).astype(np.int64)
        self.g2 = np.maximum(1, np.rint(t.gen * sg)).astype(np.int64)
        if think == "zero":
            self.think = np.zeros(t.n_rounds)
        elif think == "trace":
            self.think = t.think_s.astype(np.float64, copy=True)
        else:
            self.think = t.think_s * float(think)
        self.kept = t.prompt - t.append
        self.ctx_prev = np.concatenate(([0], (t.prompt + t.gen)[:-1]))
        # a compaction round: the prompt shrinks below the previous prompt (not merely below the
        # previous context, which happens whenever a trace drops the previous thinking tokens)
        self.comp = np.flatnonzero(t.prompt[1:] < t.prompt[:-1]) + 1
        p0, h0, self.shift_exact = self._scaled(0)
        self.base = (p0, h0)

    def _scaled(self, P: int):
        """(prompt', hit', shift_ok): shift_ok means a prefix P' would shift both by exactly P'."""
        t = self.src
        delta = (self.a2 - t.append) + (self.g2 - t.gen)
        n = t.n_rounds
        d_prev = np.empty(n, np.int64)  # D before each round
        add = np.empty(n, np.int64)  # kept' - kept
        starts = [0] + [int(i) for i in self.comp]
        shift_ok = True
        D = P
        for k, s in enumerate(starts):
            e = starts[k + 1] if k + 1 < len(starts) else n
            if k > 0:  # compaction round: keep the prefix, drop what scaling added
                gap = int(self.ctx_prev[s] - self.kept[s])
                add0 = min(D + gap, P)
                shift_ok &= D - P + gap >= 0
            else:
                add0 = D
            cum = add0 + np.cumsum(delta[s:e])  # D after each round of the segment
            d_prev[s] = D
            add[s] = add0
            d_prev[s + 1:e] = cum[:-1]
            add[s + 1:e] = cum[:-1]
            D = int(cum[-1])
        kept2 = self.kept + add
        prompt2 = kept2 + self.a2
        ctx_prev2 = self.ctx_prev + d_prev
        miss = self.kept - np.minimum(t.hit, self.kept)
        extra = t.hit - np.minimum(t.hit, self.kept)
        raw = kept2 - miss + extra
        hit2 = np.clip(raw, 0, np.minimum(prompt2, ctx_prev2))
        shift_ok &= bool((raw >= 0).all())
        return prompt2, hit2, shift_ok

    def arrays(self, P: int):
        if P == 0:
            return self.base
        if self.shift_exact:
            return self.base[0] + P, self.base[1] + P
        return self._scaled(P)[:2]

    def first_ctx(self, P: int) -> int:
        prompt, _ = self.arrays(P)
        return int(prompt[0] + self.g2[0])

    def fits(self, P: int, mal: int | None) -> int:
        """Number of leading rounds with prompt + gen <= mal."""
        prompt, _ = self.arrays(P)
        if mal is None:
            return prompt.size
        over = (prompt + self.g2) > mal
        return int(over.argmax()) if over.any() else prompt.size

    def agent(self, prefix: int, mal: int | None, tid: str, prefix_meta: int | None) -> Trajectory:
        P = prefix + 1 if prefix else 0
        prompt, hit = self.arrays(P)
        n = self.fits(P, mal)
        a, g, th = self.a2[:n], self.g2[:n], self.think[:n]
        prompt, hit = prompt[:n], hit[:n]
        meta = dict(self.src.meta)
        if prefix:
            a = np.concatenate(([prefix], a))
            g = np.concatenate(([1], g))
            th = np.concatenate(([0.0], th))
            prompt = np.concatenate(([prefix], prompt))
            hit = np.concatenate(([0], hit))
            meta["source"] = self.src.id
            meta["prefix_tokens"] = prefix_meta
        return Trajectory(tid, a.astype(np.int64), g.astype(np.int64), th.astype(np.float64),
                          prompt.astype(np.int64), hit.astype(np.int64), meta=meta)
