"""template.yaml's promises, read from the file itself."""

from typing import Any

import pytest

from local.template import load_template, resources_of

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
GLOBAL_TIMEOUT = TEMPLATE["Globals"]["Function"]["Timeout"]


def _ref_name(value: Any) -> str:
    """The logical id behind !Ref X or !GetAtt X.Arn."""
    if "Ref" in value:
        return str(value["Ref"])
    return str(value["Fn::GetAtt"][0])


def sqs_event_sources() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for name, spec in resources_of(TEMPLATE, "AWS::Serverless::Function").items():
        for event in (spec["Properties"].get("Events") or {}).values():
            if event["Type"] == "SQS":
                found.append((name, spec["Properties"], event["Properties"]))
    return found


def job_queues() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in resources_of(TEMPLATE, "AWS::SQS::Queue").items() if "RedrivePolicy" in s["Properties"]}


def test_every_sqs_event_source_reports_partial_batch_failures():
    for function, _, event in sqs_event_sources():
        assert "ReportBatchItemFailures" in event.get("FunctionResponseTypes", []), function


def test_every_consumed_queue_hides_a_message_for_at_least_six_times_the_function_timeout():
    for function, props, event in sqs_event_sources():
        queue = RESOURCES[_ref_name(event["Queue"])]["Properties"]
        assert queue["VisibilityTimeout"] >= 6 * props.get("Timeout", GLOBAL_TIMEOUT), function


def test_every_consumed_queue_is_a_job_queue_with_a_dlq():
    consumed = {_ref_name(event["Queue"]) for _, _, event in sqs_event_sources()}

    assert consumed <= set(job_queues())


def test_every_job_queue_redrives_to_a_dlq_after_at_least_five_receives():
    assert {"RichpanelQueue", "CreditQueue", "OrderProtectionQueue"} <= set(job_queues())
    for name, spec in job_queues().items():
        policy = spec["Properties"]["RedrivePolicy"]
        assert policy["maxReceiveCount"] >= 5, name
        dlq = _ref_name(policy["deadLetterTargetArn"])
        assert RESOURCES[dlq]["Type"] == "AWS::SQS::Queue"


