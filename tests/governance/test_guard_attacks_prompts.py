"""The guarded server, continued: renames, what a prompt holds, GraphQL, and MLflow workspaces."""

import pytest
from test_guard_attacks import attack, audit, entries_after, ok, register, rest, server, snapshot  # noqa: F401


def test_renaming_a_prompt_needs_admin_and_leaves_its_history_behind(server):
    root = server[1]
    register(server, "alice", "sandbox.draft", "Draft.\n\nQ: {{question}}")
    for new_name in ("sandbox.final", "support.draft"):  # support: where alice may not create what she likes
        attack(server, "alice", "POST", "/mlflow/registered-models/rename", {"name": "sandbox.draft",
                                                                             "new_name": new_name},
               says=f"alice is editor on 'sandbox.draft' and cannot rename prompt sandbox.draft to {new_name}")
    seq = audit(root).last().seq
    ok(rest(server, "admin", "POST", "/mlflow/registered-models/rename", {"name": "sandbox.draft",
                                                                          "new_name": "sandbox.final"}))
    assert [(e.action, e.prompt) for e in entries_after(root, seq)] == [("delete", "sandbox.draft"),
                                                                        ("delete", "sandbox.final")]


def test_a_prompt_holds_prompt_versions_only(server):
    attack(server, "alice", "POST", "/mlflow/model-versions/create",
           {"name": "support", "source": "runs:/0123456789abcdef/model", "tags": [{"key": "note", "value": "x"}]},
           says="registering support: a version of a prompt is a prompt version")


def test_graphql_writes_nothing(server):
    before = snapshot(server[1])
    for user in ("alice", "admin"):
        response = rest(server, user, "POST", "/graphql", {"query": 'mutation { mlflowSetRegisteredModelAlias(input: '
                                                                    '{name: "support", alias: "production", '
                                                                    'version: "2"}) { __typename } }'}, prefix="")
        assert response.status_code != 200 or response.json().get("errors"), response.text
    assert snapshot(server[1]) == before


def test_the_guard_will_not_start_with_mlflow_workspaces(monkeypatch):
    from promptyard.errors import UserError
    from promptyard.governance.mlflow_guard import create_app

    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    with pytest.raises(UserError, match="promptyard-auth guards one registry, and MLflow workspaces"):
        create_app()
