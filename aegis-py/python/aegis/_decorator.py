"""``@secure_tool`` and ``agent_context`` (SPEC §9 Python)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
from dataclasses import dataclass
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from ._aegis import PendingApproval
from ._engine import Decision, Engine, Outcome
from ._errors import AegisError, ApprovalRequired, ArgumentError, PolicyDenied

__all__ = ["AgentContext", "agent_context", "current_agent_context", "secure_tool", "ApprovalHandler"]

F = TypeVar("F", bound=Callable[..., Any])

#: Called with a ``require_approval`` decision; returns a grant token (``str``) or
#: ``None``. May be a plain or an ``async`` function.
ApprovalHandler = Callable[[Decision], Union[Optional[str], Awaitable[Optional[str]]]]


@dataclass(frozen=True)
class AgentContext:
    """Who is calling: the request fields a guarded tool takes from context."""

    agent: Optional[str] = None
    chain: Tuple[str, ...] = ()
    session: Optional[str] = None
    environment: Optional[str] = None
    context: Optional[Mapping[str, Any]] = None


_CURRENT: contextvars.ContextVar[AgentContext] = contextvars.ContextVar(
    "aegis_agent_context", default=AgentContext()
)


def current_agent_context() -> AgentContext:
    """The agent context in effect (empty outside any ``agent_context``)."""
    return _CURRENT.get()


@contextlib.contextmanager
def agent_context(
    agent: Optional[str] = None,
    *,
    chain: Optional[Sequence[str]] = None,
    session: Optional[str] = None,
    environment: Optional[str] = None,
    context: Optional[Mapping[str, Any]] = None,
) -> Iterator[AgentContext]:
    """Sets the calling agent for guarded tools in this block (a ``contextvars``
    variable, so it follows threads' contexts and asyncio tasks).

    Nested (SPEC §17), a chain only grows: the inner chain is the outer chain, then the
    outer agent (when this block names an agent and the outer block has one: the inner
    agent is called by the outer one), then the ``chain`` given here, if any. An inner
    block can never replace or hide its callers (or a killed ancestor). The other
    fields are inherited unless given."""
    if isinstance(chain, (str, bytes)):
        raise ArgumentError(f"chain must be a sequence of agent names, not a {type(chain).__name__}", "chain")
    outer = _CURRENT.get()
    new_chain = outer.chain
    if agent is not None and outer.agent is not None:
        new_chain += (outer.agent,)
    if chain is not None:
        new_chain += tuple(chain)
    ctx = AgentContext(
        agent=agent if agent is not None else outer.agent,
        chain=new_chain,
        session=session if session is not None else outer.session,
        environment=environment if environment is not None else outer.environment,
        context=context if context is not None else outer.context,
    )
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


class _Call:
    """One guarded call: its request and how to call the tool with the params as
    decided."""

    __slots__ = ("request", "bound", "skip", "extra")

    def __init__(
        self, request: Dict[str, Any], bound: inspect.BoundArguments, skip: Optional[str], extra: List[str]
    ) -> None:
        self.request = request
        self.bound = bound
        self.skip = skip
        self.extra = extra

    def arguments(self, params: Dict[str, Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
        """The tool's ``*args, **kwargs`` rebuilt from the params as decided (a first
        ``self``/``cls`` passed through as given)."""
        sig = self.bound.signature
        for name in list(self.bound.arguments):
            if name == self.skip:
                continue
            kind = sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                self.bound.arguments[name] = {k: params[k] for k in self.extra}
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                self.bound.arguments[name] = tuple(params[name])
            else:
                self.bound.arguments[name] = params[name]
        return self.bound.args, self.bound.kwargs


def _params(
    sig: inspect.Signature, args: Any, kwargs: Any
) -> Tuple[Dict[str, Any], inspect.BoundArguments, Optional[str], List[str]]:
    """The call's arguments by name (SPEC §9, §9a): defaults applied, a first
    ``self``/``cls`` left out, ``*args`` a list under its own name, and the arguments
    gathered by ``**kwargs`` at the top level beside the named ones (a ``bcc=`` passed
    through ``**extra`` is ``params.bcc``, where a rule on ``params.bcc`` sees it).
    Also the bound arguments, the left-out name and the ``**kwargs`` names, to call
    the tool with the params as decided."""
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    names = list(sig.parameters)
    skip = names[0] if names and names[0] in ("self", "cls") else None
    params: Dict[str, Any] = {}
    extra: Dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name == skip:
            continue
        if sig.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            extra = dict(value)
        else:
            params[name] = value
    for key, value in extra.items():
        # Only a positional-only parameter (``def f(a, /, **kw)`` called as
        # ``f(1, a=2)``), the ``*args`` name or a left-out ``self``/``cls`` can share a
        # name with a keyword argument: two values for one param would leave the
        # policy deciding on one of them, so the call is refused.
        if key in params or key == skip:
            raise ArgumentError(
                f"argument {key!r} is given twice (as a named parameter and through **kwargs); "
                "a guarded call's params must be unambiguous",
                "params",
            )
        params[key] = value
    return params, bound, skip, list(extra)


def _call(tool: str, action: Optional[str], sig: inspect.Signature, args: Any, kwargs: Any) -> _Call:
    """The request of one guarded call (SPEC §9), as the caller's objects: the engine
    converts it once (``Engine._guarded``) into the values that are decided, re-decided
    with a grant and passed to the tool (SPEC §17)."""
    ctx = _CURRENT.get()
    if ctx.agent is None:
        raise ArgumentError(
            f"tool {tool!r} called with no agent in context; wrap the call in `with aegis.agent_context(agent=...)`"
        )
    params, bound, skip, extra = _params(sig, args, kwargs)
    req: Dict[str, Any] = {"agent": ctx.agent, "tool": tool, "params": params}
    if action is not None:
        req["action"] = action
    if ctx.chain:
        req["chain"] = list(ctx.chain)
    if ctx.session is not None:
        req["session"] = ctx.session
    if ctx.environment is not None:
        req["environment"] = ctx.environment
    if ctx.context is not None:
        req["context"] = dict(ctx.context)
    return _Call(req, bound, skip, extra)


def _check_token(token: Any) -> Optional[str]:
    if token is None or isinstance(token, str):
        return token
    raise AegisError(f"approval_handler must return a grant token (str) or None, not {type(token).__name__}")


def _regrant(
    engine: Engine, pending: PendingApproval, first: Decision, token: Optional[str]
) -> Tuple[Decision, Optional[Dict[str, Any]]]:
    if token is None:
        raise ApprovalRequired(first, code="approval_rejected")
    decision, params, _ = engine._regrant(pending, token)
    return decision, params


def _verdict(decision: Decision, params: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The params to call the tool with when the decision is ``allow`` (they are given
    for every ``allow``); else raises."""
    if decision.outcome is Outcome.ALLOW:
        return cast(Dict[str, Any], params)
    if decision.outcome is Outcome.DENY:
        raise PolicyDenied(decision)
    raise ApprovalRequired(decision)


