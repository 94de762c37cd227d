"""Tables of numerical methods by config name: the one place a method is named.

A problem's config stores only the *name* of its method (``solver`` or
``integrator``), and the problem states what a method must cope with (its
:class:`~pdeforge.problems.LinearTraits`). The table, in the layer where the
methods live, does everything else once for every caller: it knows the
names, refuses a method that does not apply (saying why), and decides what
``auto`` stands for.

Why validation lives here and not in the config: problems sit below solvers
and never import them, so a list of names in the config would be a second
copy that nothing keeps in sync. The price is that a wrong name is reported
when the method is chosen (:func:`pdeforge.solvers.method_for`, which
``generate`` calls before it creates anything) rather than when the config
is built; the message is the same one line.

Adding a method is one entry of its family's table, and ``auto`` is
resolved by the table's rule:

    >>> from pdeforge.problems import LinearTraits
    >>> from pdeforge.solvers import LINEAR_SOLVERS
    >>> LINEAR_SOLVERS.choose("auto", LinearTraits(ndim=2, definite=False)).name
    'gmres-mg'
    >>> LINEAR_SOLVERS.choose("cg", LinearTraits(ndim=2, definite=False))  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    pdeforge.errors.PdeforgeError: linear solver cg does not apply: the operator is indefinite and CG needs
    a positive definite one; use auto, gmres-mg or direct
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from pdeforge.errors import PdeforgeError

__all__ = ["AUTO", "Method", "MethodTable"]

AUTO = "auto"
"""The name that lets the table choose the method from the problem's traits."""


def _accepts_everything(traits: Any) -> str | None:
    """The default ``refuses`` of a :class:`Method`: it applies to every problem.

    Parameters
    ----------
    traits
        The problem's traits (not looked at).

    Returns
    -------
    None
        No reason to refuse.
    """
    return None


@dataclass(frozen=True)
class Method:
    """A numerical method as an entry of a :class:`MethodTable`.

    Parameters
    ----------
    name
        The name configs use (``solver = "pcg-mg"``).
    run
        The method itself: for linear solvers ``run(operator, b, *, rtol)``
        returning a :class:`~pdeforge.solvers.SolveResult`; for integrators
        the scheme object (with ``stepper`` and ``order``).
    summary
        One line for listings (``pdeforge problems``).
    refuses
        ``refuses(traits)`` is ``None`` when the method applies to a problem
        with these traits, else the reason it does not, in words.
    """

    name: str
    run: Callable[..., Any] | Any
    summary: str
    refuses: Callable[[Any], str | None] = _accepts_everything


class MethodTable(MutableMapping[str, Method]):
    """Every method of one family by name, with the rule that chooses ``auto``.

    Parameters
    ----------
    family
        What the methods are, for messages (``"linear solver"``).
    methods
        The entries.
    auto
        ``auto(traits) -> name`` for the problem's traits, or ``None`` when
        the family has no automatic choice.
    bind
        Turns an entry's ``run`` into the callable a problem's ``solve``
        takes (identity by default; integrators bind their scheme to the
        trajectory driver).
    """

    def __init__(self, family: str, methods: Iterable[Method], *, auto: Callable[[Any], str] | None = None,
                 bind: Callable[[Any], Callable[..., Any]] | None = None) -> None:
        self.family = family
        self._methods: dict[str, Method] = {}
        self._auto = auto
        self._bind = bind
        for method in methods:
            self[method.name] = method

    def __getitem__(self, name: str) -> Method:
        return self._methods[name]

    def __setitem__(self, name: str, method: Method) -> None:
        if not isinstance(method, Method) or method.name != name:
            raise ValueError(f"a {self.family} entry must be a Method named {name!r}")
        if name == AUTO:
            raise ValueError(f"{AUTO!r} is chosen by the table, not an entry")
        self._methods[name] = method

    def __delitem__(self, name: str) -> None:
        del self._methods[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a config may give, ``auto`` first where the family has it."""
        return ((AUTO,) if self._auto is not None else ()) + tuple(self._methods)

    def choose(self, name: str, traits: Any = None) -> Method:
        """The entry that ``name`` stands for on a problem with ``traits``.

        Raises
        ------
        PdeforgeError
            For an unknown name, or a method that does not apply (with why).
        """
        chosen = self._auto(traits) if name == AUTO and self._auto is not None else name
        if chosen not in self._methods:
            raise PdeforgeError(f"unknown {self.family} '{name}' (known: {', '.join(self.names)})")
        method = self._methods[chosen]
        reason = method.refuses(traits)
        if reason is not None:
            raise PdeforgeError(f"{self.family} {chosen} does not apply: {reason}")
        return method

    def bound(self, method: Method) -> Callable[..., Any]:
        """The callable a problem's ``solve`` takes for this entry."""
        return method.run if self._bind is None else self._bind(method.run)
