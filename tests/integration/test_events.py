"""The sample events in events/ are real: each one, given to its function, is handled as documented."""

import json
from pathlib import Path

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def with_key(event: dict, key: str) -> dict:
    """A sample as it would come with this stack's admin key (the samples carry a placeholder, `local-admin-key`)."""
    assert event["headers"]["x-api-key"] == "local-admin-key"
    return {**event, "headers": {**event["headers"], "x-api-key": key}, "multiValueHeaders": {}}


def test_the_admin_sample_events_run_in_order_against_the_admin_function(stack, sandbox):
    admin = stack.functions["AdminFunction"]
    statuses = [
        admin.invoke(with_key(load(name), stack.admin_api_key))["statusCode"]
        for name in (
            "admin_put_store.json",
            "admin_get_store.json",
            "admin_put_richpanel.json",
            "admin_get_richpanel_teams.json",
        )
    ]

    assert statuses[0] in (200, 201)
    assert statuses[1:] == [200, statuses[2], 200]
    assert statuses[2] in (200, 201)


def test_every_webhook_sample_is_accepted_and_its_worker_message_is_handled(stack, sandbox):
    receiver = stack.functions["WebhookReceiverFunction"]
    worker = stack.functions["RichpanelWorkerFunction"]
    stack.admin("PUT", "/internal/stores/demo-store", json.loads(load("admin_put_store.json")["body"]))
    samples = sorted(EVENTS.glob("webhook_*.json"))
    assert len(samples) == 8

    for sample in samples:
        answer = receiver.invoke(json.loads(sample.read_text()))
        job = load("richpanel_job_" + sample.name.removeprefix("webhook_"))
        result = worker.invoke(job)
        assert answer["statusCode"] == 202, sample.name
        assert result == {"batchItemFailures": []}, sample.name


def test_the_credit_report_and_widget_samples_are_handled(stack, sandbox):
    stack.admin("PUT", "/internal/stores/demo-store", json.loads(load("admin_put_store.json")["body"]))
    stack.admin("PUT", "/internal/integrations/rise/stores/demo-store", {"credit_api_token": "rise_demo_0123456789"})

    # the claim and its approval come first: the approval writes the ledger row the credit job names
    for sample in ("richpanel_job_claim_created.json", "richpanel_job_claim_approved.json"):
        assert stack.functions["RichpanelWorkerFunction"].invoke(load(sample)) == {"batchItemFailures": []}
    credit = stack.functions["CreditWorkerFunction"].invoke(load("credit_job.json"))
    report = stack.functions["ReportWorkerFunction"].invoke(load("report_job.json"))
    widget = stack.functions["WidgetFunction"].invoke(load("widget_get.json"))

    assert credit == {"batchItemFailures": []}
    assert report == {"batchItemFailures": []}
    assert widget["statusCode"] == 401  # the sample's signature is a placeholder: a real one expires in 300 s
    assert [c["path"] for c in sandbox["rise"].calls(method="POST")] == ["/v2/gift-cards/issue/"]