def _sync_handler(handler: ApprovalHandler, decision: Decision, timeout: Optional[float]) -> Optional[str]:
    def call() -> Optional[str]:
        result = handler(decision)
        if inspect.isawaitable(result):
            aw = result

            async def run() -> Optional[str]:
                return await aw

            return asyncio.run(run())
        return result

    if timeout is None:
        return _check_token(call())
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        fut = pool.submit(contextvars.copy_context().run, call)
        try:
            return _check_token(fut.result(timeout=timeout))
        except concurrent.futures.TimeoutError:
            raise ApprovalRequired(decision, f"approval handler timed out after {timeout}s") from None
    finally:
        pool.shutdown(wait=False)


async def _async_handler(handler: ApprovalHandler, decision: Decision, timeout: Optional[float]) -> Optional[str]:
    async def call() -> Optional[str]:
        result = handler(decision)
        if inspect.isawaitable(result):
            return await result
        return result

    try:
        return _check_token(await asyncio.wait_for(call(), timeout))
    except asyncio.TimeoutError:
        raise ApprovalRequired(decision, f"approval handler timed out after {timeout}s") from None


def secure_tool(
    engine: Engine,
    *,
    tool: Optional[str] = None,
    action: Optional[str] = None,
    approval_handler: Optional[ApprovalHandler] = None,
    approval_timeout: Optional[float] = None,
) -> Callable[[F], F]:
    """Guards a tool function (plain or ``async``): each call is decided by
    ``engine`` first, and the body runs only if the decision is ``allow``.

    The request's ``params`` are the call's arguments by name (defaults applied,
    ``self``/``cls`` left out, ``*args`` a list under its name, ``**kwargs`` merged at
    the top level); agent, chain, session, environment and context come from
    :func:`agent_context`. ``tool`` defaults to the function's name.

    The request is a snapshot (SPEC §17): the arguments are converted once, by the
    engine's walk, into the values that are decided, and the body is called with a
    deep copy of those (plain ``dict``/``list``/``str``/``int``/``float``/``bool``/
    ``None``; a tuple arrives as a list, an integral float such as ``5.0`` as the int
    ``5``, a ``str``/``dict``/``list`` subclass as the plain type), never with the
    caller's objects, which may change while the call is decided. ``self``/``cls`` is
    passed through as given.

    Raises :class:`AegisError` (no agent in context, audit failure),
    :class:`RequestError` (arguments that are not JSON-like), :class:`PolicyDenied`
    or :class:`ApprovalRequired`. With ``approval_handler``, a ``require_approval``
    decision is passed to it; a returned grant token re-decides the same request
    (same time) with ``approval=token``."""

    def decorate(fn: F) -> F:
        name = tool if tool is not None else fn.__name__
        sig = inspect.signature(fn)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = _call(name, action, sig, args, kwargs)
                decision, params, pending = engine._guarded(call.request)
                if pending is not None and approval_handler is not None:
                    token = await _async_handler(approval_handler, decision, approval_timeout)
                    decision, params = _regrant(engine, pending, decision, token)
                a, kw = call.arguments(_verdict(decision, params))
                return await fn(*a, **kw)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = _call(name, action, sig, args, kwargs)
            decision, params, pending = engine._guarded(call.request)
            if pending is not None and approval_handler is not None:
                token = _sync_handler(approval_handler, decision, approval_timeout)
                decision, params = _regrant(engine, pending, decision, token)
            a, kw = call.arguments(_verdict(decision, params))
            return fn(*a, **kw)

        return cast(F, wrapper)

    return decorate
