"""The provider's schema: the standard introspection query, and its answer as SDL.

The query is sent through :meth:`NetrexClient.graphql`, so it is authenticated, refreshed
and retried like any other call. Turning the answer into SDL needs graphql-core (the
``graphql`` extra); fetching the JSON does not: the query is a copy of graphql-core's
standard one (``get_introspection_query()`` with its defaults), so a server that answers
GraphiQL or gql answers this too.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._errors import ApiError, ExtraRequired, install_hint
from ._redact import safe_text

if TYPE_CHECKING:
    from ._client import NetrexClient

__all__ = ["INTROSPECTION_QUERY", "fetch_introspection", "fetch_sdl", "introspection_to_sdl"]

#: The standard introspection query (graphql-core's ``get_introspection_query()``).
INTROSPECTION_QUERY = """\
query IntrospectionQuery {
  __schema {
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types {
      ...FullType
    }
    directives {
      name
      description
      locations
      args {
        ...InputValue
      }
    }
  }
}

fragment FullType on __Type {
  kind
  name
  description
  fields(includeDeprecated: true) {
    name
    description
    args {
      ...InputValue
    }
    type {
      ...TypeRef
    }
    isDeprecated
    deprecationReason
  }
  inputFields {
    ...InputValue
  }
  interfaces {
    ...TypeRef
  }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes {
    ...TypeRef
  }
}

fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
}

fragment TypeRef on __Type {
  kind
  name
  ofType {
    name
    kind
    ofType {
      name
      kind
      ofType {
        name
        kind
        ofType {
          name
          kind
          ofType {
            name
            kind
            ofType {
              name
              kind
              ofType {
                name
                kind
                ofType {
                  name
                  kind
                  ofType {
                    name
                    kind
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""

#: How to get graphql-core, for the message of :class:`ExtraRequired`.
INSTALL_HINT = install_hint("graphql")


async def fetch_introspection(client: NetrexClient) -> dict[str, Any]:
    """Run the introspection query; return its ``data`` (``{"__schema": {...}}``).

    Raises:
        ApiError: The answer has no ``__schema`` object (introspection is turned off, or
            the server is not a GraphQL server).
        GraphQLError, TransportError, ReauthorizationRequired: As for any call.
    """
    data = await client.graphql(INTROSPECTION_QUERY, operation_name="IntrospectionQuery")
    if not isinstance(data, dict) or not isinstance(data.get("__schema"), dict):
        raise ApiError(
            "the GraphQL API answered the introspection query without a __schema object "
            "(is introspection turned off at this provider?)",
            status=200,
        )
    return data


def _graphql_core() -> ModuleType:
    try:
        import graphql
    except ImportError as e:
        raise ExtraRequired(
            f"printing the schema as SDL needs graphql-core, which is not installed: "
            f"{INSTALL_HINT}; or ask for the introspection JSON instead (as_json=True, "
            "or `netrex-async schema --json`)",
            extra="graphql",
            name="graphql",
        ) from e
    return graphql


def introspection_to_sdl(introspection: dict[str, Any]) -> str:
    """The schema of an introspection answer as SDL text (needs graphql-core).

    Raises:
        ExtraRequired: graphql-core is not installed (the ``graphql`` extra).
        ApiError: The answer does not describe a valid schema.
    """
    graphql = _graphql_core()
    try:
        schema = graphql.build_client_schema(introspection)
        return str(graphql.print_schema(schema)) + "\n"
    except (TypeError, ValueError, KeyError, graphql.GraphQLError) as e:
        raise ApiError(
            "the introspection answer does not describe a valid schema: " + safe_text(e, limit=200),
            status=200,
        ) from None


async def fetch_sdl(client: NetrexClient) -> str:
    """The provider's schema as SDL: introspection, then graphql-core's printer.

    graphql-core is looked for first, so that a missing extra costs no request.

    Raises:
        ExtraRequired: graphql-core is not installed.
        ApiError, GraphQLError, TransportError, ReauthorizationRequired: As for any call.
    """
    _graphql_core()
    return introspection_to_sdl(await fetch_introspection(client))
