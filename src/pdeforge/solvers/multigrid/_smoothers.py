"""Multicolour Gauss-Seidel on sublattices: the symmetric smoother of the V-cycle.

The nodes split into ``2^d`` colours by the parity of each index (the
sublattices of :mod:`._layout`). A stencil with offsets in ``{-1, 0, 1}^d``
never couples two nodes of one colour, so all nodes of a colour relax at
once and a sweep is exact Gauss-Seidel in the colour ordering: red-black
for the 5-point operator, four colours for the 9-point coarse operators
(Trottenberg, Oosterlee and Schueller, *Multigrid*, 2001, sec. 4.1 and
5.4). Relaxing the colours in one order before the coarse correction and in the
reverse order after it makes the V-cycle a symmetric operator, as
preconditioned CG needs. The order is data: a pattern of red (``r``) and
black (``b``) half-sweeps. The palindrome ``rbr`` (post-smoothing ``rbr``
again, reversed colour by colour) costs half a sweep more than symmetric
Gauss-Seidel ``rb`` / ``br`` but contracts the Darcy and Poisson errors
by about 0.15 per V-cycle instead of 0.24: 6 instead of 8 PCG iterations.
"""

from __future__ import annotations

import torch

from pdeforge.solvers.multigrid._layout import SplitStencil

__all__ = ["ColouredGaussSeidel", "subtract_terms"]