def test_every_dlq_has_an_alarm_on_its_visible_messages():
    alarmed = {
        _ref_name(dimension["Value"])
        for alarm in resources_of(TEMPLATE, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        for dimension in alarm["Properties"]["Dimensions"]
    }
    dlqs = {_ref_name(spec["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) for spec in job_queues().values()}

    assert dlqs
    assert dlqs <= alarmed


def test_every_queue_is_encrypted():
    for name, spec in resources_of(TEMPLATE, "AWS::SQS::Queue").items():
        assert spec["Properties"].get("SqsManagedSseEnabled") is True, name


def iam_statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, spec in resources_of(TEMPLATE, "AWS::Serverless::Function").items():
        for policy in spec["Properties"].get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                found.append((name, statement))
    return found


def test_no_function_policy_grants_a_wildcard_action():
    assert iam_statements()
    for function, statement in iam_statements():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), (function, actions)


def test_kms_use_is_bound_to_a_store_id_encryption_context():
    for function, statement in iam_statements():
        if any(action.startswith("kms:") for action in statement["Action"]):
            assert "kms:EncryptionContext:store_id" in str(statement.get("Condition")), function


def _kms_purposes(function: str, action: str) -> set[str]:
    """The encryption-context purposes ``function`` may use ``action`` with, as its policy's conditions say."""
    found: set[str] = set()
    for name, statement in iam_statements():
        if name == function and action in statement["Action"]:
            allowed = statement["Condition"]["StringLike"]["kms:EncryptionContext:purpose"]
            found |= set(allowed if isinstance(allowed, list) else [allowed])
    return found


@pytest.mark.parametrize(
    ("function", "opens", "seals"),
    [
        ("AdminFunction", {"store", "integration:*"}, {"store", "integration:*", "card_code:*"}),  # card_code: Rivo
        ("WebhookReceiverFunction", set(), set()),
        ("RichpanelWorkerFunction", {"store", "integration:richpanel", "integration:order_protection"}, set()),
        ("CreditWorkerFunction", {"store", "integration:rise", "integration:rivo"}, {"card_code:*"}),
        ("ReportWorkerFunction", {"store", "integration:order_protection"}, set()),
        ("SyncFunction", {"store", "integration:*"}, set()),
        ("WidgetFunction", {"store", "integration:rivo"}, set()),
    ],
)
def test_each_function_may_open_only_the_secrets_it_uses(function, opens, seals):
    # e.g. the widget, reachable without authentication, cannot open a store's Rise, Richpanel or OP tokens
    assert _kms_purposes(function, "kms:Decrypt") == opens
    assert _kms_purposes(function, "kms:GenerateDataKey") == seals


def test_the_main_table_is_on_demand_recoverable_encrypted_and_expires_items():
    table = RESOURCES["MainTable"]["Properties"]

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


def test_every_function_has_a_log_group_with_retention():
    groups = [g["Properties"] for g in resources_of(TEMPLATE, "AWS::Logs::LogGroup").values()]
    named = {str(g["LogGroupName"]) for g in groups}
    for function in resources_of(TEMPLATE, "AWS::Serverless::Function"):
        assert any(function in name for name in named), function
    assert all("RetentionInDays" in g for g in groups)


def test_the_functions_run_on_arm64_python312_with_the_layer():
    function_globals = TEMPLATE["Globals"]["Function"]

    assert function_globals["Runtime"] == "python3.12"
    assert function_globals["Architectures"] == ["arm64"]
    assert RESOURCES["ClaimbridgeLayer"]["Metadata"]["BuildMethod"] == "python3.12"


PUBLIC_DOCS = {"/internal/openapi.json", "/internal/docs"}  # the API's document, as public as the repository


def admin_events() -> list[tuple[str, dict[str, Any]]]:
    events = RESOURCES["AdminFunction"]["Properties"]["Events"]
    return [(e["Properties"]["Path"], e["Properties"]) for e in events.values() if e["Type"] == "Api"]


def test_admin_routes_are_iam_authorized_by_default_and_named_keys_are_the_option():
    assert TEMPLATE["Parameters"]["AdminAuth"]["Default"] == "IAM"
    assert TEMPLATE["Parameters"]["AdminAuth"]["AllowedValues"] == ["IAM", "KEYS"]
    assert TEMPLATE["Conditions"]["AdminKeys"] == {"Fn::Equals": [{"Ref": "AdminAuth"}, "KEYS"]}
    # SAM cannot read an Fn::If in Auth; LanguageExtensions resolves it first
    assert TEMPLATE["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]
    guarded = [(path, props) for path, props in admin_events() if path not in PUBLIC_DOCS]
    assert {"/internal/stores/{storeId}/ledger", "/internal/queues", "/internal/admin-keys"} <= {p for p, _ in guarded}
    for path, props in guarded:
        assert props["Auth"] == {"Authorizer": {"Fn::If": ["AdminKeys", "NONE", "AWS_IAM"]}}, path
    variables = RESOURCES["AdminFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["ADMIN_AUTH"] == {"Ref": "AdminAuth"}
    assert TEMPLATE["Parameters"]["AdminBootstrapKeyDigest"]["NoEcho"] is True


def test_only_the_document_is_public_among_admin_routes():
    public = [(path, props) for path, props in admin_events() if path in PUBLIC_DOCS]

    assert sorted(path for path, _ in public) == sorted(PUBLIC_DOCS)
    assert all("Auth" not in props and props["Method"] == "GET" for _, props in public)


def test_the_sweeper_and_postco_run_every_five_minutes_the_health_check_hourly_and_the_inventory_daily():
    events = RESOURCES["SyncFunction"]["Properties"]["Events"]
    schedules = {name: e["Properties"] for name, e in events.items() if e["Type"] == "Schedule"}

    assert {name: (p["Schedule"], p["Input"]) for name, p in schedules.items()} == {
        "Sweep": ("rate(5 minutes)", '{"task": "sweep"}'),
        "IntegrationHealth": ("rate(1 hour)", '{"task": "health"}'),
        "PostcoSync": ("rate(5 minutes)", '{"task": "postco"}'),
        "InventoryResend": ("rate(1 day)", '{"task": "inventory"}'),
    }


def test_each_store_s_postco_sync_is_a_job_of_its_own_queue_one_at_a_time_with_a_dlq():
    jobs = RESOURCES["SyncFunction"]["Properties"]["Events"]["PostcoJobs"]
    queue = RESOURCES["PostcoQueue"]["Properties"]

    assert jobs["Type"] == "SQS" and jobs["Properties"]["BatchSize"] == 1
    assert jobs["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert queue["VisibilityTimeout"] >= 6 * RESOURCES["SyncFunction"]["Properties"]["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["PostcoDLQ", "Arn"]}


def test_the_sweeper_reads_a_sparse_due_index_not_the_table():
    indexes = {i["IndexName"]: i for i in RESOURCES["MainTable"]["Properties"]["GlobalSecondaryIndexes"]}

    assert [k["AttributeName"] for k in indexes["DueIndex"]["KeySchema"]] == ["due_shard", "due_at"]
    assert [k["AttributeName"] for k in indexes["StateIndex"]["KeySchema"]] == ["store_state", "state_since"]
    sweeper_actions = RESOURCES["SyncFunction"]["Properties"]["Policies"][0]["Statement"][0]["Action"]
    assert "dynamodb:Scan" not in sweeper_actions


def alarms() -> dict[str, dict[str, Any]]:
    return {name: spec["Properties"] for name, spec in resources_of(TEMPLATE, "AWS::CloudWatch::Alarm").items()}


def test_there_is_an_alarm_for_everything_that_needs_a_person():
    metrics = {(a["Namespace"], a["MetricName"]) for a in alarms().values()}
    functions = set(resources_of(TEMPLATE, "AWS::Serverless::Function"))

    assert {
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/ApiGateway", "5XXError"),
        ("Claimbridge", "CreditHeldForOperator"),
        ("Claimbridge", "CreditOutcomeUnknown"),
        ("Claimbridge", "IntegrationsInvalid"),
        ("Claimbridge", "SweeperOldestStuckAge"),
    } <= metrics
    for kind in ("Errors", "Throttles"):
        watched = {_ref_name(a["Dimensions"][0]["Value"]) for a in alarms().values() if a["MetricName"] == kind}
        assert watched == functions, kind
    aged = {
        _ref_name(a["Dimensions"][0]["Value"])
        for a in alarms().values()
        if a["MetricName"] == "ApproximateAgeOfOldestMessage"
    }
    assert aged == set(job_queues())


def test_every_alarm_is_wired_to_the_alarm_topic_when_one_is_set():
    for name, alarm in alarms().items():
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }, name


def test_one_dashboard_shows_the_queues_functions_api_and_money():
    (dashboard,) = resources_of(TEMPLATE, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]

    for metric in (
        "ApproximateAgeOfOldestMessage",
        "Errors",
        "Throttles",
        "5XXError",
        "CreditHeldForOperator",
        "IntegrationsInvalid",
        "SweeperOldestStuckAge",
    ):
        assert metric in body, metric


def test_api_access_logs_are_json_lines_with_request_route_status_latency_and_path_in_a_retained_group():
    api = RESOURCES["ClaimbridgeApi"]["Properties"]["AccessLogSetting"]
    group = RESOURCES[_ref_name(api["DestinationArn"])]["Properties"]

    for field in (
        "$context.requestId",
        "$context.resourcePath",
        "$context.status",
        "$context.responseLatency",
        "$context.path",
    ):
        assert field in api["Format"], field
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_credit_worker_may_query_its_claims_partition():
    statement = RESOURCES["CreditWorkerFunction"]["Properties"]["Policies"][0]["Statement"][0]
    assert "dynamodb:Query" in statement["Action"]
