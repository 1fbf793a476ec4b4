"""The variables a GraphQL operation declares, read without graphql-core.

:meth:`NetrexClient.collect` must refuse a query that does not declare its cursor
variable: the provider ignores a variable the query does not use, so every page would be
the first, for ever. graphql-core is only in the ``testing`` extra, so the document is
read here by a small lexer that follows the GraphQL lexical grammar (ignored tokens,
comments, strings and block strings, names, punctuators) far enough to find each
operation's variable definitions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["declared_variables"]

# One token of a GraphQL document, or an ignored run (white space, commas, a comment).
# Strings are matched whole so that nothing inside one (a "$x", a "#", a brace) counts.
_TOKEN = re.compile(
    r"""
      (?P<ignored>(?:[\s,\ufeff]|\#[^\n\r]*)+)
    | (?P<block>\"\"\"(?:\\\"\"\"|(?!\"\"\")[\s\S])*\"\"\")
    | (?P<string>"(?:\\.|[^"\\\n\r])*")
    | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
    | (?P<number>-?[0-9][_0-9A-Za-z.+-]*)
    | (?P<punct>\.\.\.|[!$&()\:=@\[\]{|}])
    """,
    re.VERBOSE,
)
_OPERATIONS = frozenset({"query", "mutation", "subscription"})
_DEFINITIONS = _OPERATIONS | {"fragment"}


def _tokens(document: str) -> Iterator[str] | None:
    """The document's significant tokens, or ``None`` if it does not lex."""
    out: list[str] = []
    pos = 0
    while pos < len(document):
        match = _TOKEN.match(document, pos)
        if match is None:
            return None
        pos = match.end()
        if match.lastgroup != "ignored":
            out.append(match.group())
    return iter(out)


def declared_variables(document: str, operation_name: str | None = None) -> frozenset[str] | None:
    """The names (without ``$``) of the variables the operation to run declares.

    The operation is the one named ``operation_name``, or the only one. ``None`` when
    that cannot be told here (the document does not lex, has no such operation, or
    several and no name): the provider's own answer then says what is wrong.
    """
    tokens = _tokens(document)
    if tokens is None:
        return None
    operations: dict[str | None, frozenset[str]] = {}
    count = 0
    depth = 0
    for token in tokens:
        if token == "{":
            if depth == 0:
                operations.setdefault(None, frozenset())  # the shorthand `{ ... }`
                count += 1
            depth += 1
        elif token == "}":
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0 and token in _DEFINITIONS:
            header = _header(tokens)
            if header is None:
                return None
            name, variables = header
            depth = 1  # _header read the `{` that opens the selection set
            if token != "fragment":
                count += 1
                operations[name] = variables
    if depth != 0:
        return None
    if operation_name is not None:
        return operations.get(operation_name)
    if count != 1:
        return None
    return next(iter(operations.values()))


def _header(tokens: Iterator[str]) -> tuple[str | None, frozenset[str]] | None:
    """After ``query``/``mutation``/``subscription``/``fragment``: the definition's name
    and declared variables, reading up to and including its opening ``{``."""
    name: str | None = None
    variables: set[str] = set()
    token = next(tokens, None)
    if token is not None and _is_name(token):
        name, token = token, next(tokens, None)
    if token == "(":
        # Variable definitions: `$name: Type = default @directive(args)`, at depth 1.
        # A default value is constant (no variables), so every `$` here declares one.
        parens = 1
        while parens:
            token = next(tokens, None)
            if token is None:
                return None
            if token == "(":
                parens += 1
            elif token == ")":
                parens -= 1
            elif token == "$" and parens == 1:
                var = next(tokens, None)
                if var is None or not _is_name(var):
                    return None
                variables.add(var)
        token = next(tokens, None)
    # Directives (and a fragment's type condition) up to the selection set; an object
    # value in a directive's arguments has braces of its own.
    parens = 0
    while token is not None and (token != "{" or parens):
        parens += {"(": 1, ")": -1}.get(token, 0)
        token = next(tokens, None)
    if token is None:
        return None
    return name, frozenset(variables)


def _is_name(token: str) -> bool:
    # Tokens are names, numbers, punctuators or strings: only a name starts so.
    return token[0] == "_" or token[0].isalpha()
