"""SubmitFunction's role allows exactly the DynamoDB calls its code path makes (least privilege, both ways)."""

from __future__ import annotations

from typing import Any

from tests.support.images import image_bytes


def _submit_dynamodb_actions(cfn: dict[str, Any]) -> set[str]:
    role = cfn["Resources"]["SubmitFunctionRole"]["Properties"]
    actions: set[str] = set()
    for policy in role.get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        for statement in [statements] if isinstance(statements, dict) else statements:
            if "Fn::If" in statement:  # a statement only some configurations have (a KMS key): the allowing branch
                statement = statement["Fn::If"][1]
            listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            actions |= {a.split(":", 1)[1] for a in listed if a.startswith("dynamodb:")}
    return actions


def test_the_submit_path_calls_only_the_dynamodb_actions_its_role_allows(cfn, make_pipeline):
    called: set[str] = set()

    def watched(**settings: str) -> Any:
        pipeline = make_pipeline(**settings)
        client = pipeline.runtime.store._client  # the JobStore's own client: every table call goes through it
        client.meta.events.register("before-call.dynamodb", lambda model, **_: called.add(model.name))
        return pipeline

    pipeline = watched(MAX_IN_FLIGHT="1")

    first = pipeline.upload("uploads/first.jpg", image_bytes())
    assert pipeline.submit(first)["outcomes"][0]["outcome"] == "SUBMITTED"
    assert pipeline.submit(first)["outcomes"][0]["outcome"] == "DUPLICATE"
    queued = pipeline.submit(pipeline.upload("uploads/queued.jpg", image_bytes()))
    assert queued["outcomes"][0]["outcome"] == "WAITING"
    bad = pipeline.submit(pipeline.upload("uploads/bad.jpg", b"not an image"))
    assert bad["outcomes"][0]["outcome"] == "REJECTED"
    # A daily token budget the job's estimate would pass: the job waits, and says how much of the day is committed.
    budgeted = watched(MAX_IN_FLIGHT="5", DAILY_TOKEN_BUDGET="1")
    held = budgeted.submit(budgeted.upload("uploads/over-budget.jpg", image_bytes()))
    assert held["outcomes"][0]["outcome"] == "WAITING"
    waiting = budgeted.runtime.store.get(held["outcomes"][0]["job_id"])
    assert waiting is not None and waiting.last_error is not None
    assert waiting.last_error.code == "DAILY_BUDGET_REACHED"

    # A batch file: the submit function claims it and writes its rows as waiting jobs in bulk (BatchWriteItem).
    pipeline.upload("uploads/rows/_img/a.jpg", image_bytes())  # the image the rows name (a "_" folder: no job)
    table = pipeline.submit(pipeline.upload("uploads/rows/list.csv", b"image,prompt\n_img/a.jpg,one\n_img/a.jpg,two\n"))
    assert table["outcomes"][0]["outcome"] not in ("REJECTED", "DUPLICATE"), table

    allowed = _submit_dynamodb_actions(cfn)
    assert called <= allowed, f"the submit path calls {called - allowed}, which its role does not allow"
    assert allowed == called, f"the role allows {allowed - called}, which the submit path never calls"
