"""The variables an operation declares, read without graphql-core: the same answer as
graphql-core's parser on documents with comments, strings, fragments and directives."""

from __future__ import annotations

import pytest

from netrex_async._operation import declared_variables

graphql = pytest.importorskip("graphql")

DOCUMENTS = [
    "{ cameraList { name } }",
    "query { cameraList { name } }",
    "query($after: ID) { events(afterId: $after) { id } }",
    "query Events($after: ID, $limit: Int = 20) { events(afterId: $after, limit: $limit) { id } }",
    "query($ after: ID) { events(afterId: $after) { id } }",
    # a comment, a string and a block string that look like declarations
    "# query($after: ID)\nquery { events(afterId: 1) { id } }",
    'query($a: String = "($after: ID)") { x(s: $a) }',
    'query($a: String = """ $after: ID \\""" ) """) { x(s: $a) }',
    "query($a: [In!]! = [{x: 1, y: [2]}] @dir(r: {k: 1})) @op(o: {p: 2}) { x(i: $a) }",
    "query Q($a: Int) { ...F } fragment F on Query { y(a: $a) }",
    "fragment query on Query { z } query($after: ID) { ...query }",
    "mutation M($after: ID) { x(a: $after) }",
    "subscription($after: ID) { x(a: $after) }",
    "query A($after: ID) { x(a: $after) } query B { y }",
    "\ufeffquery ($after:ID,,$limit:Int){x(a:$after,l:$limit)}",
]


def graphql_core(document: str, operation_name: str | None) -> frozenset[str] | None:
    ops = [
        d
        for d in graphql.parse(document).definitions
        if isinstance(d, graphql.OperationDefinitionNode)
    ]
    if operation_name is not None:
        ops = [o for o in ops if o.name is not None and o.name.value == operation_name]
    if len(ops) != 1:
        return None
    return frozenset(v.variable.name.value for v in ops[0].variable_definitions or ())


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("operation_name", [None, "A", "B", "Q", "Events"])
def test_the_same_variables_as_graphql_core(document: str, operation_name: str | None) -> None:
    assert declared_variables(document, operation_name) == graphql_core(document, operation_name)


@pytest.mark.parametrize(
    "document",
    [
        "query($after: ID { x }",
        "{ x",
        "{ x } }",
        'query($a: String = "open) { x }',
        "query ~ { x }",
    ],
)
def test_a_document_that_does_not_parse_is_left_to_the_provider(document: str) -> None:
    assert declared_variables(document) is None