def subtract_terms(rhs: torch.Tensor, terms: list[tuple[torch.Tensor, torch.Tensor]],
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """``rhs - sum_k w_k x_k`` over the planned ``(w_k, x_k)`` windows, into ``out`` if given.

    The one kernel of relaxation (``x_s = D^{-1} (b_s - sum_k A_k x_k)``,
    couplings only) and of the residual (``b_s - sum_k A_k x_k``, centre included).
    """
    (w, x), *rest = terms
    t = torch.addcmul(rhs, w, x, value=-1, out=out)
    for w, x in rest:
        t.addcmul_(w, x, value=-1)
    return t


class ColouredGaussSeidel:
    """Gauss-Seidel relaxation over the parity colours of a split stencil.

    Vectors are split-layout ``[batch, 2^d, *(h + 2)]``, updated in place.
    ``omega != 1`` over- or under-relaxes (SOR; the schedule ``rb``
    followed by its reverse, from zero, applies the SSOR preconditioner).
    """

    def __init__(self, A: SplitStencil, omega: float = 1.0) -> None:
        if not 0 < omega < 2:
            raise ValueError(f"relaxation factor omega={omega} must lie in (0, 2)")
        self.omega = float(omega)
        layout = A.layout
        self.interior = layout.interior[1:]
        self.red = [layout.index(p) for p in layout.parities if sum(p) % 2 == 0]
        self.black = [layout.index(p) for p in layout.parities if sum(p) % 2 == 1]
        self.steps = {}
        for s in self.red + self.black:
            centre = A.coefficient(s, A.centre_offset)
            if centre is None:
                raise ValueError(f"the stencil has no diagonal on sublattice {s}")
            inv_diag = torch.where(centre != 0, self.omega / centre, torch.zeros_like(centre))
            # x_s <- (1 - omega) x_s + omega D^{-1} (b_s - sum_k A_k x_(source k))
            couplings = [(w, src, window) for o, w, src, window in A.terms[s] if o != A.centre_offset]
            self.steps[s] = (inv_diag, couplings)
        self.couples = {s: A.couples(s) for s in self.red + self.black}

    def schedule(self, pattern: str) -> list[int]:
        """Colours to relax, in order, for a pattern of ``r`` and ``b`` half-sweeps."""
        if not pattern or set(pattern) - {"r", "b"}:
            raise ValueError(f"a smoothing pattern is a string of 'r' and 'b', got {pattern!r}")
        return [s for c in pattern for s in (self.red if c == "r" else self.black)]

    def live_after(self, schedule: list[int]) -> list[int]:
        """Colours whose residual may be nonzero after relaxing ``schedule``.

        Exact Gauss-Seidel (``omega = 1``) zeroes a colour's residual, which
        stays zero until one of its neighbours changes; with over-relaxation
        every colour stays live.

        Parameters
        ----------
        schedule
            The colours in the order they are relaxed (repeats allowed).

        Returns
        -------
        list of int
            The live colours, ascending.
        """
        if self.omega != 1.0:
            return sorted(self.steps)
        last = {s: i for i, s in enumerate(schedule)}
        return [s for s in sorted(self.steps)
                if s not in last or any(last.get(n, -1) > last[s] for n in self.couples[s])]

    def stale_reads(self, schedule: list[int], *, zero_start: bool = False) -> set[int]:
        """Colours whose values before ``schedule`` the relaxation reads.

        With ``zero_start`` (as :meth:`relax` takes it), a colour none of
        whose neighbours has moved yet reads nothing. A multigrid level
        zeroes only these colours before pre-smoothing from zero: the
        others are written before anything reads them.

        Parameters
        ----------
        schedule
            The colours in the order they are relaxed.
        zero_start
            Whether the relaxation starts from zero (its fast first steps).

        Returns
        -------
        set of int
            The colours read before being relaxed, all of them if ``omega != 1``
            (over-relaxation reads a colour's own old value).
        """
        if self.omega != 1.0:
            return set(self.steps)
        read: set[int] = set()
        touched: set[int] = set()
        for s in schedule:
            if not (zero_start and s not in touched and not (self.couples[s] & touched)):
                read |= self.couples[s] - touched
            touched.add(s)
        return read | (set(self.steps) - touched)

    def overwritten(self, schedule: list[int]) -> set[int]:
        """Colours that ``schedule`` relaxes before it reads them: their old values never matter.

        Exact Gauss-Seidel (``omega = 1``) gives a colour a value computed
        from its neighbours only, so whatever it held before is lost unless
        a neighbour's relaxation read it first. A multigrid level does not
        prolong its coarse correction onto these colours of the
        post-smoothing (on the 5-point fine grid, half of the nodes).

        Parameters
        ----------
        schedule
            The colours in the order they are relaxed.

        Returns
        -------
        set of int
            Those colours (none if ``omega != 1``).
        """
        if self.omega != 1.0:
            return set()
        out: set[int] = set()
        read: set[int] = set()
        touched: set[int] = set()
        for s in schedule:
            if s not in touched and s not in read:
                out.add(s)
            read |= self.couples[s] - touched
            touched.add(s)
        return out

    def plan(self, x: torch.Tensor, b: torch.Tensor) -> dict[int, tuple]:
        """The windows into ``x`` and ``b`` (split layout ``[batch, 2^d, *(h + 2)]``) that relaxing touches.

        Creating a view costs as much Python time as a small kernel, so a
        caller that relaxes the same buffers many times (a multigrid level)
        plans them once and hands the plan to :meth:`relax`.
        """
        inner = self.interior
        out = {}
        for s, (inv_diag, couplings) in self.steps.items():
            # x_s <- D^{-1} (b_s - sum_k A_k x[window_k]): target, rhs, D^{-1} and the coupling terms.
            terms = [(w, x[(slice(None), src, *window)]) for w, src, window in couplings]
            out[s] = (x[(slice(None), s, *inner)], b[(slice(None), s, *inner)], inv_diag, terms)
        return out

    def relax(self, plan: dict[int, tuple], schedule: list[int], *, zero_start: bool = False) -> None:
        """Relax the colours of ``schedule`` in order, in place on the buffers of ``plan``.

        ``zero_start`` when ``x`` is zero: a colour none of whose neighbours
        has moved yet is then just ``D^{-1} b`` (no coupling terms).
        """
        touched: set[int] = set()
        for s in schedule:
            target, rhs, inv_diag, terms = plan[s]
            if zero_start and s not in touched and not (self.couples[s] & touched):
                torch.mul(rhs, inv_diag, out=target)  # x is zero here and on every neighbour
            elif self.omega == 1.0:
                # Straight into x_s: its own value is not among the couplings (no colour couples to
                # itself), so no temporary, whose fresh pages would cost as much as the sweep.
                subtract_terms(rhs, terms, out=target).mul_(inv_diag)
            else:
                target.mul_(1.0 - self.omega).addcmul_(subtract_terms(rhs, terms), inv_diag)
            touched.add(s)
